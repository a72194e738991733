/**
 * `pnpm soak`: uploads through the local stack while faults are injected at a set rate, kills the
 * whole stack once with SIGKILL and starts it again, then checks the outcome an operator relies on
 * without stepping in: every healthy object that still exists has its content's verdict (the
 * restarted stack's reconciliation queues what the killed one's in-memory queue lost), every EICAR
 * upload alerted exactly once (a repeat counts as SNS's at-least-once case only when the run's
 * evidence shows a kill cut its first publish off from its bookkeeping: packages/local/src/testing/repeats.ts), the poison objects are `failed` and alone in the dead-letter queue,
 * and nothing was written outside the data directory. A retro-analysis of the whole bucket follows
 * (its messages group several objects): every object analyzed again, no alert again, still only
 * the poison objects dead-lettered.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, rm } from 'node:fs/promises';
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
import {
  classifyRepeats,
  readRunEvidence,
  recordingDelays,
  type RepeatedAlert,
} from '../../packages/local/src/testing/repeats';
import type { StackProcessMessage, StackProcessSettings } from './stack-process';

export interface SoakOptions {
  objects: number;
  /** Chance of each injected fault per eligible request (S3 GET errors and slow reads, DynamoDB
   * throttling, duplicate notifications, analyzer kills); SNS publish failures at 5x this.
   * The faults counted in the report are the restarted stack's; worker kills are both stacks'. */
  faultRate: number;
  /** Chance of an analyzer worker SIGKILL per invocation (default: `faultRate`). */
  killRate?: number;
  /** Chance that the sender of an alert is killed right after SNS stored it (default 0; the first
   * alert of each stack's run always is): the SNS at-least-once case on purpose, so every run
   * shows the verdict tells it from a duplicate. Each such kill costs the messages it cut off two
   * receives of MAX_RECEIVES (the kill, then the wait for the dead holder's claim). */
  publisherKillRate?: number;
  /** How many times the S3 store and DynamoDB processes are SIGKILLed during the uploads
   * (default 2: a quarter and three quarters in, around the whole stack's kill halfway). */
  emulatorKills?: number;
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
  /** Healthy objects whose final verdict is their content's (matched for EICAR, else clean). */
  verdicted: number;
  missingVerdicts: string[];
  /** Poison objects whose verdict in the ledger is `failed`. */
  poisonFailed: number;
  alertsExpected: number;
  alertsDelivered: number;
  alertsDuplicated: number;
  /** Repeats after a publish a kill cut off from its bookkeeping (SNS at-least-once; the evidence
   * in packages/local/src/testing/repeats.ts): reported, not failures. `alertsDuplicated` counts every other repeat. */
  alertsRepeatedAfterKill: number;
  /** Every repeat of an EICAR alert with its verdict's reason (duplicates first). */
  repeatedAlerts: RepeatedAlert[];
  /** From a publish to its sender's log line saying it recorded the alert (ms): the window a kill
   * must hit to cause a repeat. */
  recordingMs: { alerts: number; median: number; max: number };
  /** Analyzer workers the stack killed mid-invocation, as worker-kills.jsonl recorded them. */
  workerKills: { faultInjection: number; afterPublish: number; timeouts: number };
  alertsMissed: number;
  alertsUnexpected: number;
  /** DLQ messages; poison objects named in them; objects that travelled in a message with a poison
   * object (batched retro messages); objects in messages without any poison object (failures). */
  deadLetters: { messages: number; poisonKeys: number; coTravellers: number; otherKeys: string[] };
  outsideDataDir: string[];
  faults: Record<string, number>;
  stackKills: number;
  /** Times the S3 store and DynamoDB were killed together during the uploads. */
  emulatorKills: number;
  /** Restarts of the restarted stack's emulators (the first stack's are not counted). */
  emulatorRestarts: number;
  /** Messages the restarted stack's reconciliation queued again (objects whose message died with
   * the killed stack's in-memory queue); nobody runs a retro-analysis. */
  requeuedAtRestart: number;
  /** Seconds until every object had its verdict after the uploads began. */
  settledSeconds: number;
  /** Seconds of the retro-analysis of the whole bucket that follows. */
  retroSeconds: number;
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

  /** The stack's S3 store and DynamoDB processes die at once; resolves once they were killed. */
  async killEmulators(): Promise<void> {
    await this.ask('kill-emulators', 'emulators-killed');
  }

  async report(): Promise<Extract<StackProcessMessage, { type: 'report' }>> {
    return this.ask('report', 'report');
  }

  /** Sends a command and resolves with the stack's reply of `replyType`; rejects if it exits first. */
  private ask<T extends StackProcessMessage['type']>(
    command: string,
    replyType: T,
  ): Promise<Extract<StackProcessMessage, { type: T }>> {
    const child = this.child!;
    return new Promise((ok, fail) => {
      const onMessage = (message: StackProcessMessage): void => {
        if (message.type !== replyType) return;
        settle();
        ok(message as Extract<StackProcessMessage, { type: T }>);
      };
      const onExit = (code: number | null, signal: NodeJS.Signals | null): void => {
        settle();
        fail(new Error(`the soak's stack exited (${signal ?? code}) before answering ${command}`));
      };
      const settle = (): void => {
        child.off('message', onMessage);
        child.off('exit', onExit);
      };
      child.on('message', onMessage);
      child.once('exit', onExit);
      child.send({ type: command });
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
        analyzerKillRate: options.killRate ?? rate,
        publisherKillRate: options.publisherKillRate ?? 0,
        publisherKillFirst: 1,
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
    const emulatorKills = options.emulatorKills ?? 2;
    // Spread over the uploads, never on the whole stack's kill.
    const emulatorKillsAt = new Set(
      Array.from({ length: emulatorKills }, (_, k) =>
        Math.floor(((2 * k + 1) * objects.length) / (2 * emulatorKills)),
      ).filter((at) => at !== killAt),
    );
    let emulatorsKilled = 0;
    let next = 0;
    let uploaded = 0;
    let killing: Promise<void> | undefined;
    let killedAt: number | undefined;
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
              killedAt = Date.now();
              await stack!.kill();
              await stack!.start(options.seed + 1);
            })();
            await killing;
            killing = undefined;
          }
          if (emulatorKillsAt.has(index) && !killing) {
            log(`killing the S3 store and DynamoDB with SIGKILL after ${uploaded} uploads`);
            await stack!.killEmulators();
            emulatorsKilled += 1;
          }
          await upload(objects[index]!);
          uploaded += 1;
        }
      }),
    );

    const expectVerdict = objects.filter((o) => o.kind === 'eicar' || o.kind === 'clean');
    /** Verdict and analysis time per key, from the ledger. */
    const ledgerVerdicts = async (): Promise<
      Map<string, { verdict: string; analyzedAt: string }>
    > => {
      const verdicts = new Map<string, { verdict: string; analyzedAt: string }>();
      let start: Record<string, import('@aws-sdk/client-dynamodb').AttributeValue> | undefined;
      do {
        const page = await dynamo.send(
          new QueryCommand({
            TableName: names.verdictTable,
            KeyConditionExpression: '#b = :b',
            ExpressionAttributeNames: {
              '#b': 'Bucket',
              '#k': 'Key',
              '#v': 'Verdict',
              '#a': 'AnalyzedAt',
            },
            ExpressionAttributeValues: { ':b': { S: names.bucket } },
            ProjectionExpression: '#k, #v, #a',
            ExclusiveStartKey: start,
          }),
        );
        for (const item of page.Items ?? []) {
          if (item.Key?.S !== undefined && item.Verdict?.S !== undefined) {
            verdicts.set(item.Key.S, {
              verdict: item.Verdict.S,
              analyzedAt: item.AnalyzedAt?.S ?? '',
            });
          }
        }
        start = page.LastEvaluatedKey;
      } while (start);
      return verdicts;
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
    const poisonKeys = objects.filter((o) => o.kind === 'poison').map((o) => o.key);
    const poisonCount = poisonKeys.length;
    let poisonFailed = 0;
    let missing: string[] = [];
    const deadline = Date.now() + (options.timeoutMs ?? 30 * 60_000);
    /**
     * Waits until every healthy object has its content's verdict and every poison object a
     * `failed` one (analyzed at or after `since` when given), with nothing left in the queue.
     * Nothing else steps in: no operator, no retro-analysis.
     */
    const settle = async (since?: string): Promise<void> => {
      let idleSince: number | undefined;
      for (;;) {
        const verdicts = await ledgerVerdicts();
        const has = (key: string, verdict: string): boolean => {
          const entry = verdicts.get(key);
          return entry?.verdict === verdict && (since === undefined || entry.analyzedAt >= since);
        };
        // A healthy object's final verdict is its content's; `failed` is only the poison's.
        missing = expectVerdict
          .filter((o) => !has(o.key, o.kind === 'eicar' ? 'matched' : 'clean'))
          .map((o) => `${o.key} (${verdicts.get(o.key)?.verdict ?? 'no verdict'})`);
        poisonFailed = poisonKeys.filter((key) => has(key, 'failed')).length;
        const queued = await queueDepth(stack!.ready!.queueUrl);
        if (missing.length === 0 && queued === 0 && poisonFailed === poisonCount) return;
        // Nothing left to deliver: the restarted stack's reconciliation should have queued the
        // objects whose messages died with it.
        idleSince = queued === 0 ? (idleSince ?? Date.now()) : undefined;
        if (idleSince !== undefined && Date.now() - idleSince > 2 * VISIBILITY_SECONDS * 1000) {
          failures.push(
            `${missing.length} objects without their verdict, ${poisonCount - poisonFailed} poison objects not failed, and nothing queued for ${2 * VISIBILITY_SECONDS} s`,
          );
          return;
        }
        if (Date.now() > deadline) {
          failures.push(
            `timed out: ${missing.length} objects without their verdict, ${queued} queued`,
          );
          return;
        }
        await new Promise((ok) => setTimeout(ok, 2000));
      }
    };
    log('waiting for every object to get a verdict and the poison messages to reach the DLQ ...');
    await settle();
    const settledSeconds = (performance.now() - started) / 1000;
    // A retro-analysis groups objects_per_retro_message keys per message: a poison object must
    // dead-letter alone, the healthy objects batched with it analyzed once, none alerted again.
    let retroSeconds = 0;
    if (failures.length === 0) {
      log('running a retro-analysis of the whole bucket ...');
      const retroStart = new Date().toISOString();
      const retroStarted = performance.now();
      await lambda.send(
        new InvokeCommand({
          FunctionName: names.batcherFunction,
          InvocationType: 'Event',
          Payload: Buffer.from('{}'),
        }),
      );
      await settle(retroStart);
      retroSeconds = (performance.now() - retroStarted) / 1000;
    }

    // Alerts and kills: their files survive the kill of the stack, unlike its memory.
    const evidence = await readRunEvidence(dataDir, {
      namePrefix: config.name_prefix,
      names,
      ...(killedAt === undefined ? {} : { stackKilledAt: killedAt }),
    });
    const { alerts, kills } = evidence;
    const verdictsOfRepeats = classifyRepeats(evidence);
    const delays = recordingDelays(evidence).sort((a, b) => a - b);
    const eicarIds = new Set(
      objects.filter((o) => o.kind === 'eicar').map((o) => objectId(names.bucket, o.key)),
    );
    const alerted = [...alerts.entries()];
    const delivered = alerted.filter(([location]) => eicarIds.has(location)).length;
    const unexpected = alerted
      .filter(([location]) => !eicarIds.has(location))
      .reduce((sum, [, alerts]) => sum + alerts.length, 0);
    const isEicar = (repeat: RepeatedAlert): boolean => eicarIds.has(repeat.object);
    const repeats = {
      afterKill: verdictsOfRepeats.afterKill.filter(isEicar),
      duplicates: verdictsOfRepeats.duplicates.filter(isEicar),
    };
    const duplicated = repeats.duplicates.length;

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
      poisonFailed,
      alertsExpected: eicarIds.size,
      alertsDelivered: delivered,
      alertsDuplicated: duplicated,
      alertsRepeatedAfterKill: repeats.afterKill.length,
      repeatedAlerts: [...repeats.duplicates, ...repeats.afterKill],
      recordingMs: {
        alerts: delays.length,
        median: delays[Math.floor(delays.length / 2)] ?? 0,
        max: delays.at(-1) ?? 0,
      },
      workerKills: {
        faultInjection: kills.filter((k) => k.cause === 'fault injection').length,
        afterPublish: kills.filter((k) => k.cause === 'fault injection after its publish').length,
        timeouts: kills.filter((k) => k.cause === 'timeout').length,
      },
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
      emulatorKills: emulatorsKilled,
      emulatorRestarts: processReport.emulatorRestarts,
      requeuedAtRestart: processReport.requeuedAtStart,
      settledSeconds,
      retroSeconds,
      wallSeconds: (performance.now() - started) / 1000,
      failures,
    };
    if (report.uploaded !== objects.length)
      failures.push(`uploaded ${report.uploaded} of ${objects.length}`);
    if (missing.length > 0) failures.push(`${missing.length} objects without their verdict`);
    if (poisonFailed !== poisonCount)
      failures.push(`${poisonFailed} of ${poisonCount} poison objects recorded as failed`);
    if (duplicated > 0) failures.push(`${duplicated} duplicate alerts`);
    if (report.alertsMissed > 0) failures.push(`${report.alertsMissed} missed alerts`);
    if (unexpected > 0) failures.push(`${unexpected} alerts for objects that are not EICAR`);
    if (otherDead.length > 0) failures.push(`${otherDead.length} dead letters that are not poison`);
    if (coTravellers.length > 0)
      failures.push(`${coTravellers.length} healthy objects dead-lettered with a poison object`);
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
    `verdicts                 ${r.verdicted} of ${r.verdictsExpected} healthy objects matched/clean as their content; poison ${r.poisonFailed} of ${r.poisonObjects} failed${r.missingVerdicts.length ? `; missing e.g. ${r.missingVerdicts.slice(0, 3).join(', ')}` : ''}`,
    `alerts                   expected ${r.alertsExpected}, delivered ${r.alertsDelivered}, missed ${r.alertsMissed}, unexpected ${r.alertsUnexpected}`,
    `repeated alerts          duplicates ${r.alertsDuplicated} (failures); after a publish a kill cut off from its bookkeeping ${r.alertsRepeatedAfterKill} (SNS at-least-once, not failures)`,
    `  publish to recorded      median ${r.recordingMs.median} ms, max ${r.recordingMs.max} ms over ${r.recordingMs.alerts} alerts (the window a kill must hit to repeat one)`,
    ...r.repeatedAlerts.map(
      (a) =>
        `  ${a.object}: ${a.previous} (sent by ${a.previousSender ?? 'unknown'}) then ${a.repeat}: ${a.why}`,
    ),
    `dead-letter queue        ${r.deadLetters.messages} messages, ${r.deadLetters.poisonKeys} poison objects (+${r.deadLetters.coTravellers} objects batched with them), ${r.deadLetters.otherKeys.length} without poison${r.deadLetters.otherKeys.length ? ` (${r.deadLetters.otherKeys.slice(0, 3).join(', ')})` : ''}`,
    `outside the data dir     ${r.outsideDataDir.length} files${r.outsideDataDir.length ? ` (${r.outsideDataDir.slice(0, 3).join(', ')})` : ''}`,
    `faults injected          ${faults}; whole stack killed ${r.stackKills}x; S3 store and DynamoDB killed ${r.emulatorKills}x (restarts after the stack's restart ${r.emulatorRestarts})`,
    `analyzer workers killed  ${r.workerKills.faultInjection} by fault injection, ${r.workerKills.afterPublish} right after SNS stored their alert, ${r.workerKills.timeouts} at their timeout (worker-kills.jsonl)`,
    `requeued at restart      ${r.requeuedAtRestart} (objects without a verdict, found by the restarted stack's reconciliation)`,
    `wall time                ${r.wallSeconds.toFixed(1)} s (every verdict after ${r.settledSeconds.toFixed(1)} s; retro-analysis of the bucket ${r.retroSeconds.toFixed(1)} s)`,
    r.failures.length === 0 ? 'PASSED' : `FAILED: ${r.failures.join('; ')}`,
  ].join('\n');
}
