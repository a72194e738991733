import { spawn } from 'node:child_process';
import { access } from 'node:fs/promises';
import * as path from 'node:path';
import type { Command } from 'commander';
import {
  DEFAULT_TFVARS_PATH,
  FUNCTION_NAMES,
  LAMBDA_DIST_DIR,
  TERRAFORM_DIR,
  loadTfvars,
  type BinaryAlertConfig,
} from '@binaryalert/deployment';
import type { CommandRegistrar } from '../usage';
import { runPreflight } from '../preflight';

/** The zips Terraform deploys (written by `manage.ts build`). */
export const LAMBDA_ZIPS = FUNCTION_NAMES.map((name) => path.join(LAMBDA_DIST_DIR, `${name}.zip`));

/** An external command (terraform, the test script) exited unsuccessfully. */
export class CommandFailedError extends Error {
  override readonly name = 'CommandFailedError';
  constructor(
    message: string,
    readonly exitCode: number | null,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** Runs a program with the terminal attached; rejects unless it exits with 0. */
export type Runner = (command: string, args: string[], options: { cwd: string }) => Promise<void>;

export const runInherited: Runner = (command, args, { cwd }) =>
  new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd, stdio: 'inherit', env: process.env });
    child.on('error', (error) =>
      reject(
        new CommandFailedError(`cannot run ${command}: ${error.message}`, null, { cause: error }),
      ),
    );
    child.on('exit', (code, signal) => {
      if (code === 0) resolve();
      else {
        const how = signal ? `was killed by ${signal}` : `exited with code ${code}`;
        reject(new CommandFailedError(`${command} ${args[0] ?? ''} ${how}`, code));
      }
    });
  });

export interface TerraformOptions {
  run?: Runner;
  terraformDir?: string;
  tfvarsPath?: string;
}

/** `-var-file=` pointing at terraform.tfvars, relative to the Terraform directory. */
export function varFileArg(terraformDir: string, tfvarsPath: string): string {
  return `-var-file=${path.relative(terraformDir, tfvarsPath)}`;
}

/**
 * terraform init, fmt and apply in terraform/ with the top-level terraform.tfvars, after
 * validating that file and checking the Lambda zips exist. Terraform asks before changing
 * anything unless autoApprove.
 */
export async function terraformApply(
  options: TerraformOptions & { autoApprove?: boolean; zips?: string[] } = {},
): Promise<BinaryAlertConfig> {
  const run = options.run ?? runInherited;
  const cwd = options.terraformDir ?? TERRAFORM_DIR;
  const tfvarsPath = options.tfvarsPath ?? DEFAULT_TFVARS_PATH;
  const config = await loadTfvars(tfvarsPath);
  for (const zip of options.zips ?? LAMBDA_ZIPS) {
    await access(zip).catch((error: unknown) => {
      throw new CommandFailedError(`${zip} is missing: run manage.ts build first`, null, {
        cause: error,
      });
    });
  }
  await run('terraform', ['init', '-input=false'], { cwd });
  await run('terraform', ['fmt', '-recursive'], { cwd });
  await run(
    'terraform',
    ['apply', varFileArg(cwd, tfvarsPath), ...(options.autoApprove ? ['-auto-approve'] : [])],
    { cwd },
  );
  return config;
}

export const registerApply: CommandRegistrar = (program: Command) => {
  program
    .command('apply')
    .description('terraform init, fmt and apply with terraform.tfvars (needs manage.ts build)')
    .option('-y, --yes', 'apply without asking for confirmation')
    .action(async (flags: { yes?: boolean }) => {
      await runPreflight((await loadTfvars()).aws_region);
      await terraformApply({ autoApprove: flags.yes === true });
    });
};
