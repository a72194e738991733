/**
 * End-to-end fixture: the real deployment zips (built as `manage.ts build` builds them) running in
 * a local stack on a random port with a temp data directory, driven from outside with the aws CLI
 * and SDK clients.
 */
import { execFile } from 'node:child_process';
import { cp, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { InvokeCommand, LambdaClient } from '@aws-sdk/client-lambda';
import { S3Client } from '@aws-sdk/client-s3';
import { SQSClient } from '@aws-sdk/client-sqs';
import { objectId } from '@binaryalert/core';
import { type BinaryAlertConfig } from '@binaryalert/deployment';

import { buildLambdaZips } from '../../../cli/src/build';
import type { AlertRecord } from '../alerts';
import { startLocalStack, type LocalStack, type LocalStackOptions } from '../stack';
import { tempDir, testConfig, waitFor } from './fixtures';

const run = promisify(execFile);

/** The EICAR test string, which the starter rules flag. */
export const EICAR = 'X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*';
export const REPO_RULES = join(__dirname, '..', '..', '..', '..', 'rules');

/** Builds the three zips from the repository's sources (and `rulesDir`, default rules/). */
export async function buildZips(
  outDir: string,
  rulesDir?: string,
  analyzerOnly = false,
): Promise<void> {
  await buildLambdaZips({
    outDir,
    ...(rulesDir ? { rulesDir } : {}),
    ...(analyzerOnly ? { functions: ['analyzer'] as const } : {}),
  });
}

/** A copy of the repository's rules plus one more rule file. */
export async function rulesWith(dir: string, file: string, rule: string): Promise<string> {
  await cp(REPO_RULES, dir, { recursive: true });
  await mkdir(join(dir, 'e2e'), { recursive: true });
  await writeFile(join(dir, 'e2e', file), rule);
  return dir;
}

export interface E2E {
  stack: LocalStack;
  /** The settings the stack runs with. */
  config: BinaryAlertConfig;
  dataDir: string;
  zipsDir: string;
  /** SDK clients as a user configures them: defaults (checksums and all), path-style S3. */
  s3: S3Client;
  sqs: SQSClient;
  dynamo: DynamoDBClient;
  lambda: LambdaClient;
  /** Runs /usr/bin/aws (v2) against the stack. */
  aws(args: string[]): Promise<string>;
  /** Alerts naming one object of the binaries bucket. */
  alertsFor(key: string): AlertRecord[];
  /** Starts a retro-analysis as `manage.ts retro-analyze --local` does: invokes the batcher. */
  retroAnalyze(): Promise<void>;
  /** Waits until the queue is empty and no function is running, for two checks in a row. */
  drained(timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
  /** Stops and deletes the temp directories. */
  dispose(): Promise<void>;
}

export interface E2EOptions extends Partial<Omit<LocalStackOptions, 'config'>> {
  config?: BinaryAlertConfig;
  configOverrides?: Partial<BinaryAlertConfig>;
}

export async function startE2E(options: E2EOptions = {}): Promise<E2E> {
  const data = options.dataDir ? undefined : await tempDir('ba-e2e-data-');
  const zips = options.zipsDir ? undefined : await tempDir('ba-e2e-zips-');
  const dataDir = options.dataDir ?? data!.path;
  const zipsDir = options.zipsDir ?? zips!.path;
  if (zips) await buildZips(zipsDir);
  const config = options.config ?? (await testConfig(options.configOverrides));
  const printed: string[] = [];
  const stack = await startLocalStack({
    port: 0,
    statusIntervalMs: 0,
    // E2E_PRINT=1 shows the stack's console while a test runs.
    print: (text) => {
      printed.push(text);
      if (process.env.E2E_PRINT) process.stdout.write(`${text}\n`);
    },
    ...options,
    config,
    dataDir,
    zipsDir,
  });
  const clientConfig = {
    endpoint: stack.endpoint,
    region: stack.region,
    credentials: stack.credentials,
  };
  const s3 = new S3Client({ ...clientConfig, forcePathStyle: true });
  const sqs = new SQSClient(clientConfig);
  const dynamo = new DynamoDBClient(clientConfig);
  const lambda = new LambdaClient(clientConfig);
  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    [s3, sqs, dynamo, lambda].forEach((client) => client.destroy());
    await stack.stop();
  };
  const idle = async (): Promise<boolean> => {
    const status = await stack.status();
    const running =
      stack.lambda.pending(stack.names.analyzerFunction) +
      stack.lambda.pending(stack.names.batcherFunction);
    return status.queued === 0 && status.inFlight === 0 && running === 0;
  };
  return {
    stack,
    config,
    dataDir,
    zipsDir,
    s3,
    sqs,
    dynamo,
    lambda,
    async aws(args) {
      const { stdout } = await run('/usr/bin/aws', ['--endpoint-url', stack.endpoint, ...args], {
        env: {
          PATH: process.env.PATH ?? '/usr/bin:/bin',
          HOME: dataDir,
          AWS_ACCESS_KEY_ID: stack.credentials.accessKeyId,
          AWS_SECRET_ACCESS_KEY: stack.credentials.secretAccessKey,
          AWS_REGION: stack.region,
          AWS_PAGER: '',
        },
        maxBuffer: 64 * 1024 * 1024,
      });
      return stdout;
    },
    alertsFor(key) {
      const id = objectId(stack.names.bucket, key);
      return stack.alerts.filter((alert) => {
        const info = (alert.message as { FileInfo?: { S3Location?: string } } | null)?.FileInfo;
        return info?.S3Location === id;
      });
    },
    async retroAnalyze() {
      const result = await lambda.send(
        new InvokeCommand({
          FunctionName: stack.names.batcherFunction,
          InvocationType: 'Event',
          Payload: Buffer.from('{}'),
        }),
      );
      if (result.StatusCode !== 202)
        throw new Error(`batcher invoke returned ${result.StatusCode}`);
    },
    async drained(timeoutMs = 120_000) {
      await waitFor(
        async () => {
          if (!(await idle())) return undefined;
          await new Promise((ok) => setTimeout(ok, 1500));
          return (await idle()) ? true : undefined;
        },
        timeoutMs,
        `the queue to drain (printed: ${printed.slice(-5).join(' | ')})`,
      );
    },
    stop,
    async dispose() {
      await stop();
      await data?.remove();
      await zips?.remove();
    },
  };
}
