import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import {
  DeleteObjectCommand,
  HeadObjectCommand,
  PutObjectCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import type { Command } from 'commander';
import { releaseObjectKey } from '@binaryalert/core';
import {
  loadTfvars,
  resourceNames,
  TERRAFORM_DIR,
  type BinaryAlertConfig,
} from '@binaryalert/deployment';
import { awsClientSettings, createAwsClients, destroyAwsClients, type LocalFlag } from '../aws';
import { describeRelease, releaseRules, type ReleaseOutcome } from '../rules/release';
import { DEFAULT_RULES_DIR } from '../rules/paths';
import { untestedWarning } from '../rules/samples';
import { requireDirectory } from './compile-rules';
import { retroAnalyze } from './retro-analyze';
import { UsageError, type CommandRegistrar } from '../usage';
import { runPreflight } from '../preflight';
import { abortOnInterrupt } from '../interrupt';

/** How often the local stack's analyzers check for a newer release (packages/local). */
const LOCAL_REFRESH_SECONDS = 1;

/**
 * Beside a release whose re-scan is due, until the batcher was started: a deploy-rules cut off
 * in between (killed while it waits for the analyzers) leaves it, and the next one, finding the
 * rules unchanged, starts the re-scan instead of skipping it.
 */
const RETRO_PENDING_FILE = 'retro_pending';

async function retroPending(s3: S3Client, bucket: string, version: number): Promise<boolean> {
  try {
    await s3.send(
      new HeadObjectCommand({ Bucket: bucket, Key: releaseObjectKey(version, RETRO_PENDING_FILE) }),
    );
    return true;
  } catch (error) {
    if ((error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode === 404)
      return false;
    throw error;
  }
}

/** The rules bucket Terraform created (`terraform output rules_bucket`). */
export async function rulesBucketFromTerraform(terraformDir = TERRAFORM_DIR): Promise<string> {
  try {
    const { stdout } = await promisify(execFile)(
      'terraform',
      [`-chdir=${terraformDir}`, 'output', '-raw', 'rules_bucket'],
      { encoding: 'utf8' },
    );
    const bucket = stdout.trim();
    if (!bucket) throw new Error('empty output');
    return bucket;
  } catch (error) {
    throw new UsageError(
      `cannot read the rules bucket from Terraform (${(error as Error).message.split('\n')[0]}); run manage.ts deploy once first`,
    );
  }
}

export interface DeployRulesOptions {
  config: BinaryAlertConfig;
  rulesDir: string;
  local?: LocalFlag;
  /** false = never re-analyze (--no-retro). */
  retro?: boolean;
  /** false = the caller ran the rule (sample) tests already (`deploy`). */
  testSamples?: boolean;
  /** The rules bucket on AWS (default: Terraform's output). */
  bucket?: () => Promise<string>;
  /** Waits before re-analysis (tests pass a fast one). */
  sleep?: (ms: number) => Promise<void>;
  log?: (line: string) => void;
  signal?: AbortSignal;
}

/**
 * `manage.ts deploy-rules`: compiles the rules, publishes them as the next release of the rules
 * bucket (none when they are unchanged), and, when rules were added or changed, re-analyzes the
 * bucket once every analyzer has had time to load the release (`rules_refresh_seconds`). Rules
 * unchanged since a release whose re-scan was due but never started (a run cut off while it
 * waited) start that re-scan.
 */
export async function deployRules(
  options: DeployRulesOptions,
): Promise<ReleaseOutcome & { retroAnalyzed: boolean }> {
  const log = options.log ?? ((line: string) => process.stdout.write(`${line}\n`));
  const local = options.local !== undefined && options.local !== false;
  const bucket = local
    ? resourceNames(options.config).rulesBucket
    : await (options.bucket ?? (() => rulesBucketFromTerraform()))();
  const clients = createAwsClients(awsClientSettings(options.config, options.local));
  try {
    const outcome = await releaseRules({
      s3: clients.s3,
      bucket,
      rulesDir: options.rulesDir,
      testSamples: options.testSamples !== false,
    });
    const warning = untestedWarning(outcome.samples);
    if (warning) log(warning);
    const { version } = outcome.release;
    const pendingKey = releaseObjectKey(version, RETRO_PENDING_FILE);
    if (!outcome.published) {
      log(`rules unchanged: v${version} (${outcome.release.ruleCount} rules)`);
      if (options.retro === false || !(await retroPending(clients.s3, bucket, version))) {
        return { ...outcome, retroAnalyzed: false };
      }
      log(
        `the re-scan after rules v${version} was never started (deploy-rules was cut off): starting it now`,
      );
    } else {
      log(`${describeRelease(outcome.release, outcome)} to s3://${bucket}`);
      const delta = outcome.release.delta;
      if (delta && delta.namespaces.length > 0) {
        log(
          delta.prefilter
            ? `content prefilter on: the re-scan reads only objects whose content may hold what the ${delta.ruleCount} new or changed rules require`
            : `content prefilter off: a new or changed rule requires no literal bytes this can read (xor, base64, not, a string without 3 literal bytes, ...): the re-scan reads every object`,
        );
      }
      if (outcome.added.length + outcome.changed.length === 0)
        return { ...outcome, retroAnalyzed: false };
      if (options.retro === false) {
        log('skipping retroactive analysis (--no-retro)');
        return { ...outcome, retroAnalyzed: false };
      }
      await clients.s3.send(new PutObjectCommand({ Bucket: bucket, Key: pendingKey, Body: '' }));
    }
    const refresh = local ? LOCAL_REFRESH_SECONDS : options.config.rules_refresh_seconds;
    // Every analysis that starts after this wait checks for (and loads) the new release first.
    const waitMs = (refresh + 1) * 1000;
    log(`waiting ${waitMs / 1000} s for the analyzers to load v${version}`);
    await (options.sleep ?? ((ms) => new Promise((resolve) => setTimeout(resolve, ms))))(waitMs);
    await retroAnalyze({
      config: options.config,
      local: options.local,
      mode: 'delta',
      ...(options.signal ? { signal: options.signal } : {}),
    });
    // The batcher was started (retroAnalyze throws otherwise): the re-scan runs without us.
    await clients.s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: pendingKey }));
    return { ...outcome, retroAnalyzed: true };
  } finally {
    destroyAwsClients(clients);
  }
}

export const registerDeployRules: CommandRegistrar = (program: Command) => {
  program
    .command('deploy-rules')
    .description('compile the rules and release them to the analyzers without a redeploy')
    .option('--local [endpoint]', 'release to the local stack (default http://127.0.0.1:4566)')
    .option('--rules-dir <dir>', 'rules directory', DEFAULT_RULES_DIR)
    .option('--no-retro', 'do not re-analyze the bucket with the new rules')
    .action(async (flags: { local?: LocalFlag; rulesDir: string; retro: boolean }) => {
      const rulesDir = path.resolve(flags.rulesDir);
      await requireDirectory(rulesDir, '--rules-dir');
      const config = await loadTfvars();
      // Locally there is no account to check and Terraform is not involved.
      if (flags.local === undefined || flags.local === false) await runPreflight(config.aws_region);
      await abortOnInterrupt((signal) =>
        deployRules({ config, rulesDir, local: flags.local, retro: flags.retro, signal }),
      );
    });
};
