import { spawn } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DeleteItemCommand } from '@aws-sdk/client-dynamodb';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { verdictCoverage } from '@binaryalert/core';
import { loadTfvars, REPO_ROOT } from '@binaryalert/deployment';

import { EICAR, startE2E, type E2E } from './testing/e2e';
import { REPO_TFVARS, waitFor } from './testing/fixtures';

jest.setTimeout(240_000);

/** `manage.ts <args>` as a user runs it; `interruptWhen` sends Ctrl-C once the output matches. */
function manage(
  args: string[],
  interruptWhen?: RegExp,
): Promise<{ code: number | null; output: string; seconds: number }> {
  const started = Date.now();
  const child = spawn(process.execPath, [require.resolve('tsx/cli'), 'manage.ts', ...args], {
    cwd: REPO_ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  let interrupted = false;
  const collect = (chunk: Buffer): void => {
    output += chunk.toString('utf8');
    if (interruptWhen && !interrupted && interruptWhen.test(output)) {
      interrupted = true;
      child.kill('SIGINT');
    }
  };
  child.stdout?.on('data', collect);
  child.stderr?.on('data', collect);
  return new Promise((resolve) =>
    child.on('exit', (code) => resolve({ code, output, seconds: (Date.now() - started) / 1000 })),
  );
}

describe('manage.ts retro-analyze and reconcile against a running local stack', () => {
  let e2e: E2E;
  let tfvars: string;

  beforeAll(async () => {
    // The CLI reads its names from a tfvars file: one with this stack's name prefix.
    const prefix = `rp${Math.random().toString(36).slice(2, 7).replace(/\d/g, 'x')}`;
    const settings = await readFile(REPO_TFVARS, 'utf8');
    e2e = await startE2E({
      config: await loadTfvars(REPO_TFVARS).then((config) => ({ ...config, name_prefix: prefix })),
    });
    tfvars = join(e2e.dataDir, 'retro.tfvars');
    await writeFile(tfvars, settings.replace(/^name_prefix\s*=.*$/m, `name_prefix = "${prefix}"`));
    await e2e.stack.reconciled;
  });

  afterAll(async () => {
    await e2e?.dispose();
  });

  const put = (key: string, body: string | Buffer) =>
    e2e.s3.send(new PutObjectCommand({ Bucket: e2e.stack.names.bucket, Key: key, Body: body }));

  it('returns in a few seconds on a 3-object bucket, every time, with the verdict counts', async () => {
    await put('three/eicar.com', EICAR);
    await put('three/clean.txt', 'clean');
    await put('three/empty.bin', Buffer.alloc(0));
    await e2e.drained();
    const alertsBefore = e2e.stack.alerts.length;

    for (let run = 0; run < 5; run += 1) {
      const { code, output, seconds } = await manage([
        'retro-analyze',
        '--local',
        e2e.stack.endpoint,
        '--tfvars',
        tfvars,
      ]);

      expect([run, code]).toEqual([run, 0]);
      expect(output).toMatch(/3\/3 objects analyzed/);
      expect(output).toMatch(
        /Retroactive analysis finished: 3 objects analyzed in \d+s \(matched 1, clean 2, skipped 0, failed 0, partial 0\)/,
      );
      // A few seconds, including the CLI's own start (tsx); never a 60 s grace period.
      expect([run, seconds < 20]).toEqual([run, true]);
    }
    // Re-analysis of a known file never alerts again.
    expect(e2e.stack.alerts.length).toBe(alertsBefore);
  });

  it('stops watching on Ctrl-C while the analysis goes on to the end', async () => {
    const keys = Array.from({ length: 150 }, (_v, i) => `many/file ${i}.txt`);
    for (const key of keys) await put(key, `content of ${key}`);
    await e2e.drained();
    const since = new Date().toISOString();

    const { code, output } = await manage(
      ['retro-analyze', '--local', e2e.stack.endpoint, '--tfvars', tfvars, '--prefix', 'many/'],
      /objects analyzed/,
    );

    expect(code).toBe(0);
    expect(output).toMatch(
      /Stopped watching at \d+ of 150 objects .*; the analysis goes on in the background\./,
    );
    // The work was not stopped: every object gets its verdict from this run.
    await waitFor(
      async () => {
        const coverage = await verdictCoverage(
          { s3: e2e.s3, dynamo: e2e.dynamo },
          {
            bucket: e2e.stack.names.bucket,
            table: e2e.stack.names.verdictTable,
            prefix: 'many/',
            since,
          },
        );
        return coverage.covered === keys.length ? true : undefined;
      },
      120_000,
      'every object re-analyzed after Ctrl-C',
      500,
    );
  });

  it('reconcile --local queues again, on demand, every object without a verdict', async () => {
    const keys = Array.from({ length: 12 }, (_v, i) => `lost/clean ${i}.txt`);
    for (const key of keys) await put(key, `clean ${key}`);
    await e2e.drained();
    // Work lost while the stack runs: the verdicts of five objects are gone.
    const lost = keys.slice(0, 5);
    for (const key of lost) {
      await e2e.dynamo.send(
        new DeleteItemCommand({
          TableName: e2e.stack.names.verdictTable,
          Key: { Bucket: { S: e2e.stack.names.bucket }, Key: { S: key } },
        }),
      );
    }
    const coverage = () =>
      verdictCoverage(
        { s3: e2e.s3, dynamo: e2e.dynamo },
        { bucket: e2e.stack.names.bucket, table: e2e.stack.names.verdictTable, prefix: 'lost/' },
      );
    expect((await coverage()).covered).toBe(keys.length - lost.length);

    const { code, output } = await manage([
      'reconcile',
      '--local',
      e2e.stack.endpoint,
      '--tfvars',
      tfvars,
    ]);

    expect(code).toBe(0);
    expect(output).toMatch(
      /queued 5 again \(no verdict 5, content changed 0, last analysis failed 0\)/,
    );
    await waitFor(
      async () => ((await coverage()).covered === keys.length ? true : undefined),
      60_000,
      'the lost verdicts back',
      500,
    );
    // Nothing left to do: a second run queues nothing.
    await e2e.drained();
    const again = await manage(['reconcile', '--local', e2e.stack.endpoint, '--tfvars', tfvars]);
    expect(again.output).toMatch(/queued 0 again/);
  });
});
