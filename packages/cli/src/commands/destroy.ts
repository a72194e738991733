import { createInterface } from 'node:readline';
import type { Command } from 'commander';
import {
  TERRAFORM_DIR,
  DEFAULT_TFVARS_PATH,
  loadTfvars,
  resourceNames,
} from '@binaryalert/deployment';
import type { CommandRegistrar } from '../usage';
import { runPreflight } from '../preflight';
import { runInherited, varFileArg, type TerraformOptions } from './apply';

export interface DestroyOptions extends TerraformOptions {
  /** Asks a yes/no question (default: on stdin). */
  confirm?: (question: string) => Promise<boolean>;
  log?: (line: string) => void;
}

/**
 * terraform destroy. Terraform cannot delete a bucket that still holds objects unless
 * force_destroy is set, so when it is not, this asks first and, on yes, turns it on for the
 * buckets only (a targeted apply) before destroying everything.
 */
export async function destroy(options: DestroyOptions = {}): Promise<{ emptiedBuckets: boolean }> {
  const run = options.run ?? runInherited;
  const cwd = options.terraformDir ?? TERRAFORM_DIR;
  const tfvarsPath = options.tfvarsPath ?? DEFAULT_TFVARS_PATH;
  const log = options.log ?? ((line: string) => process.stdout.write(`${line}\n`));
  const config = await loadTfvars(tfvarsPath);
  const varFile = varFileArg(cwd, tfvarsPath);
  const names = resourceNames(config);

  await run('terraform', ['init', '-input=false'], { cwd });
  let emptiedBuckets = config.force_destroy;
  if (!config.force_destroy) {
    const confirm = options.confirm ?? confirmOnStdin;
    emptiedBuckets = await confirm(
      `Delete every object and version in ${names.bucket}` +
        (config.s3_log_bucket === '' ? ` and ${names.logBucket}` : '') +
        ' too? Without that, Terraform cannot delete the non-empty buckets.',
    );
    if (emptiedBuckets) {
      const targets = ['-target=aws_s3_bucket.binaries'];
      if (config.s3_log_bucket === '') targets.push('-target=aws_s3_bucket.access_logs');
      await run(
        'terraform',
        ['apply', varFile, '-var=force_destroy=true', '-auto-approve', ...targets],
        { cwd },
      );
    } else {
      log('Keeping the objects: terraform destroy will leave non-empty buckets in place.');
    }
  }
  await run(
    'terraform',
    ['destroy', varFile, ...(emptiedBuckets ? ['-var=force_destroy=true'] : [])],
    { cwd },
  );
  return { emptiedBuckets };
}

/** Asks on stdin (terminal or pipe); anything but y/yes, including end of input, is no. */
function confirmOnStdin(question: string): Promise<boolean> {
  const rl = createInterface({ input: process.stdin, terminal: false });
  process.stdout.write(`${question} [y/N] `);
  return new Promise((resolve) => {
    let answer = '';
    rl.once('line', (line) => {
      answer = line;
      rl.close();
    });
    rl.once('close', () => resolve(/^y(es)?$/i.test(answer.trim())));
  });
}

export const registerDestroy: CommandRegistrar = (program: Command) => {
  program
    .command('destroy')
    .description('tear down every BinaryAlert resource (asks before deleting stored binaries)')
    .action(async () => {
      await runPreflight((await loadTfvars()).aws_region);
      await destroy();
    });
};
