import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import {
  FUNCTIONS,
  LAMBDA_DIST_DIR,
  REPO_ROOT,
  DEFAULT_TFVARS_PATH,
  loadTfvars,
} from '@binaryalert/deployment';
import {
  DataDirLockedError,
  DEFAULT_DATA_DIR,
  DEFAULT_LOCAL_PORT,
  LOCAL_CREDENTIALS,
  startLocalStack,
  type LocalStack,
} from '@binaryalert/local';

import { buildLambdaZips, LAMBDA_FUNCTIONS } from '../build';
import { UsageError, type CommandRegistrar } from '../usage';
import { DEFAULT_COMPILED_RULES, displayPath } from '../rules/paths';

interface LocalFlags {
  port: string;
  dataDir: string;
  webhook: string[];
  workers?: string;
  build: boolean;
  zipsDir: string;
  tfvars: string;
}

/** What a rebuild depends on: the functions' sources, the runtime core, the addon and the rules. */
const BUILD_INPUTS = [
  ...FUNCTIONS.map((fn) => path.join(REPO_ROOT, fn.packageDir, 'src')),
  ...['core', 'yara'].map((pkg) => path.join(REPO_ROOT, 'packages', pkg, 'src')),
  path.join(REPO_ROOT, 'packages', 'yara', 'build', 'Release'),
  path.join(REPO_ROOT, 'rules'),
];

async function newestMtime(target: string): Promise<number> {
  const stat = await fs.stat(target).catch(() => undefined);
  if (!stat) return 0;
  if (!stat.isDirectory()) return stat.mtimeMs;
  let newest = stat.mtimeMs;
  for (const entry of await fs.readdir(target)) {
    if (entry === 'node_modules' || entry.startsWith('.')) continue;
    newest = Math.max(newest, await newestMtime(path.join(target, entry)));
  }
  return newest;
}

/** Whether any zip is missing or older than a source, rule or the addon it is built from. */
export async function zipsAreStale(zipsDir: string): Promise<boolean> {
  let oldestZip = Infinity;
  for (const fn of LAMBDA_FUNCTIONS) {
    const stat = await fs.stat(path.join(zipsDir, `${fn}.zip`)).catch(() => undefined);
    if (!stat) return true;
    oldestZip = Math.min(oldestZip, stat.mtimeMs);
  }
  for (const input of BUILD_INPUTS) {
    if ((await newestMtime(input)) > oldestZip) return true;
  }
  return false;
}

function parsePort(value: string): number {
  const port = Number(value);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new UsageError(`--port must be a port number (0-65535), not ${value}`);
  }
  return port;
}

function parseWebhook(value: string, previous: string[]): string[] {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new UsageError(`--webhook must be an http(s) URL, not ${value}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new UsageError(`--webhook must be an http(s) URL, not ${value}`);
  }
  return [...previous, value];
}

/** The banner: where everything is and how to use it from the aws CLI. */
export function describeStack(stack: LocalStack, dataDir: string): string {
  const e = stack.endpoint;
  return [
    `BinaryAlert local stack on ${e} (data in ${dataDir})`,
    `  S3 bucket:      ${stack.names.bucket}`,
    `  DynamoDB:       ${stack.names.verdictTable} (verdicts), ${stack.names.table} (match history)`,
    `  SQS queue:      ${stack.queueUrl}`,
    `  dead letters:   ${stack.deadLetterQueueUrl}`,
    `  credentials:    ${LOCAL_CREDENTIALS.accessKeyId} / ${LOCAL_CREDENTIALS.secretAccessKey}, region ${stack.region}`,
    '',
    'Try (aws CLI v2):',
    `  export AWS_ACCESS_KEY_ID=${LOCAL_CREDENTIALS.accessKeyId} AWS_SECRET_ACCESS_KEY=${LOCAL_CREDENTIALS.secretAccessKey} AWS_REGION=${stack.region}`,
    `  aws --endpoint-url ${e} s3 cp suspicious.exe s3://${stack.names.bucket}/ --metadata filepath=C:/Users/x/suspicious.exe`,
    `  ./manage.ts results --local ${e}            # the verdict of every object`,
    `  aws --endpoint-url ${e} sqs get-queue-attributes --queue-url ${stack.queueUrl} --attribute-names All`,
    'Alerts appear below and in alerts.jsonl; Lambda logs are in logs/. Ctrl-C stops the stack.',
  ].join('\n');
}

export const registerLocal: CommandRegistrar = (program: Command) => {
  program
    .command('local')
    .description(
      'run the whole pipeline on this machine (S3, SQS, DynamoDB, SNS, Lambda) on one port',
    )
    .option('--port <port>', 'port on 127.0.0.1 (0 = any free port)', String(DEFAULT_LOCAL_PORT))
    .option(
      '--data-dir <dir>',
      'where objects, matches, logs and alerts are kept',
      DEFAULT_DATA_DIR,
    )
    .option('--webhook <url>', 'POST each alert as JSON to this URL (repeatable)', parseWebhook, [])
    .option('--workers <n>', 'analyzer worker processes (default: CPU count, at least 2)')
    .option('--zips-dir <dir>', 'Lambda deployment zips', LAMBDA_DIST_DIR)
    .option('--tfvars <file>', 'settings file', DEFAULT_TFVARS_PATH)
    .option('--no-build', 'use the zips as they are, even when missing or older than the sources')
    .action(async (flags: LocalFlags) => {
      const port = parsePort(flags.port);
      let workers: number | undefined;
      if (flags.workers !== undefined) {
        workers = Number(flags.workers);
        if (!Number.isInteger(workers) || workers < 1) {
          throw new UsageError(`--workers must be a positive integer, not ${flags.workers}`);
        }
      }
      const config = await loadTfvars(path.resolve(flags.tfvars));
      const zipsDir = path.resolve(flags.zipsDir);
      const dataDir = path.resolve(flags.dataDir);
      const out = (line: string) => process.stdout.write(`${line}\n`);

      if (flags.build && (await zipsAreStale(zipsDir))) {
        out(`building the Lambda zips into ${zipsDir} ...`);
        await buildLambdaZips({ outDir: zipsDir, log: (line) => out(`  ${line}`) });
      }

      let stack: LocalStack;
      try {
        stack = await startLocalStack({
          config,
          dataDir,
          zipsDir,
          port,
          webhooks: flags.webhook,
          ...(workers === undefined ? {} : { workers }),
          // compile-rules writes here; the stack releases what it writes (hot reload).
          compiledRules: DEFAULT_COMPILED_RULES,
          print: out,
        });
      } catch (error) {
        if (error instanceof DataDirLockedError) {
          process.stderr.write(`error: ${error.message}\n`);
          process.exitCode = 1;
          return;
        }
        if ((error as NodeJS.ErrnoException).code === 'EADDRINUSE') {
          process.stderr.write(
            `error: port ${port} on 127.0.0.1 is in use (another local stack?); choose one with --port\n`,
          );
          process.exitCode = 1;
          return;
        }
        throw error;
      }
      out(describeStack(stack, displayPath(dataDir)));

      // Ctrl-C reaches this process twice (from the terminal and relayed by tsx): the first
      // signal starts a clean stop, the second is ignored, a third forces the exit.
      let signals = 0;
      let requestStop = () => {};
      const stopRequested = new Promise<void>((resolve) => (requestStop = resolve));
      const onSignal = () => {
        signals += 1;
        if (signals === 1) requestStop();
        if (signals >= 3) process.exit(130);
      };
      process.on('SIGINT', onSignal);
      process.on('SIGTERM', onSignal);
      try {
        await stopRequested;
        out('stopping the local stack ...');
        await stack.stop();
        out('stopped; objects and matches are kept for the next start');
      } finally {
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
      }
    });
};
