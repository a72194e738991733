import { copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { DEFAULT_TFVARS_PATH } from '@binaryalert/deployment';
import type { Runner } from './apply';
import { destroy } from './destroy';

let dir: string;
let terraformDir: string;
let tfvarsPath: string;

beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'binaryalert-destroy-'));
  terraformDir = path.join(dir, 'terraform');
  tfvarsPath = path.join(dir, 'terraform.tfvars');
  await copyFile(DEFAULT_TFVARS_PATH, tfvarsPath);
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function setForceDestroy(value: boolean) {
  const content = await readFile(tfvarsPath, 'utf8');
  await writeFile(tfvarsPath, content.replace(/^force_destroy = .*$/m, `force_destroy = ${value}`));
}

/** Records the terraform command lines instead of running them. */
function recorder(): { run: Runner; commands: string[] } {
  const commands: string[] = [];
  return {
    commands,
    run: (command, args, { cwd }) => {
      expect(cwd).toBe(terraformDir);
      commands.push([command, ...args].join(' '));
      return Promise.resolve();
    },
  };
}

describe('destroy', () => {
  it('asks before deleting objects and, on yes, destroys with force_destroy on the buckets', async () => {
    await setForceDestroy(false);
    const { run, commands } = recorder();
    const questions: string[] = [];

    const result = await destroy({
      run,
      terraformDir,
      tfvarsPath,
      confirm: (question) => (questions.push(question), Promise.resolve(true)),
      log: () => undefined,
    });

    expect(result.emptiedBuckets).toBe(true);
    expect(questions).toEqual([
      expect.stringMatching(/^Delete every object and version in myorg\./),
    ]);
    expect(commands).toEqual([
      'terraform init -input=false',
      'terraform apply -var-file=../terraform.tfvars -var=force_destroy=true -auto-approve ' +
        '-target=aws_s3_bucket.binaries -target=aws_s3_bucket.access_logs',
      'terraform destroy -var-file=../terraform.tfvars -var=force_destroy=true',
    ]);
  });

  it('keeps the objects when the answer is no', async () => {
    await setForceDestroy(false);
    const { run, commands } = recorder();
    const logged: string[] = [];

    const result = await destroy({
      run,
      terraformDir,
      tfvarsPath,
      confirm: () => Promise.resolve(false),
      log: (line) => logged.push(line),
    });

    expect(result.emptiedBuckets).toBe(false);
    expect(commands).toEqual([
      'terraform init -input=false',
      'terraform destroy -var-file=../terraform.tfvars',
    ]);
    expect(logged).toEqual([expect.stringContaining('leave non-empty buckets')]);
  });

  it('does not ask when force_destroy is already on', async () => {
    await setForceDestroy(true);
    const { run, commands } = recorder();

    await destroy({
      run,
      terraformDir,
      tfvarsPath,
      confirm: () => Promise.reject(new Error('must not ask')),
    });

    expect(commands).toEqual([
      'terraform init -input=false',
      'terraform destroy -var-file=../terraform.tfvars -var=force_destroy=true',
    ]);
  });
});
