import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import yazl from 'yazl';

import { REPO_ROOT } from '@binaryalert/deployment';
// The program first: it imports every command module (importing ./local first is circular).
import { zipsAreStale } from './local';

jest.setTimeout(90_000);

const TINY_HANDLER = 'exports.handler = async () => ({ invocations: 0 });';

async function tinyZips(dir: string): Promise<void> {
  for (const fn of ['analyzer', 'dispatcher', 'batcher']) {
    const zip = new yazl.ZipFile();
    zip.addBuffer(Buffer.from(TINY_HANDLER), 'index.js');
    zip.end();
    const chunks: Buffer[] = [];
    for await (const chunk of zip.outputStream) chunks.push(chunk as Buffer);
    await writeFile(path.join(dir, `${fn}.zip`), Buffer.concat(chunks));
  }
}

/** Runs manage.ts as a user does (through tsx), collecting its output. */
function manage(args: string[]): {
  child: ChildProcess;
  output: () => string;
  exit: Promise<number | null>;
} {
  const child = spawn(process.execPath, [require.resolve('tsx/cli'), 'manage.ts', ...args], {
    cwd: REPO_ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let text = '';
  child.stdout?.on('data', (chunk: Buffer) => (text += chunk.toString('utf8')));
  child.stderr?.on('data', (chunk: Buffer) => (text += chunk.toString('utf8')));
  const exit = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, output: () => text, exit };
}

async function waitForOutput(
  run: ReturnType<typeof manage>,
  pattern: RegExp,
): Promise<RegExpMatchArray> {
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    const match = pattern.exec(run.output());
    if (match) return match;
    if (run.child.exitCode !== null) break;
    await new Promise((ok) => setTimeout(ok, 100));
  }
  throw new Error(`no ${pattern} in the output:\n${run.output()}`);
}

describe('manage.ts local', () => {
  let dir: string;

  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'ba-cli-local-'));
  });

  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('starts the stack, refuses a second one on the same data directory and stops on Ctrl-C', async () => {
    const zips = path.join(dir, 'zips');
    const data = path.join(dir, 'data');
    await mkdir(zips);
    await tinyZips(zips);
    const args = ['local', '--port', '0', '--data-dir', data, '--zips-dir', zips, '--no-build'];

    const first = manage(args);
    try {
      const [, endpoint] = await waitForOutput(first, /local stack on (http:\/\/127\.0\.0\.1:\d+)/);
      expect(first.output()).toMatch(/S3 bucket: +myorg\.binaryalert-binaries\.us-east-1/);
      expect(first.output()).toContain(`aws --endpoint-url ${endpoint} s3 cp suspicious.exe`);

      const second = manage(args);
      expect(await second.exit).toBe(1);
      expect(second.output()).toMatch(/another local stack \(pid \d+\) is using/);

      first.child.kill('SIGINT');
      expect(await first.exit).toBe(0);
      expect(first.output()).toContain('stopped; objects and matches are kept');
    } finally {
      first.child.kill('SIGKILL');
    }
  });

  it('rejects a bad port as a usage error', async () => {
    const run = manage(['local', '--port', 'abc', '--data-dir', path.join(dir, 'data')]);
    expect(await run.exit).toBe(2);
    expect(run.output()).toContain('--port must be a port number');
  });

  it('rebuilds when a zip is missing or older than the sources', async () => {
    await tinyZips(dir);
    const future = new Date(Date.now() + 3600_000);
    for (const fn of ['analyzer', 'dispatcher', 'batcher'])
      await utimes(path.join(dir, `${fn}.zip`), future, future);
    expect(await zipsAreStale(dir)).toBe(false);
    await utimes(path.join(dir, 'batcher.zip'), new Date(0), new Date(0));
    expect(await zipsAreStale(dir)).toBe(true);
    await rm(path.join(dir, 'batcher.zip'));
    expect(await zipsAreStale(dir)).toBe(true);
  });
});
