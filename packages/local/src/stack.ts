import { once } from 'node:events';
import { appendFile, mkdir } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { cpus } from 'node:os';
import { join, resolve } from 'node:path';
import {
  CreateTableCommand,
  DescribeTableCommand,
  DynamoDBClient,
  ResourceNotFoundException,
} from '@aws-sdk/client-dynamodb';
import { GetQueueAttributesCommand, SendMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import {
  functionEnvironments,
  matchTableDefinition,
  resourceNames,
  s3EventRecord,
  type BinaryAlertConfig,
  type ResourceNames,
} from '@binaryalert/core';
import dynalite from 'dynalite';
import { createRequestHandler } from 'local-aws-sqs';
import S3rver from 's3rver';

import { alertRecord, appendAlert, formatAlert, postToWebhooks, type AlertRecord } from './alerts';
import { createCloudWatchHandler, MetricStore } from './cloudwatch';
import { createFrontHandler, type FrontRoutes } from './front';
import { LambdaRuntime, type InvokeOutcome, type LocalFunction } from './lambda';
import { createLambdaHandler } from './lambdaApi';
import { lockDataDir } from './lock';
import { sendJsonError } from './protocol';
import { createSnsHandler } from './sns';
import {
  DEFAULT_DATA_DIR,
  DEFAULT_LOCAL_ENDPOINT,
  DEFAULT_LOCAL_PORT,
  LOCAL_ACCOUNT_ID,
  LOCAL_CREDENTIALS,
} from './constants';

export {
  DEFAULT_DATA_DIR,
  DEFAULT_LOCAL_ENDPOINT,
  DEFAULT_LOCAL_PORT,
  LOCAL_ACCOUNT_ID,
  LOCAL_CREDENTIALS,
};

export const LAMBDA_HANDLER = 'index.handler';

/**
 * SDK v3 client settings for a running local stack (for `--local` commands and scripts): the
 * documented credentials and path-style S3, since bucket names with dots cannot be addressed
 * virtual-hosted style on 127.0.0.1.
 */
export function localClientConfig(endpoint: string = DEFAULT_LOCAL_ENDPOINT, region = 'us-east-1') {
  return { endpoint, region, credentials: { ...LOCAL_CREDENTIALS }, forcePathStyle: true };
}

export interface LocalStackOptions {
  /** Settings from terraform.tfvars (names, timeouts, batch sizes, max_receives, ...). */
  config: BinaryAlertConfig;
  /** Objects, matches, unpacked functions, logs and alerts.jsonl live here. */
  dataDir: string;
  /** Directory with analyzer.zip, dispatcher.zip and batcher.zip (as `manage.ts build` writes). */
  zipsDir: string;
  /** Port on 127.0.0.1 (default 4566; 0 = a random free port). */
  port?: number;
  /** Pause between dispatcher runs (default 1000 ms). */
  dispatchIntervalMs?: number;
  /** The dispatcher's SQS long poll locally (default 1 s, at most the tfvars value). */
  dispatchWaitSeconds?: number;
  /** Analyzer worker processes, i.e. concurrent analyzer invocations (default: CPU count, at least 2). */
  workers?: number;
  /** Visibility timeout of the analysis queue (default: the analyzer timeout, as Terraform sets it). */
  visibilityTimeoutSeconds?: number;
  /** URLs each alert is POSTed to as JSON. */
  webhooks?: string[];
  /** Status line period (default 10 s; 0 = none). */
  statusIntervalMs?: number;
  /** Where readable console output goes (alerts, status, worker warnings). Default: stdout. */
  print?: (text: string) => void;
  /** Start the dispatcher schedule (default true). */
  dispatch?: boolean;
}

export interface LocalStatus {
  queued: number;
  inFlight: number;
  deadLetters: number;
  analyzed: number;
  matched: number;
  alerts: number;
  errors: number;
}

export interface LocalStack {
  /** e.g. http://127.0.0.1:4566: every service on one port. */
  endpoint: string;
  region: string;
  accountId: string;
  credentials: typeof LOCAL_CREDENTIALS;
  names: ResourceNames;
  queueUrl: string;
  deadLetterQueueUrl: string;
  /** Every alert published so far in this run. */
  alerts: AlertRecord[];
  metrics: MetricStore;
  lambda: LambdaRuntime;
  status(): Promise<LocalStatus>;
  /** Stops every server and worker and releases the data directory. */
  stop(): Promise<void>;
}

async function listenLoopback(server: Server, port: number): Promise<number> {
  server.listen(port, '127.0.0.1');
  await Promise.race([
    once(server, 'listening'),
    once(server, 'error').then(([error]) => {
      throw error;
    }),
  ]);
  return (server.address() as AddressInfo).port;
}

async function closeServer(server: Server): Promise<void> {
  if (!server.listening) return;
  server.closeAllConnections();
  await new Promise<void>((ok) => server.close(() => ok()));
}

async function ensureMatchTable(client: DynamoDBClient, table: string): Promise<void> {
  try {
    await client.send(new DescribeTableCommand({ TableName: table }));
  } catch (error) {
    if (!(error instanceof ResourceNotFoundException)) throw error;
    await client.send(new CreateTableCommand(matchTableDefinition(table)));
  }
}

function describeError(error: unknown): string {
  if (error instanceof Error)
    return error.cause ? `${error.message} (${describeError(error.cause)})` : error.message;
  return String(error);
}

/**
 * Starts the whole pipeline on one loopback port: S3 (s3rver), SQS (local-aws-sqs), DynamoDB
 * (dynalite), SNS Publish, CloudWatch PutMetricData and Lambda Invoke running the deployment zips,
 * with S3 notifications to the queue and the dispatcher on a schedule.
 */
export async function startLocalStack(options: LocalStackOptions): Promise<LocalStack> {
  const { config } = options;
  const dataDir = resolve(options.dataDir);
  const zipsDir = resolve(options.zipsDir);
  const print = options.print ?? ((text: string) => process.stdout.write(`${text}\n`));
  const region = config.aws_region;
  const accountId = LOCAL_ACCOUNT_ID;
  const names = resourceNames(config);
  const webhooks = options.webhooks ?? [];

  const releaseLock = await lockDataDir(dataDir);
  let stopped = false;
  const cleanups: (() => Promise<void>)[] = [releaseLock];
  const cleanup = async (): Promise<void> => {
    stopped = true;
    for (const step of cleanups.splice(0).reverse()) await step().catch(() => undefined);
  };
  try {
    await mkdir(join(dataDir, 'logs'), { recursive: true });

    // The front first: its port goes into the queue URLs and the workers' AWS_ENDPOINT_URL.
    let frontHandler: ReturnType<typeof createFrontHandler> = (_req, res) =>
      sendJsonError(res, 503, 'ServiceUnavailable', 'the local stack is starting');
    const front = createServer((req, res) => frontHandler(req, res));
    const port = await listenLoopback(front, options.port ?? DEFAULT_LOCAL_PORT);
    cleanups.push(() => closeServer(front));
    const endpoint = `http://127.0.0.1:${port}`;
    const queueUrl = `${endpoint}/${accountId}/${names.queue}`;
    const deadLetterQueueUrl = `${endpoint}/${accountId}/${names.deadLetterQueue}`;

    // DynamoDB, persisted under the data directory.
    const dynamo = dynalite({
      path: join(dataDir, 'dynamodb'),
      createTableMs: 0,
      deleteTableMs: 0,
      updateTableMs: 0,
    });
    const dynamoPort = await listenLoopback(dynamo, 0);
    cleanups.push(() => closeServer(dynamo));

    // SQS: the analysis queue and its dead-letter queue, as terraform/sqs.tf configures them.
    const analyzerTimeout = config.lambda_analyze_timeout_sec;
    const { service: sqsService, requestHandler: sqsHandler } = createRequestHandler({
      port,
      hostname: '127.0.0.1',
      region,
      accountId,
      emulateQueueCreationLifecycle: false,
      queues: [
        {
          QueueName: names.deadLetterQueue,
          Attributes: { MessageRetentionPeriod: 14 * 24 * 3600 },
        },
        {
          QueueName: names.queue,
          Attributes: {
            VisibilityTimeout: options.visibilityTimeoutSeconds ?? analyzerTimeout,
            MessageRetentionPeriod: config.sqs_retention_minutes * 60,
            RedrivePolicy: JSON.stringify({
              deadLetterTargetArn: `arn:aws:sqs:${region}:${accountId}:${names.deadLetterQueue}`,
              maxReceiveCount: config.max_receives,
            }),
          },
        },
      ],
    });
    // local-aws-sqs counts in-flight messages in ApproximateNumberOfMessages too; AWS counts only
    // visible ones, and progress bars and the status line rely on that.
    for (const queue of sqsService.Queues) {
      const getAttributes = queue.getAttributes.bind(queue);
      queue.getAttributes = (names: string[]) => {
        const attributes = getAttributes(names) as Record<string, string> | undefined;
        if (attributes?.ApproximateNumberOfMessages !== undefined) {
          const { ApproximateNumberOfMessagesNotVisible: notVisible = '0' } = getAttributes([
            'ApproximateNumberOfMessagesNotVisible',
          ]) as Record<string, string>;
          attributes.ApproximateNumberOfMessages = String(
            Math.max(0, Number(attributes.ApproximateNumberOfMessages) - Number(notVisible)),
          );
        }
        return attributes;
      };
    }
    const sqsServer = createServer((req, res) => void sqsHandler(req, res));
    const sqsPort = await listenLoopback(sqsServer, 0);
    cleanups.push(async () => {
      await closeServer(sqsServer);
      // Releases local-aws-sqs's per-message visibility and retention timers.
      for (const queue of sqsService.Queues) queue.clearRecords();
    });

    // S3, objects on disk; the binaries bucket exists from the start.
    const s3 = new S3rver({
      address: '127.0.0.1',
      port: 0,
      silent: true,
      directory: join(dataDir, 's3'),
      allowMismatchedSignatures: true,
      vhostBuckets: false,
      configureBuckets: [{ name: names.bucket }],
    });
    const s3Address = await s3.run();
    cleanups.push(() => s3.close());

    const clientConfig = { endpoint, region, credentials: LOCAL_CREDENTIALS };
    const sqs = new SQSClient(clientConfig);
    const dynamoClient = new DynamoDBClient({
      ...clientConfig,
      endpoint: `http://127.0.0.1:${dynamoPort}`,
    });
    cleanups.push(() => {
      sqs.destroy();
      dynamoClient.destroy();
      return Promise.resolve();
    });

    // S3 event notifications: every object created in the binaries bucket, in S3's own shape.
    const completing = new Set<string>();
    s3.on('event', (event) => {
      for (const raw of event.Records as {
        eventName?: string;
        s3?: { bucket?: { name?: string }; object?: { key?: string; size?: number } };
      }[]) {
        const bucket = raw.s3?.bucket?.name;
        const key = raw.s3?.object?.key;
        if (
          bucket !== names.bucket ||
          key === undefined ||
          !raw.eventName?.startsWith('ObjectCreated:')
        )
          continue;
        let eventName = raw.eventName;
        if (eventName === 'ObjectCreated:Post' && completing.has(`${bucket}/${key}`)) {
          eventName = 'ObjectCreated:CompleteMultipartUpload';
        }
        const record = s3EventRecord(
          {
            bucket,
            key,
            ...(raw.s3?.object?.size === undefined ? {} : { size: Number(raw.s3.object.size) }),
          },
          eventName,
        );
        sqs
          .send(
            new SendMessageCommand({
              QueueUrl: queueUrl,
              MessageBody: JSON.stringify({ Records: [record] }),
            }),
          )
          .catch((error: unknown) =>
            print(`[local] S3 notification for ${key} failed: ${describeError(error)}`),
          );
      }
    });

    await ensureMatchTable(dynamoClient, names.table);

    // SNS: alerts on the console, in alerts.jsonl and to webhooks.
    const alerts: AlertRecord[] = [];
    const alertsPath = join(dataDir, 'alerts.jsonl');
    const topicArn = (topic: string): string => `arn:aws:sns:${region}:${accountId}:${topic}`;
    const sns = createSnsHandler(
      [names.matchesTopic, names.negativeMatchesTopic, names.alarmTopic].map(topicArn),
      (published) => {
        const alert = alertRecord(published);
        alerts.push(alert);
        print(formatAlert(alert));
        void appendAlert(alertsPath, alert).catch((error: unknown) =>
          print(`[local] cannot append to ${alertsPath}: ${describeError(error)}`),
        );
        if (webhooks.length > 0) {
          void postToWebhooks(webhooks, alert, (url, error) =>
            print(`[local] webhook ${url} failed: ${describeError(error)}`),
          );
        }
      },
    );

    // CloudWatch metrics, aggregated for the status line.
    const metrics = new MetricStore();

    // Lambda: the three functions from their zips, with Terraform's environment.
    let functionErrors = 0;
    const environments = functionEnvironments(config, { accountId, queueUrl });
    const waitSeconds = Math.min(
      config.lambda_dispatch_wait_time_seconds,
      options.dispatchWaitSeconds ?? 1,
    );
    const analyzerWorkers = Math.max(
      1,
      Math.min(
        options.workers ?? Math.max(2, cpus().length),
        config.lambda_analyze_concurrency_limit > 0
          ? config.lambda_analyze_concurrency_limit
          : Infinity,
      ),
    );
    // Backpressure: a local dispatcher run starts at most two invocations per analyzer worker, and
    // the next run waits for a free worker, so received messages never wait in the local invoke
    // queue until their visibility timeout expires (which would count receives toward the DLQ).
    const dispatchLimit = Math.max(1, Math.min(config.lambda_dispatch_limit, analyzerWorkers * 2));
    const functions: LocalFunction[] = [
      {
        name: names.analyzerFunction,
        zipPath: join(zipsDir, 'analyzer.zip'),
        handler: LAMBDA_HANDLER,
        timeoutSeconds: analyzerTimeout,
        memoryMb: config.lambda_analyze_memory_mb,
        environment: environments.analyzer,
        concurrency: analyzerWorkers,
      },
      {
        name: names.dispatcherFunction,
        zipPath: join(zipsDir, 'dispatcher.zip'),
        handler: LAMBDA_HANDLER,
        timeoutSeconds: config.lambda_dispatch_timeout_sec,
        memoryMb: config.lambda_dispatch_memory_mb,
        environment: {
          ...environments.dispatcher,
          SQS_WAIT_TIME_SECONDS: String(waitSeconds),
          MAX_INVOCATIONS: String(dispatchLimit),
        },
        concurrency: 2,
      },
      {
        name: names.batcherFunction,
        zipPath: join(zipsDir, 'batcher.zip'),
        handler: LAMBDA_HANDLER,
        timeoutSeconds: config.lambda_batch_timeout_sec,
        memoryMb: config.lambda_batch_memory_mb,
        environment: environments.batcher,
        concurrency: 2,
      },
    ];
    const shortName = (fn: string): string => fn.replace(`${config.name_prefix}_binaryalert_`, '');
    const runtime = new LambdaRuntime({
      dataDir: join(dataDir, 'lambda'),
      region,
      accountId,
      baseEnvironment: {
        AWS_ENDPOINT_URL: endpoint,
        // S3 by host name: S3 clients address dotted bucket names virtual-hosted style, which
        // needs a name rather than an IP (the worker preload resolves *.localhost).
        AWS_ENDPOINT_URL_S3: `http://localhost:${port}`,
        AWS_ACCESS_KEY_ID: LOCAL_CREDENTIALS.accessKeyId,
        AWS_SECRET_ACCESS_KEY: LOCAL_CREDENTIALS.secretAccessKey,
      },
      onLog: (fn, line) => {
        void appendFile(join(dataDir, 'logs', `${shortName(fn)}.log`), `${line}\n`).catch(
          () => undefined,
        );
        try {
          const entry = JSON.parse(line) as { level?: string; message?: string; object?: string };
          if (entry.level === 'error' || entry.level === 'warn') {
            if (entry.level === 'error') functionErrors += 1;
            print(
              `[${shortName(fn)}] ${entry.level}: ${entry.message ?? ''}${entry.object ? ` (${entry.object})` : ''}`,
            );
          }
        } catch {
          // not a JSON log line: kept in the log file only
        }
      },
    });
    await runtime.init(functions);
    cleanups.push(() => runtime.stop());
    const reportFailure = (fn: string, outcome: InvokeOutcome): void => {
      if (outcome.ok) return;
      functionErrors += 1;
      print(
        `[${shortName(fn)}] invocation failed: ${outcome.error.errorType}: ${outcome.error.errorMessage}`,
      );
    };

    const purgeQueue = (url: string): boolean => {
      const name = url.split('/').pop();
      const queue = sqsService.Queues.find((q) => q.QueueName === name);
      if (!queue) return false;
      queue.clearRecords();
      return true;
    };

    const routes: FrontRoutes = {
      s3Port: s3Address.port,
      sqsPort,
      dynamoPort,
      s3AccessKeyId: LOCAL_CREDENTIALS.accessKeyId,
      s3Completions: completing,
      sns,
      cloudwatch: createCloudWatchHandler(metrics),
      lambda: createLambdaHandler(runtime, reportFailure),
      purgeQueue,
      onError: (error, req) => {
        // Connections cut by stop() (e.g. a dispatcher's long poll) are expected then.
        if (!stopped) print(`[local] ${req.method} ${req.url} failed: ${describeError(error)}`);
      },
    };
    frontHandler = createFrontHandler(routes);

    const queueCount = async (url: string): Promise<{ visible: number; inFlight: number }> => {
      const { Attributes = {} } = await sqs.send(
        new GetQueueAttributesCommand({
          QueueUrl: url,
          AttributeNames: ['ApproximateNumberOfMessages', 'ApproximateNumberOfMessagesNotVisible'],
        }),
      );
      return {
        visible: Number(Attributes.ApproximateNumberOfMessages ?? 0),
        inFlight: Number(Attributes.ApproximateNumberOfMessagesNotVisible ?? 0),
      };
    };
    const status = async (): Promise<LocalStatus> => {
      const [queue, dlq] = await Promise.all([
        queueCount(queueUrl),
        queueCount(deadLetterQueueUrl),
      ]);
      return {
        queued: queue.visible,
        inFlight: queue.inFlight,
        deadLetters: dlq.visible + dlq.inFlight,
        analyzed: metrics.sum('AnalyzedBinaries'),
        matched: metrics.sum('MatchedBinaries'),
        alerts: alerts.length,
        // Error log lines of the functions plus failed invocations (each failure once: the
        // AnalysisErrors metric would count the same failed objects again).
        errors: functionErrors,
      };
    };

    // The dispatcher on a short local schedule: one run after another, never overlapping.
    let wake: (() => void) | undefined;
    const sleep = (ms: number): Promise<void> =>
      new Promise((ok) => {
        const timer = setTimeout(ok, ms);
        wake = () => {
          clearTimeout(timer);
          ok();
        };
      });
    let dispatcherLoop: Promise<void> = Promise.resolve();
    if (options.dispatch ?? true) {
      dispatcherLoop = (async () => {
        let lastError = '';
        while (!stopped) {
          const outcome = await runtime.invoke(names.dispatcherFunction, {
            source: 'aws.events',
            'detail-type': 'Scheduled Event',
            time: new Date().toISOString(),
            detail: {},
          });
          while (!stopped && runtime.pending(names.analyzerFunction) >= analyzerWorkers)
            await sleep(100);
          if (stopped) break;
          const started = outcome.ok
            ? (outcome.payload as { invocations?: unknown } | null)?.invocations
            : 0;
          // Straight on while there is work; otherwise on the local schedule.
          let pause =
            typeof started === 'number' && started > 0 ? 0 : (options.dispatchIntervalMs ?? 1000);
          if (!outcome.ok) {
            const text = `${outcome.error.errorType}: ${outcome.error.errorMessage}`;
            if (text !== lastError) reportFailure(names.dispatcherFunction, outcome);
            lastError = text;
            pause = Math.max(pause, 5000);
          } else lastError = '';
          await sleep(pause);
        }
      })();
    }
    cleanups.push(async () => {
      stopped = true;
      wake?.();
      await runtime.stop();
      await dispatcherLoop;
    });

    let statusTimer: NodeJS.Timeout | undefined;
    if ((options.statusIntervalMs ?? 10_000) > 0) {
      let last = '';
      statusTimer = setInterval(() => {
        status().then(
          (s) => {
            const line =
              `[local] queue ${s.queued} (in flight ${s.inFlight}), dead letters ${s.deadLetters} | ` +
              `analyzed ${s.analyzed}, matched ${s.matched}, alerts ${s.alerts} | errors ${s.errors}`;
            if (line !== last) print(line);
            last = line;
          },
          () => undefined,
        );
      }, options.statusIntervalMs ?? 10_000);
      statusTimer.unref();
      cleanups.push(() => Promise.resolve(clearInterval(statusTimer)));
    }

    return {
      endpoint,
      region,
      accountId,
      credentials: LOCAL_CREDENTIALS,
      names,
      queueUrl,
      deadLetterQueueUrl,
      alerts,
      metrics,
      lambda: runtime,
      status,
      stop: cleanup,
    };
  } catch (error) {
    await cleanup();
    throw error;
  }
}
