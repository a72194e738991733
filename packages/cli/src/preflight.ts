import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts';
import { TERRAFORM_DIR } from '@binaryalert/deployment';

/**
 * A pre-flight check failed: the message is one sentence saying what is wrong and what to do,
 * printed before any test, build or Terraform run could take minutes to hit the same wall.
 */
export class PreflightError extends Error {
  override readonly name = 'PreflightError';
}

/** How long the STS call and `terraform version` may take before the check gives up. */
export const PREFLIGHT_TIMEOUT_MS = 10_000;

export interface PreflightOptions {
  /** aws_region from terraform.tfvars: the region Terraform and the CLI talk to. */
  region: string;
  /** Check the AWS credentials with STS GetCallerIdentity (default true). */
  aws?: boolean;
  /** Check that Terraform runs and is new enough for terraform/versions.tf (default true). */
  terraform?: boolean;
  /** Environment for the terraform child process (tests pass a PATH). */
  env?: NodeJS.ProcessEnv;
  terraformDir?: string;
  timeoutMs?: number;
}

export interface PreflightReport {
  account?: string;
  arn?: string;
  terraformVersion?: string;
}

/**
 * The pre-flight of `deploy`, `apply`, `deploy-rules` and `destroy`: Terraform runs (and is at
 * least the version terraform/versions.tf requires), and the default AWS credential chain yields
 * credentials that STS accepts in the configured region. Each failure is a PreflightError.
 */
export async function preflight(options: PreflightOptions): Promise<PreflightReport> {
  const timeoutMs = options.timeoutMs ?? PREFLIGHT_TIMEOUT_MS;
  const report: PreflightReport = {};
  if (options.terraform !== false) {
    report.terraformVersion = await checkTerraform(
      options.terraformDir ?? TERRAFORM_DIR,
      options.env ?? process.env,
      timeoutMs,
    );
  }
  if (options.aws !== false)
    Object.assign(report, await checkAwsIdentity(options.region, timeoutMs));
  return report;
}

/** One line for the user: which account and region they are about to change. */
export function describePreflight(report: PreflightReport, region: string): string {
  const parts: string[] = [];
  if (report.account) parts.push(`AWS account ${report.account} (${report.arn}) in ${region}`);
  if (report.terraformVersion) parts.push(`Terraform ${report.terraformVersion}`);
  return `pre-flight ok: ${parts.join('; ')}`;
}

async function checkTerraform(
  terraformDir: string,
  env: NodeJS.ProcessEnv,
  timeoutMs: number,
): Promise<string> {
  let stdout: string;
  try {
    ({ stdout } = await promisify(execFile)('terraform', ['version', '-json'], {
      env,
      timeout: timeoutMs,
      encoding: 'utf8',
    }));
  } catch (error) {
    const failure = error as NodeJS.ErrnoException & { killed?: boolean };
    if (failure.code === 'ENOENT') {
      throw new PreflightError(
        'Terraform is not installed or not on PATH: install Terraform (https://developer.hashicorp.com/terraform/install) and run this again.',
      );
    }
    const why = failure.killed ? `did not answer within ${timeoutMs / 1000} s` : firstLine(failure);
    throw new PreflightError(`\`terraform version\` failed (${why}): check the Terraform install.`);
  }
  const version = parseTerraformVersion(stdout);
  const required = await requiredTerraformVersion(terraformDir);
  if (required && compareVersions(version, required) < 0) {
    throw new PreflightError(
      `Terraform ${version} is older than the ${required} terraform/versions.tf requires: upgrade Terraform and run this again.`,
    );
  }
  return version;
}

function parseTerraformVersion(stdout: string): string {
  try {
    const parsed = JSON.parse(stdout) as { terraform_version?: unknown };
    if (typeof parsed.terraform_version === 'string') return parsed.terraform_version;
  } catch {
    // Not JSON: fall through to the error below.
  }
  throw new PreflightError(
    '`terraform version -json` printed no version: check that `terraform` on PATH is Terraform.',
  );
}

/** The minimum of `required_version = ">= X"` in versions.tf (the one definition of it). */
async function requiredTerraformVersion(terraformDir: string): Promise<string | undefined> {
  const versions = await readFile(path.join(terraformDir, 'versions.tf'), 'utf8').catch(() => '');
  return /required_version\s*=\s*">=\s*([\d.]+)"/.exec(versions)?.[1];
}

function compareVersions(a: string, b: string): number {
  const pa = a.split(/[.-]/).map((part) => Number.parseInt(part, 10) || 0);
  const pb = b.split(/[.-]/).map((part) => Number.parseInt(part, 10) || 0);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const diff = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (diff !== 0) return diff;
  }
  return 0;
}

/** STS error codes that mean "credentials found, and AWS refused them". */
const REJECTED_CREDENTIALS = new Set([
  'InvalidClientTokenId',
  'SignatureDoesNotMatch',
  'ExpiredToken',
  'ExpiredTokenException',
  'UnrecognizedClientException',
  'AccessDenied',
  'InvalidAccessKeyId',
]);

async function checkAwsIdentity(
  region: string,
  timeoutMs: number,
): Promise<{ account: string; arn: string }> {
  // One attempt: a wrong setup should fail now, not after the SDK's retries and back-off.
  const sts = new STSClient({ region, maxAttempts: 1 });
  const abort = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  // The credential chain itself (SSO, IMDS, a credential_process) can stall before any request
  // exists to abort, so the timeout races the whole call.
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => {
      abort.abort();
      reject(new Error('timed out'));
    }, timeoutMs);
  });
  try {
    const identity = await Promise.race([
      sts.send(new GetCallerIdentityCommand({}), { abortSignal: abort.signal }),
      timeout,
    ]);
    return { account: identity.Account ?? 'unknown', arn: identity.Arn ?? 'unknown' };
  } catch (error) {
    throw credentialError(
      error as Error & { code?: string },
      region,
      abort.signal.aborted,
      timeoutMs,
    );
  } finally {
    clearTimeout(timer);
    sts.destroy();
  }
}

function credentialError(
  error: Error & { code?: string },
  region: string,
  timedOut: boolean,
  timeoutMs: number,
): PreflightError {
  if (timedOut) {
    return new PreflightError(
      `AWS STS in ${region} did not answer within ${timeoutMs / 1000} s: check the network and aws_region in terraform.tfvars.`,
    );
  }
  if (error.name === 'CredentialsProviderError') {
    return new PreflightError(
      `No AWS credentials found (${firstLine(error)}): run \`aws configure\` or \`aws sso login\`, or set AWS_PROFILE, and run this again.`,
    );
  }
  if (REJECTED_CREDENTIALS.has(error.name)) {
    return new PreflightError(
      `AWS refused the credentials in ${region} (${error.name}: ${firstLine(error)}): refresh them, or enable the region for the account, and run this again.`,
    );
  }
  if (error.code === 'ENOTFOUND' || error.code === 'EAI_AGAIN') {
    return new PreflightError(
      `Cannot resolve the STS endpoint of ${region} (${error.code}): check aws_region in terraform.tfvars and the network.`,
    );
  }
  return new PreflightError(
    `Cannot verify the AWS credentials in ${region} (${error.name}: ${firstLine(error)}): fix that and run this again.`,
  );
}

function firstLine(error: Error): string {
  return (error.message || String(error)).split('\n')[0]!.trim();
}

/** Runs the pre-flight for a command and prints its one-line summary. */
export async function runPreflight(
  region: string,
  options: Omit<PreflightOptions, 'region'> & { log?: (line: string) => void } = {},
): Promise<PreflightReport> {
  const { log = (line: string) => process.stdout.write(`${line}\n`), ...checks } = options;
  const report = await preflight({ region, ...checks });
  log(describePreflight(report, region));
  return report;
}
