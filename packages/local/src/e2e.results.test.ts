import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { DeleteObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import type { BinaryAlertConfig } from '@binaryalert/deployment';

import { EICAR, startE2E, type E2E } from './testing/e2e';
import { tempDir, waitFor } from './testing/fixtures';

jest.setTimeout(300_000);

const run = promisify(execFile);
const MANAGE_TS = resolve(__dirname, '../../../manage.ts');
const EICAR_SHA256 = createHash('sha256').update(EICAR).digest('hex');

/** terraform.tfvars for a configuration (JSON values are valid HCL). */
async function writeTfvars(path: string, config: BinaryAlertConfig): Promise<void> {
  const lines = Object.entries(config).map(([name, value]) => `${name} = ${JSON.stringify(value)}`);
  await writeFile(path, `${lines.join('\n')}\n`);
}

describe('manage.ts results against the local stack, from outside', () => {
  let e2e: E2E;
  let files: { path: string; remove: () => Promise<void> };
  let tfvars: string;

  beforeAll(async () => {
    files = await tempDir('ba-e2e-results-');
    e2e = await startE2E({ configOverrides: { max_file_size_mb: 1 } });
    tfvars = join(files.path, 'terraform.tfvars');
    await writeTfvars(tfvars, e2e.config);
  });

  afterAll(async () => {
    await e2e?.dispose();
    await files?.remove();
  });

  /** Runs manage.ts as a user would, against the stack's endpoint. */
  async function manage(args: string[]): Promise<string> {
    const { stdout } = await run(
      process.execPath,
      [MANAGE_TS, ...args, '--local', e2e.stack.endpoint, '--tfvars', tfvars],
      { maxBuffer: 16 * 1024 * 1024, env: { ...process.env, NO_COLOR: '1' } },
    );
    return stdout;
  }

  it('gives each uploaded object its verdict and reason, and finds every key holding EICAR', async () => {
    const bucket = e2e.stack.names.bucket;
    const eicarPath = join(files.path, 'eicar.com');
    const cleanPath = join(files.path, 'notes.txt');
    const bigPath = join(files.path, 'big.bin');
    await writeFile(eicarPath, EICAR);
    await writeFile(cleanPath, 'meeting notes, nothing else\n');
    await writeFile(bigPath, randomBytes(2 * 1024 * 1024)); // over max_file_size_mb = 1

    await e2e.aws(['s3', 'cp', eicarPath, `s3://${bucket}/mix/eicar.com`]);
    await e2e.aws(['s3', 'cp', eicarPath, `s3://${bucket}/mix/copy of eicar.exe`]);
    await e2e.aws(['s3', 'cp', cleanPath, `s3://${bucket}/mix/notes.txt`]);
    await e2e.aws(['s3', 'cp', bigPath, `s3://${bucket}/mix/big.bin`]);
    // Deleted right after its upload (milliseconds: before any analyzer can read it).
    await e2e.s3.send(
      new PutObjectCommand({ Bucket: bucket, Key: 'mix/deleted.bin', Body: 'short-lived' }),
    );
    await e2e.s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: 'mix/deleted.bin' }));

    const results = await waitFor(
      async () => {
        const items = JSON.parse(await manage(['results', '--json'])) as Record<string, unknown>[];
        return items.length >= 5 ? items : undefined;
      },
      120_000,
      'five verdicts',
      1000,
    );

    const byKey = Object.fromEntries(results.map((item) => [String(item.key), item]));
    expect(Object.keys(byKey).sort()).toEqual([
      'mix/big.bin',
      'mix/copy of eicar.exe',
      'mix/deleted.bin',
      'mix/eicar.com',
      'mix/notes.txt',
    ]);
    expect(byKey['mix/eicar.com']).toMatchObject({
      bucket,
      verdict: 'matched',
      reason: null,
      sha256: EICAR_SHA256,
      rules: [expect.stringMatching(/:eicar/i)],
      analyzedAt: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
    });
    expect(byKey['mix/copy of eicar.exe']).toMatchObject({ verdict: 'matched' });
    expect(byKey['mix/notes.txt']).toMatchObject({ verdict: 'clean', reason: null, rules: [] });
    expect(byKey['mix/big.bin']).toMatchObject({ verdict: 'skipped', reason: 'too-large' });
    expect(byKey['mix/deleted.bin']).toMatchObject({
      verdict: 'skipped',
      reason: 'missing',
      sha256: null,
    });
    // Matches first.
    expect(results.slice(0, 2).map((item) => item.verdict)).toEqual(['matched', 'matched']);

    const shown = await manage(['results', 'show', EICAR_SHA256]);
    expect(shown).toContain(`s3://${bucket}/mix/eicar.com`);
    expect(shown).toContain(`s3://${bucket}/mix/copy of eicar.exe`);
    expect(shown).toMatch(/rule \S+:\S*eicar/i);

    const skipped = JSON.parse(await manage(['results', '--verdict', 'skipped', '--json'])) as {
      key: string;
    }[];
    expect(skipped.map((item) => item.key).sort()).toEqual(['mix/big.bin', 'mix/deleted.bin']);

    const summary = JSON.parse(await manage(['results', 'summary', '--json'])) as {
      byVerdict: Record<string, number>;
      coverage: { listed: number; covered: number; gone: number };
    };
    expect(summary.byVerdict).toEqual({ matched: 2, clean: 1, skipped: 2 });
    expect(summary.coverage).toMatchObject({ listed: 4, covered: 4, gone: 1 });
  });
});
