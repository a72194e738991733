import { once } from 'node:events';
import type { Writable } from 'node:stream';
import { localFileSummary, ruleId, type FileAnalysis } from '@binaryalert/core';
import { printable } from '../results/format';

/** One input file's outcome. */
export type ScanEntry =
  | { path: string; status: 'scanned'; analysis: FileAnalysis; lastModified: string }
  | { path: string; status: 'error'; message: string }
  | { path: string; status: 'skipped'; message: string };

/** Running totals of a scan: all the state `scan` keeps, whatever the number of files. */
export class ScanTotals {
  scanned = 0;
  matched = 0;
  errors = 0;
  skipped = 0;
  /** Scanned files with content inside them left unscanned (bounds, encryption, corruption). */
  partial = 0;
  bytes = 0;
  readonly startedMs = performance.now();

  add(entry: ScanEntry): void {
    if (entry.status === 'scanned') {
      this.scanned++;
      this.bytes += entry.analysis.size;
      if (entry.analysis.matches.length > 0) this.matched++;
      if (entry.analysis.coverage === 'partial') this.partial++;
    } else if (entry.status === 'error') this.errors++;
    else this.skipped++;
  }

  get elapsedSeconds(): number {
    return (performance.now() - this.startedMs) / 1000;
  }

  /** `scanned 3 files (1.2 MB) in 0.4 s: 1 matched, 2 clean, 1 could not be scanned, 1 skipped` */
  summaryLine(): string {
    return (
      `scanned ${this.scanned} files (${formatMb(this.bytes)}) in ${this.elapsedSeconds.toFixed(1)} s: ` +
      `${this.matched} matched, ${this.scanned - this.matched} clean` +
      `${this.partial ? `, ${this.partial} partly scanned` : ''}` +
      `${this.errors ? `, ${this.errors} could not be scanned` : ''}` +
      `${this.skipped ? `, ${this.skipped} skipped` : ''}`
    );
  }

  /** `scanning: 1,204 files, 310 MB, 95 MB/s, 2 matched, 1 error` */
  progressLine(): string {
    const seconds = this.elapsedSeconds;
    const rate = seconds > 0 ? this.bytes / (1024 * 1024) / seconds : 0;
    return (
      `scanning: ${this.scanned.toLocaleString('en-US')} files, ${formatMb(this.bytes)}, ` +
      `${rate.toFixed(rate >= 10 ? 0 : 1)} MB/s, ${this.matched} matched` +
      `${this.errors ? `, ${this.errors} ${this.errors === 1 ? 'error' : 'errors'}` : ''}`
    );
  }
}

export function formatMb(bytes: number): string {
  const mb = bytes / (1024 * 1024);
  return `${mb >= 10 ? mb.toFixed(0) : mb.toFixed(1)} MB`;
}

export type ReportFormat = 'table' | 'json' | 'jsonl';

/**
 * Writes a stream and waits when its buffer is full, so a slow reader (a pager, a pipe) slows the
 * scan down instead of letting output pile up in memory.
 */
async function write(stream: Writable, text: string): Promise<void> {
  if (!stream.write(text)) await once(stream, 'drain');
}

/** A single updating status line on a terminal; nothing when stderr is not a TTY. */
class ProgressLine {
  #shown = false;
  #lastMs = 0;
  constructor(
    private readonly stream: NodeJS.WriteStream,
    private readonly enabled: boolean,
  ) {}

  /** `text` is called only when the line is shown (formatting numbers for every file costs). */
  update(text: () => string, force = false): void {
    if (!this.enabled) return;
    const now = performance.now();
    if (!force && now - this.#lastMs < 100) return;
    this.#lastMs = now;
    this.stream.write(`\r\x1b[K${text()}`);
    this.#shown = true;
  }

  clear(): void {
    if (this.#shown) this.stream.write('\r\x1b[K');
    this.#shown = false;
  }
}

/**
 * Prints each file's outcome as soon as it is known, and nothing of it is kept afterwards: table
 * rows (`MATCH  path  rules`), JSON Lines (one LocalFileSummary per line), or one JSON array written
 * element by element. Files that could not be scanned go to stderr as `error: PATH: reason`. The
 * summary closes the table on stdout; with JSON output it goes to stderr, so stdout stays JSON.
 */
export class ScanReport {
  readonly totals = new ScanTotals();
  #rows = 0;
  readonly #progress: ProgressLine;

  constructor(
    private readonly format: ReportFormat,
    private readonly options: {
      matchesOnly: boolean;
      stdout: NodeJS.WriteStream;
      stderr: NodeJS.WriteStream;
    },
  ) {
    this.#progress = new ProgressLine(options.stderr, options.stderr.isTTY === true);
  }

  async start(): Promise<void> {
    if (this.format === 'json') await write(this.options.stdout, '[');
  }

  async add(entry: ScanEntry): Promise<void> {
    this.totals.add(entry);
    if (entry.status !== 'scanned') {
      this.#progress.clear();
      const label = entry.status === 'error' ? 'error' : 'skipped';
      // A name holding a line break would otherwise print a line of its own, a forged row.
      await write(
        this.options.stderr,
        `${label}: ${printable(entry.path)}: ${printable(entry.message)}\n`,
      );
    } else if (!this.options.matchesOnly || entry.analysis.matches.length > 0) {
      this.#progress.clear();
      await write(this.options.stdout, this.#format(entry));
      this.#rows++;
    }
    this.#progress.update(() => this.totals.progressLine());
  }

  /** Closes the output; `interrupted` (Ctrl-C) says in the summary that files were left out. */
  async finish(interrupted = false): Promise<void> {
    this.#progress.clear();
    const { stdout, stderr } = this.options;
    const summary = `${interrupted ? 'interrupted (Ctrl-C), the rest not scanned: ' : ''}${this.totals.summaryLine()}\n`;
    if (this.format === 'json') await write(stdout, this.#rows > 0 ? '\n]\n' : ']\n');
    await write(this.format === 'table' ? stdout : stderr, summary);
  }

  #format(entry: Extract<ScanEntry, { status: 'scanned' }>): string {
    switch (this.format) {
      case 'jsonl':
        return `${JSON.stringify(localFileSummary(entry.analysis, entry))}\n`;
      case 'json': {
        const element = JSON.stringify(localFileSummary(entry.analysis, entry), null, 2).replace(
          /\n/g,
          '\n  ',
        );
        return `${this.#rows > 0 ? ',' : ''}\n  ${element}`;
      }
      case 'table': {
        const { matches, unscanned } = entry.analysis;
        const notes = matches.map((match) =>
          match.member ? `${ruleId(match)} in ${printable(match.member.path)}` : ruleId(match),
        );
        const reasons = printable([...new Set(unscanned.map((item) => item.reason))].join(', '));
        if (unscanned.length > 0)
          notes.push(`(partial: ${unscanned.length} unscanned: ${reasons})`);
        const header = this.#rows === 0 ? 'STATUS PATH  MATCHED RULES\n' : '';
        const status = matches.length > 0 ? 'MATCH ' : 'clean ';
        return `${header}${status} ${printable(entry.path)}${notes.length ? `  ${notes.join(', ')}` : ''}\n`;
      }
    }
  }
}
