import { createWriteStream, type WriteStream } from 'node:fs';

/**
 * Appends lines to files through one append-mode stream per file, so that a file's lines stay in
 * the order they were given and a line costs a buffered write, not an open, a write and a close
 * (the functions log several lines per invocation: in a profile of a bench run, the stack's own
 * process spent about 2 s opening and closing their log files). A write that fails is dropped
 * (the file is opened again for the next line) and reported to `onError`, never thrown: a log
 * must not stop the stack.
 */
export class LineLog {
  private readonly streams = new Map<string, WriteStream>();

  constructor(private readonly onError: (path: string, error: Error) => void = () => undefined) {}

  append(path: string, line: string): void {
    let stream = this.streams.get(path);
    if (!stream) {
      const opened = createWriteStream(path, { flags: 'a' });
      opened.on('error', (error) => {
        if (this.streams.get(path) === opened) this.streams.delete(path);
        this.onError(path, error);
      });
      this.streams.set(path, opened);
      stream = opened;
    }
    stream.write(`${line}\n`);
  }

  /** Writes out what is buffered and closes every file. */
  async close(): Promise<void> {
    const streams = [...this.streams.values()];
    this.streams.clear();
    await Promise.all(
      streams.map(
        (stream) =>
          new Promise<void>((resolve) => {
            if (stream.destroyed) resolve();
            else stream.end(() => resolve()).once('error', () => resolve());
          }),
      ),
    );
  }
}
