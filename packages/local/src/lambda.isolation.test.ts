import { join } from 'node:path';

import { LambdaRuntime, type InvokeOutcome } from './lambda';
import { dataLimitBytes } from './sandbox';
import { tempDir, writeZip } from './testing/fixtures';

jest.setTimeout(60_000);

// Reports who it runs as and what it may touch; `hog` allocates until the memory cap stops it.
const PROBE = `
const fs = require('fs');
const path = require('path');
const tryWrite = (dir) => { try { fs.writeFileSync(path.join(dir, 'probe-' + process.pid), 'x'); return 'written'; } catch (e) { return e.code; } };
exports.handler = async (event) => {
  if (event.hog) { const keep = []; for (;;) keep.push(Buffer.alloc(1 << 20, 1)); }
  if (event.sleepMs) await new Promise((r) => setTimeout(r, event.sleepMs));
  const status = fs.readFileSync('/proc/self/status', 'utf8');
  const field = (name) => (status.match(new RegExp('^' + name + ':\\\\s*(.*)$', 'm')) || [])[1];
  const limits = fs.readFileSync('/proc/self/limits', 'utf8').split('\\n').find((l) => l.startsWith('Max data size'));
  return {
    uid: process.getuid(), gid: process.getgid(), groups: process.getgroups(),
    capEff: field('CapEff'), capBnd: field('CapBnd'), capAmb: field('CapAmb'), noNewPrivs: field('NoNewPrivs'),
    dataLimit: Number(limits.trim().split(/\\s+/)[3]),
    tmp: process.env.TMPDIR,
    writeTmp: tryWrite(process.env.TMPDIR),
    writeCode: tryWrite(process.cwd()),
    writeDataDir: tryWrite(event.dataDir),
  };
};`;

interface Probe {
  uid: number;
  gid: number;
  groups: number[];
  capEff: string;
  capBnd: string;
  capAmb: string;
  noNewPrivs: string;
  dataLimit: number;
  tmp: string;
  writeTmp: string;
  writeCode: string;
  writeDataDir: string;
}

const payload = (outcome: InvokeOutcome): Probe => {
  if (!outcome.ok) throw new Error(`${outcome.error.errorType}: ${outcome.error.errorMessage}`);
  return outcome.payload as Probe;
};

describe('Lambda worker isolation', () => {
  let dirs: { path: string; remove: () => Promise<void> }[];
  let dataDir: string;
  let runtime: LambdaRuntime;

  beforeAll(async () => {
    const data = await tempDir('ba-isolation-data-');
    const zips = await tempDir('ba-isolation-zips-');
    dirs = [data, zips];
    dataDir = data.path;
    await writeZip(join(zips.path, 'probe.zip'), { 'index.js': PROBE });
    runtime = new LambdaRuntime({
      dataDir: join(dataDir, 'lambda'),
      region: 'us-east-1',
      accountId: '123456789012',
      baseEnvironment: {},
      onLog: () => undefined,
    });
    await runtime.init([
      {
        name: 'probe',
        zipPath: join(zips.path, 'probe.zip'),
        handler: 'index.handler',
        timeoutSeconds: 30,
        memoryMb: 128,
        environment: {},
        concurrency: 2,
      },
    ]);
  });

  afterAll(async () => {
    await runtime?.stop();
    for (const dir of dirs ?? []) await dir.remove();
  });

  it('caps each worker at the function memory and gives it a temp directory of its own', async () => {
    const [a, b] = (
      await Promise.all([
        runtime.invoke('probe', { sleepMs: 500, dataDir }),
        runtime.invoke('probe', { sleepMs: 500, dataDir }),
      ])
    ).map(payload);
    expect(a!.dataLimit).toBe(dataLimitBytes(128));
    expect(dataLimitBytes(128)).toBe(384 * 1024 * 1024);
    expect(a!.tmp).not.toBe(b!.tmp);
    expect([a!.writeTmp, b!.writeTmp]).toEqual(['written', 'written']);

    const hog = await runtime.invoke('probe', { hog: true });
    expect(hog).toEqual(
      expect.objectContaining({
        ok: false,
        error: expect.objectContaining({ errorType: 'Runtime.ExitError' }) as unknown,
      }),
    );
    // The next invocation gets a fresh worker.
    expect(payload(await runtime.invoke('probe', { dataDir })).dataLimit).toBe(dataLimitBytes(128));
  });

  (process.getuid?.() === 0 ? it : it.skip)(
    'runs workers of a root stack as nobody, without capabilities or new privileges, unable to write their code or the data directory',
    async () => {
      const probe = payload(await runtime.invoke('probe', { dataDir }));
      expect(probe).toEqual(
        expect.objectContaining({
          uid: 65534,
          gid: 65534,
          groups: [65534],
          capEff: '0000000000000000',
          capBnd: '0000000000000000',
          capAmb: '0000000000000000',
          noNewPrivs: '1',
          writeTmp: 'written',
          writeCode: 'EACCES',
          writeDataDir: 'EACCES',
        }),
      );
    },
  );
});
