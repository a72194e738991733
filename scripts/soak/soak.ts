/**
 * `pnpm soak`: uploads through the local stack while faults are injected at a set rate, kills the
 * whole stack once and starts it again, then checks the outcome an operator relies on: every
 * object that still exists has a verdict, every EICAR upload alerted exactly once, the dead-letter
 * queue holds only the poison messages, and nothing was written outside the data directory.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { pathToFileURL } from 'node:url';
import { DynamoDBClient, QueryCommand } from '@aws-sdk/client-dynamodb';
import { InvokeCommand, LambdaClient } from '@aws-sdk/client-lambda';
import { DeleteObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { GetQueueAttributesCommand, ReceiveMessageCommand, SQSClient } from '@aws-sdk/client-sqs';

import { decodeS3Key, objectId } from '../../packages/core/src';
import { resourceNames } from '../../packages/deployment/src';
import { LOCAL_CREDENTIALS } from '../../packages/local/src';
import { buildZips, EICAR } from '../../packages/local/src/testing/e2e';
import { testConfig } from '../../packages/local/src/testing/fixtures';
import type { StackProcessMessage, StackProcessSettings } from './stack-process';

export interface SoakOptions {
  objects: number;
  /** Chance of each injected fault per eligible request (S3 GET errors and slow reads, DynamoDB
   * throttling, duplicate notifications, analyzer kills); SNS publish failures at 5x this. */
  faultRate: number;
  seed: number;
  /** Upload concurrency. */
  concurrency?: number;
  /** Give up waiting for verdicts after this long. */
  timeoutMs?: number;
  log?: (line: string) => void;
  /** Keep the temp directory (data, zips, stack.log) for a look afterwards. */
  keep?: boolean;
}

type Kind = 'eicar' | 'clean' | 'deleted' | 'poison';

interface PlannedObject {
  key: string;
  kind: Kind;
  body: Buffer;
}

export interface SoakReport {
  uploaded: number;
  deletedAfterUpload: number;
  poisonObjects: number;
  verdictsExpected: number;
  verdicted: number;
  missingVerdicts: string[];
  alertsExpected: number;
  alertsDelivered: number;
  alertsDuplicated: number;
  alertsMissed: number;
  alertsUnexpected: number;
  /** DLQ messages; poison objects named in them; objects that travelled in a message with a poison
   * object (batched retro messages); objects in messages without any poison object (failures). */
  deadLetters: { messages: number; poisonKeys: number; coTravellers: number; otherKeys: string[] };
  outsideDataDir: string[];
  faults: Record<string, number>;
  stackKills: number;
  emulatorRestarts: number;
  /** Objects without a verdict when the queue ran dry after the kill: lost with the killed
   * stack's in-memory queue, recovered by a retro-analysis (what an operator runs). */
  lostWithQueue: number;
  wallSeconds: number;
  failures: string[];
}

const TSX_LOADER = pathToFileURL(require.resolve('tsx')).href;
const POISON_PREFIX = 'poison/';
const VISIBILITY_SECONDS = 30;
const MAX_RECEIVES = 4;

/** Keys of every odd kind: traversal, 1,024 bytes, unicode, spaces and plus signs. */
function keyFor(i: number, kind: Kind): string {
  const base = kind === 'poison' ? `${POISON_PREFIX}${i}` : `soak/${i}`;
  if (i % 25 === 0) return `${base}/../../escape-${i}.bin`;
  if (i % 97 === 5) return `${base}/${'k'.repeat(1024 - Buffer.byteLength(`${base}/`))}`;
  if (i % 13 === 0) return `${base}/ünï códe+${i} 日本.exe`;
  return `${base}.bin`;
}

/** 5% EICAR (each with distinct content, so each alerts), 2% deleted right after upload, 0.5% poison. */
function plan(objects: number, seed: number): PlannedObject[] {
  return Array.from({ length: objects }, (_, i) => {
    const kind: Kind =
      i % 200 === 17 ? 'poison' : i % 20 === 3 ? 'eicar' : i % 50 === 11 ? 'deleted' : 'clean';
    const body =
      kind === 'eicar'
        ? Buffer.from(`${EICAR}\n${seed}-${i}\n`, 'latin1')
        : randomBytes(1024 + ((i * 7919) % 65536));
    return { key: keyFor(i, kind), kind, body };
  });
}

class StackProcess {
  private child?: ChildProcess;
  ready?: Extract<StackProcessMessage, { type: 'ready' }>;

  constructor(private readonly settings: Omit<StackProcessSettings, 'seed'>) {}

  async start(seed: number): Promise<void> {
    const child = fork(
      join(__dirname, 'stack-process.ts'),
      [JSON.stringify({ ...this.settings, seed })],
      {
        execArgv: ['--import', TSX_LOADER],
        stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      },
    );
    this.child = child;
    this.ready = await new Promise((ok, fail) => {
      child.once('message', (message: StackProcessMessage) => {
        if (message.type === 'ready') ok(message);
      });
      child.once('exit', (code) =>
        fail(new Error(`the soak's stack exited (${code}) while starting`)),
      );
    });
    this.settings.port = Number(new URL(this.ready.endpoint).port);
  }

  /** The whole stack dies at once, as with a power cut or an OOM kill. */
  async kill(): Promise<void> {
    const child = this.child!;
    const exited = new Promise((ok) => child.once('exit', ok));
    child.kill('SIGKILL');
    await exited;
  }

  async report(): Promise<Extract<StackProcessMessage, { type: 'report' }>> {
    const child = this.child!;
    return new Promise((ok) => {
      const onMessage = (message: StackProcessMessage): void => {
        if (message.type !== 'report') return;
        child.off('message', onMessage);
        ok(message);
      };
      child.on('message', onMessage);
      child.send({ type: 'report' });
    });
  }

  async stop(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((ok) => child.once('exit', ok));
    child.send({ type: 'stop' });
    await exited;
  }
}

async function filesOutside(root: string, allowed: string[]): Promise<string[]> {
  const entries = await readdir(root, { recursive: true, withFileTypes: true });
  return entries
    .filter((e) => e.isFile())
    .map((e) => relative(root, join(e.parentPath, e.name)))
    .filter((path) => !allowed.some((dir) => path === dir || path.startsWith(`${dir}/`)));
}

export async function runSoak(options: SoakOptions): Promise<SoakReport> {
  const log = options.log ?? (() => undefined);
  const started = performance.now();
  const root = await mkdtemp(join(tmpdir(), 'ba-soak-'));
  const dataDir = join(root, 'data');
  const zipsDir = join(root, 'zips');
  const logPath = join(root, 'stack.log');
  const failures: string[] = [];
  const clients: { destroy(): void }[] = [];
  let stack: StackProcess | undefined;
  try {
    await mkdir(zipsDir, { recursive: true });
    log(`building the Lambda zips into ${zipsDir} ...`);
    await buildZips(zipsDir);
    const config = await testConfig({ max_receives: MAX_RECEIVES, lambda_analyze_timeout_sec: 20 });
    const names = resourceNames(config);
    const rate = options.faultRate;
    stack = new StackProcess({
      config,
      dataDir,
      zipsDir,
      port: 0,
      visibilityTimeoutSeconds: VISIBILITY_SECONDS,
      faults: {
        s3GetErrorRate: rate,
        s3SlowReadRate: rate,
        slowReadMs: 20,
        dynamoThrottleRate: rate,
        snsPublishErrorRate: Math.min(0.5, rate * 5),
        duplicateNotificationRate: rate,
        analyzerKillRate: rate,
        poisonPrefix: POISON_PREFIX,
      },
      logPath,
    });
    await stack.start(options.seed);
    const endpoint = stack.ready!.endpoint;
    const sdk = {
      endpoint,
      region: config.aws_region,
      credentials: LOCAL_CREDENTIALS,
      forcePathStyle: true,
    };
    const s3 = new S3Client({ ...sdk, maxAttempts: 5 });
    const sqs = new SQSClient(sdk);
    const dynamo = new DynamoDBClient(sdk);
    const lambda = new LambdaClient(sdk);
    clients.push(s3, sqs, dynamo, lambda);

    const objects = plan(options.objects, options.seed);
    const killAt = Math.floor(objects.length / 2);
    let next = 0;
    let uploaded = 0;
    let killing: Promise<void> | undefined;
    const upload = async (object: PlannedObject): Promise<void> => {
      for (let attempt = 1; ; attempt++) {
        try {
          await s3.send(
            new PutObjectCommand({ Bucket: names.bucket, Key: object.key, Body: object.body }),
          );
          if (object.kind === 'deleted') {
            await s3.send(new DeleteObjectCommand({ Bucket: names.bucket, Key: object.key }));
          }
          return;
        } catch (error) {
          // The stack is down (killed on purpose): a user's script tries again.
          if (attempt >= 30) throw error;
          await (killing ?? new Promise((ok) => setTimeout(ok, 1000)));
        }
      }
    };
    log(`uploading ${objects.length} objects (fault rate ${rate}, seed ${options.seed}) ...`);
    await Promise.all(
      Array.from({ length: options.concurrency ?? 8 }, async () => {
        while (next < objects.length) {
          const index = next++;
          if (index === killAt && !killing) {
            killing = (async () => {
              log(
                `killing the whole stack with SIGKILL after ${uploaded} uploads, then starting it again`,
              );
              await stack!.kill();
              await stack!.start(options.seed + 1);
            })();
            await killing;
            killing = undefined;
          }
          await upload(objects[index]!);
          uploaded += 1;
        }
      }),
    );

    const expectVerdict = objects.filter((o) => o.kind === 'eicar' || o.kind === 'clean');
    const verdictKeys = async (): Promise<Set<string>> => {
      const keys = new Set<string>();
      let start: Record<string, import('@aws-sdk/client-dynamodb').AttributeValue> | undefined;
      do {
        const page = await dynamo.send(
          new QueryCommand({
            TableName: names.verdictTable,
            KeyConditionExpression: '#b = :b',
            ExpressionAttributeNames: { '#b': 'Bucket', '#k': 'Key' },
            ExpressionAttributeValues: { ':b': { S: names.bucket } },
            ProjectionExpression: '#k',
            ExclusiveStartKey: start,
          }),
        );
        for (const item of page.Items ?? []) if (item.Key?.S !== undefined) keys.add(item.Key.S);
        start = page.LastEvaluatedKey;
      } while (start);
      return keys;
    };
    const queueDepth = async (url: string): Promise<number> => {
      const { Attributes = {} } = await sqs.send(
        new GetQueueAttributesCommand({
          QueueUrl: url,
          AttributeNames: ['ApproximateNumberOfMessages', 'ApproximateNumberOfMessagesNotVisible'],
        }),
      );
      return (
        Number(Attributes.ApproximateNumberOfMessages) +
        Number(Attributes.ApproximateNumberOfMessagesNotVisible)
      );
    };
    const poisonCount = objects.filter((o) => o.kind === 'poison').length;
    let lostWithQueue = 0;
    let missing: string[] = [];
    let idleChecks = 0;
    const deadline = Date.now() + (options.timeoutMs ?? 30 * 60_000);
    log('waiting for every object to get a verdict and the poison messages to reach the DLQ ...');
    for (;;) {
      const verdicts = await verdictKeys();
      missing = expectVerdict.filter((o) => !verdicts.has(o.key)).map((o) => o.key);
      const queued = await queueDepth(stack.ready!.queueUrl);
      const dead = await queueDepth(stack.ready!.deadLetterQueueUrl);
      if (missing.length === 0 && queued === 0 && dead >= poisonCount) break;
      idleChecks = queued === 0 ? idleChecks + 1 : 0;
      if (idleChecks >= 5 && missing.length > 0 && lostWithQueue === 0) {
        // Nothing left to deliver, objects still without a verdict: their messages died with the
        // killed stack's in-memory queue. Recover as an operator would: a retro-analysis.
        lostWithQueue = missing.length;
        log(
          `${missing.length} objects lost their message with the killed stack; running a retro-analysis`,
        );
        await lambda.send(
          new InvokeCommand({
            FunctionName: names.batcherFunction,
            InvocationType: 'Event',
            Payload: Buffer.from('{}'),
          }),
        );
        idleChecks = 0;
      }
      if (Date.now() > deadline) {
        failures.push(
          `timed out: ${missing.length} objects without a verdict, ${queued} queued, ${dead}/${poisonCount} dead letters`,
        );
        break;
      }
      await new Promise((ok) => setTimeout(ok, 2000));
    }

    // Alerts: alerts.jsonl survives the kill, unlike the stack's memory.
    const matchesTopic = `:${names.matchesTopic}`;
    const alertCounts = new Map<string, number>();
    const lines = (await readFile(join(dataDir, 'alerts.jsonl'), 'utf8').catch(() => '')).split(
      '\n',
    );
    for (const line of lines.filter(Boolean)) {
      const alert = JSON.parse(line) as {
        topicArn: string;
        message: { FileInfo?: { S3Location?: string } };
      };
      if (!alert.topicArn.endsWith(matchesTopic)) continue;
      const location = alert.message.FileInfo?.S3Location ?? '';
      alertCounts.set(location, (alertCounts.get(location) ?? 0) + 1);
    }
    const eicarIds = new Set(
      objects.filter((o) => o.kind === 'eicar').map((o) => objectId(names.bucket, o.key)),
    );
    let delivered = 0;
    let duplicated = 0;
    let unexpected = 0;
    for (const [location, count] of alertCounts) {
      if (eicarIds.has(location)) {
        delivered += 1;
        duplicated += count - 1;
      } else unexpected += count;
    }

    // A message of several objects (the batcher groups them) dies with its poison object: it
    // counts as poison when any of its objects is; its other objects have their verdicts anyway.
    const deadMessages: string[][] = [];
    for (;;) {
      const { Messages = [] } = await sqs.send(
        new ReceiveMessageCommand({
          QueueUrl: stack.ready!.deadLetterQueueUrl,
          MaxNumberOfMessages: 10,
          VisibilityTimeout: 600,
        }),
      );
      if (Messages.length === 0) break;
      for (const message of Messages) {
        try {
          const body = JSON.parse(message.Body ?? '') as {
            Records: { s3: { object: { key: string } } }[];
          };
          deadMessages.push(body.Records.map((r) => decodeS3Key(r.s3.object.key)));
        } catch {
          deadMessages.push([`(not an S3 notification) ${message.Body ?? ''}`.slice(0, 200)]);
        }
      }
    }
    const isPoison = (key: string): boolean => key.startsWith(POISON_PREFIX);
    const deadKeys = deadMessages.flat();
    const otherDead = deadMessages.filter((keys) => !keys.some(isPoison)).flat();
    const coTravellers = deadMessages
      .filter((keys) => keys.some(isPoison))
      .flat()
      .filter((k) => !isPoison(k));

    const processReport = await stack.report();
    const outside = [
      ...(await filesOutside(root, ['data', 'zips', 'stack.log'])),
      ...(await readdir(dirname(root))).filter((name) => name.startsWith('escape-')),
    ];
    const report: SoakReport = {
      uploaded,
      deletedAfterUpload: objects.filter((o) => o.kind === 'deleted').length,
      poisonObjects: poisonCount,
      verdictsExpected: expectVerdict.length,
      verdicted: expectVerdict.length - missing.length,
      missingVerdicts: missing.slice(0, 20),
      alertsExpected: eicarIds.size,
      alertsDelivered: delivered,
      alertsDuplicated: duplicated,
      alertsMissed: eicarIds.size - delivered,
      alertsUnexpected: unexpected,
      deadLetters: {
        messages: deadMessages.length,
        poisonKeys: new Set(deadKeys.filter(isPoison)).size,
        coTravellers: coTravellers.length,
        otherKeys: otherDead.slice(0, 20),
      },
      outsideDataDir: outside,
      faults: processReport.faults,
      stackKills: 1,
      emulatorRestarts: processReport.emulatorRestarts,
      lostWithQueue,
      wallSeconds: (performance.now() - started) / 1000,
      failures,
    };
    if (report.uploaded !== objects.length)
      failures.push(`uploaded ${report.uploaded} of ${objects.length}`);
    if (missing.length > 0) failures.push(`${missing.length} objects without a verdict`);
    if (duplicated > 0) failures.push(`${duplicated} duplicate alerts`);
    if (report.alertsMissed > 0) failures.push(`${report.alertsMissed} missed alerts`);
    if (unexpected > 0) failures.push(`${unexpected} alerts for objects that are not EICAR`);
    if (otherDead.length > 0) failures.push(`${otherDead.length} dead letters that are not poison`);
    if (report.deadLetters.poisonKeys !== poisonCount)
      failures.push(`${report.deadLetters.poisonKeys} of ${poisonCount} poison objects in the DLQ`);
    if (outside.length > 0) failures.push(`${outside.length} files outside the data directory`);
    return report;
  } finally {
    clients.forEach((client) => client.destroy());
    await stack?.stop();
    if (options.keep) log(`kept ${root}`);
    else await rm(root, { recursive: true, force: true });
  }
}

/** The report as the console shows it. */
export function formatSoakReport(r: SoakReport): string {
  const faults = Object.entries(r.faults)
    .map(([kind, n]) => `${kind} ${n}`)
    .join(', ');
  return [
    `uploaded                 ${r.uploaded} (deleted after upload ${r.deletedAfterUpload}, poison ${r.poisonObjects})`,
    `verdicts                 ${r.verdicted} of ${r.verdictsExpected} expected (all but deleted and poison)${r.missingVerdicts.length ? `; missing e.g. ${r.missingVerdicts.slice(0, 3).join(', ')}` : ''}`,
    `alerts                   expected ${r.alertsExpected}, delivered ${r.alertsDelivered}, duplicated ${r.alertsDuplicated}, missed ${r.alertsMissed}, unexpected ${r.alertsUnexpected}`,
    `dead-letter queue        ${r.deadLetters.messages} messages, ${r.deadLetters.poisonKeys} poison objects (+${r.deadLetters.coTravellers} objects batched with them), ${r.deadLetters.otherKeys.length} without poison${r.deadLetters.otherKeys.length ? ` (${r.deadLetters.otherKeys.slice(0, 3).join(', ')})` : ''}`,
    `outside the data dir     ${r.outsideDataDir.length} files${r.outsideDataDir.length ? ` (${r.outsideDataDir.slice(0, 3).join(', ')})` : ''}`,
    `faults injected          ${faults}; whole stack killed ${r.stackKills}x; emulator restarts ${r.emulatorRestarts}`,
    `lost with the queue      ${r.lostWithQueue} (recovered by retro-analysis)`,
    `wall time                ${r.wallSeconds.toFixed(1)} s`,
    r.failures.length === 0 ? 'PASSED' : `FAILED: ${r.failures.join('; ')}`,
  ].join('\n');
}
