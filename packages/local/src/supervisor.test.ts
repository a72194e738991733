import { request } from 'node:http';
import { createServer, type Server } from 'node:net';

import { readFile } from 'node:fs/promises';

import { startS3 } from './emulators';
import { superviseEmulator, type SupervisedEmulator } from './supervisor';
import { tempDir, waitFor } from './testing/fixtures';

jest.setTimeout(60_000);

/** The status of a GET / on 127.0.0.1:port, or undefined when nothing answers. */
function statusAt(port: number): Promise<number | undefined> {
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port, path: '/', headers: { host: 'localhost' } });
    req.on('response', (res) => {
      res.resume();
      resolve(res.statusCode);
    });
    req.on('error', () => resolve(undefined));
    req.end();
  });
}

describe('a supervised S3 that keeps its port (Lambda workers were given it)', () => {
  let dir: { path: string; remove: () => Promise<void> };
  let s3: SupervisedEmulator | undefined;
  let blocker: Server | undefined;

  beforeEach(async () => {
    dir = await tempDir('ba-supervisor-');
  });

  afterEach(async () => {
    blocker?.close();
    await s3?.close();
    await dir.remove();
  });

  it('waits for its port when another process took it during the restart, and comes back on it', async () => {
    // Prepare: the port is taken the moment the death is reported, before the restart's backoff
    // runs out (listen binds an IP address synchronously).
    const output: string[] = [];
    let occupy = false;
    let port = 0;
    s3 = await superviseEmulator({
      name: 'S3',
      kind: 's3',
      settings: { dataDir: dir.path, buckets: ['kept-port'] },
      keepPort: true,
      print: (line) => {
        output.push(line);
        if (occupy && line.includes('restarting') && !blocker) {
          blocker = createServer((socket) => socket.destroy()).listen(port, '127.0.0.1');
        }
      },
    });
    port = s3.port;
    expect(await statusAt(port)).toBe(200);

    // Act: kill it; its port is taken; the restarts fail until the port is free again.
    occupy = true;
    process.kill(s3.pid!, 'SIGKILL');
    await waitFor(() => (s3!.restarts >= 2 ? true : undefined), 20_000, 'a failed restart');
    expect(s3.port).toBe(port);
    expect(output.some((line) => line.includes('cannot start'))).toBe(true);
    await new Promise<void>((ok) => blocker!.close(() => ok()));

    // Assert: back on the same port, serving.
    await waitFor(async () => ((await statusAt(port)) === 200 ? true : undefined), 20_000, 'S3');
    expect(s3.port).toBe(port);
  });
});

describe('the S3 store child', () => {
  it('runs without incremental marking, and so does its restart', async () => {
    // Prepare
    const dir = await tempDir('ba-supervisor-');
    const s3 = await startS3(
      dir.path,
      ['gc-flags'],
      () => undefined,
      () => undefined,
    );
    const nodeArgs = async (pid: number) =>
      (await readFile(`/proc/${pid}/cmdline`, 'latin1')).split('\0');
    try {
      const first = s3.pid!;
      expect(await nodeArgs(first)).toContain('--no-incremental-marking');

      // Act: kill it; the supervisor starts another.
      process.kill(first, 'SIGKILL');
      await waitFor(
        async () => (s3.pid !== first && (await statusAt(s3.port)) === 200 ? true : undefined),
        20_000,
        'the restarted store',
      );

      // Assert
      expect(await nodeArgs(s3.pid!)).toContain('--no-incremental-marking');
    } finally {
      await s3.close();
      await dir.remove();
    }
  });
});
