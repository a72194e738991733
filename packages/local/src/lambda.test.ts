import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { LambdaRuntime } from './lambda';
import { tempDir, writeZip } from './testing/fixtures';

jest.setTimeout(60_000);

/** Blocks this process's event loop (the stack's), as a burst of work would. */
const busy = (ms: number): void => {
  const end = Date.now() + ms;
  while (Date.now() < end);
};

/** Whether the process's main thread waits in epoll: Node's event loop is idle. */
const idleInEventLoop = (pid: number): boolean => {
  try {
    return readFileSync(`/proc/${pid}/wchan`, 'utf8').includes('epoll');
  } catch {
    return false;
  }
};

describe('the local Lambda runtime', () => {
  let dirs: { path: string; remove: () => Promise<void> }[];
  let runtime: LambdaRuntime;
  let logs: string[];

  beforeEach(async () => {
    const data = await tempDir('ba-lambda-data-');
    const zips = await tempDir('ba-lambda-zips-');
    dirs = [data, zips];
    logs = [];
    await writeZip(join(zips.path, 'fn.zip'), {
      'index.js': 'exports.handler = async (event) => ({ echo: event });',
    });
    runtime = new LambdaRuntime({
      dataDir: data.path,
      region: 'us-east-1',
      accountId: '123456789012',
      baseEnvironment: {},
      onLog: (_name, line) => logs.push(line),
    });
    await runtime.init([
      {
        name: 'fn',
        zipPath: join(zips.path, 'fn.zip'),
        handler: 'index.handler',
        timeoutSeconds: 30,
        memoryMb: 128,
        environment: {},
        concurrency: 1,
      },
    ]);
  });

  afterEach(async () => {
    await runtime.stop();
    for (const dir of dirs) await dir.remove();
  });

  it('fails the invocation of a worker that died after saying it was ready, and does not crash', async () => {
    // Prepare: a new worker starts while this process is too busy to read what it sends.
    const outcome = runtime.invoke('fn', { n: 1 });
    let pid: number | undefined;
    while (!(pid = runtime.workerInfo('fn')[0]?.pid)) await new Promise(setImmediate);
    const deadline = Date.now() + 20_000;
    while (!idleInEventLoop(pid) && Date.now() < deadline) busy(10);
    expect(idleInEventLoop(pid)).toBe(true); // its 'ready' is written, unread

    // Act: it dies before this process reads 'ready' (so that it reads 'ready', then the end).
    process.kill(pid, 'SIGKILL');
    busy(200);

    // Assert: sending it the invocation failed without an uncaught EPIPE; its exit failed it.
    expect(await outcome).toMatchObject({ ok: false, error: { errorType: 'Runtime.ExitError' } });
    expect(await runtime.invoke('fn', { n: 2 })).toMatchObject({
      ok: true,
      payload: { echo: { n: 2 } },
    });
  });

  it('answers an invocation made after it stopped, at once', async () => {
    // Act
    await runtime.stop();
    const outcome = await runtime.invoke('fn', {});

    // Assert
    expect(outcome).toMatchObject({ ok: false, error: { errorType: 'Runtime.Stopped' } });
  });
});
