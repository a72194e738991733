import { chmod, copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { DEFAULT_TFVARS_PATH, TfvarsError } from '@binaryalert/deployment';
import { CommandFailedError, runInherited, terraformApply } from './apply';

let dir: string;
let terraformDir: string;
let tfvarsPath: string;
let callsFile: string;
let savedPath: string | undefined;

/**
 * A stand-in `terraform` executable first on PATH: records its arguments and working directory,
 * and fails when asked to (FAIL_ON=<subcommand>).
 */
beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'binaryalert-apply-'));
  terraformDir = path.join(dir, 'terraform');
  tfvarsPath = path.join(dir, 'terraform.tfvars');
  callsFile = path.join(dir, 'calls.txt');
  await mkdir(path.join(dir, 'bin'));
  await mkdir(terraformDir);
  await copyFile(DEFAULT_TFVARS_PATH, tfvarsPath);
  const fake = path.join(dir, 'bin', 'terraform');
  await writeFile(
    fake,
    `#!/bin/sh\necho "$(pwd) $*" >> "${callsFile}"\n[ "$1" = "$FAIL_ON" ] && exit 3\nexit 0\n`,
  );
  await chmod(fake, 0o755);
  savedPath = process.env.PATH;
  process.env.PATH = `${path.join(dir, 'bin')}${path.delimiter}${savedPath}`;
});
afterEach(async () => {
  process.env.PATH = savedPath;
  delete process.env.FAIL_ON;
  await rm(dir, { recursive: true, force: true });
});

async function calls(): Promise<string[]> {
  const text = await readFile(callsFile, 'utf8').catch(() => '');
  return text.split('\n').filter(Boolean);
}

async function zips(): Promise<string[]> {
  const files = ['a.zip', 'b.zip'].map((name) => path.join(dir, name));
  for (const file of files) await writeFile(file, 'zip');
  return files;
}

describe('terraformApply', () => {
  it('runs terraform init, fmt and apply in terraform/ with the top-level var file', async () => {
    await terraformApply({ terraformDir, tfvarsPath, zips: await zips() });

    expect(await calls()).toEqual([
      `${terraformDir} init -input=false`,
      `${terraformDir} fmt -recursive`,
      `${terraformDir} apply -var-file=../terraform.tfvars`,
    ]);
  });

  it('passes -auto-approve only when asked to', async () => {
    await terraformApply({ terraformDir, tfvarsPath, zips: await zips(), autoApprove: true });

    expect((await calls()).at(-1)).toBe(
      `${terraformDir} apply -var-file=../terraform.tfvars -auto-approve`,
    );
  });

  it('stops at the first failing terraform command', async () => {
    process.env.FAIL_ON = 'init';

    const error: unknown = await terraformApply({
      terraformDir,
      tfvarsPath,
      zips: await zips(),
    }).catch((e: unknown) => e);

    expect(error).toBeInstanceOf(CommandFailedError);
    expect((error as CommandFailedError).exitCode).toBe(3);
    expect(await calls()).toEqual([`${terraformDir} init -input=false`]);
  });

  it('refuses to run terraform with an invalid terraform.tfvars or without the zips', async () => {
    const valid = await readFile(tfvarsPath, 'utf8');
    await writeFile(tfvarsPath, valid.replace(/^max_receives = .*$/m, 'max_receives = 0'));
    const invalid: unknown = await terraformApply({
      terraformDir,
      tfvarsPath,
      zips: await zips(),
    }).catch((e: unknown) => e);
    await writeFile(tfvarsPath, valid);
    const unbuilt: unknown = await terraformApply({
      terraformDir,
      tfvarsPath,
      zips: [path.join(dir, 'missing.zip')],
    }).catch((e: unknown) => e);

    expect(invalid).toBeInstanceOf(TfvarsError);
    expect((invalid as Error).message).toContain('max_receives must be an integer from 1 to 1000');
    expect((unbuilt as Error).message).toContain(
      'missing.zip is missing: run manage.ts build first',
    );
    expect(await calls()).toEqual([]);
  });
});

describe('runInherited', () => {
  it('reports a program that cannot be started', async () => {
    const error: unknown = await runInherited('binaryalert-no-such-program', [], {
      cwd: dir,
    }).catch((e: unknown) => e);

    expect((error as Error).message).toMatch(/^cannot run binaryalert-no-such-program/);
  });
});
