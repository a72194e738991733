import { createServer, type IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { join, resolve } from 'node:path';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { S3Client } from '@aws-sdk/client-s3';
import { SQSClient } from '@aws-sdk/client-sqs';
import { errorText } from '@binaryalert/core';
import {
  queueVisibilityTimeoutSeconds,
  resourceNames,
  type BinaryAlertConfig,
  type ResourceNames,
} from '@binaryalert/deployment';

import { createAlertSinks, type AlertRecord } from './alerts';
import { MetricStore } from './metrics';
import { DEFAULT_LOCAL_PORT, LOCAL_ACCOUNT_ID, LOCAL_CREDENTIALS } from './constants';
import { createTables, startDynamo, startS3, startSqs } from './emulators';
import { requeueDeadAnalyzerMessages } from './dead-worker';
import { FaultInjector, type FaultPlan } from './faults';
import { createFrontHandler } from './front';
import { closeFront, routeConnections, type HandOff } from './handoff';
import { ALERTS_FILE, recordWorkerKill } from './kill-journal';
import { localFunctions, startFunctionRunner } from './functions';
import type { LambdaRuntime } from './lambda';
import { createLambdaHandler } from './lambdaApi';
import { lockDataDir } from './lock';
import { keepIdleConnections, listenLoopback } from './loopback';
import { notifyObjectCreated } from './notifications';
import { reconcileVerdicts, type ReconcileOutcome } from './reconcile';
import { sendJsonError } from './protocol';
import { peerPid } from './sender';
import { createSnsHandler, type PublishSender } from './sns';
import { startRulesReload } from './rules-reload';
import type { SupervisedEmulator } from './supervisor';
import { readStatus, startStatusLine, type LocalStatus } from './status';
import { startAnalyzerTrigger } from './trigger';

export type { LocalStatus };

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
  /** Start the analyzer's trigger, as `analyzer_trigger` chooses: the dispatcher schedule or the
   * SQS event source mapping (default true). */
  dispatch?: boolean;
  /** compile-rules output to hot-reload from (releases to the local rules bucket when it changes). */
  compiledRules?: string;
  /** Faults to inject at the service boundary (soak and failure tests). */
  faults?: FaultPlan;
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
  /** Faults injected so far, by kind. */
  faults: FaultInjector['injected'];
  /** The emulators in child processes (pids for fault injection; restart counts). */
  emulators: { s3: SupervisedEmulator; dynamo: SupervisedEmulator };
  /** Where the Lambda workers reach S3 and DynamoDB (the emulators' own ports, unless faults are
   * injected in the front). */
  workerEndpoints: { s3: string; dynamodb: string };
  status(): Promise<LocalStatus>;
  /** The reconciliation run at start: objects queued again because they had no verdict. */
  reconciled: Promise<ReconcileOutcome | undefined>;
  /** Queues again every object of the bucket without a verdict for its current content. */
  reconcile(): Promise<ReconcileOutcome>;
  /** Stops every server and worker and releases the data directory. */
  stop(): Promise<void>;
}

/**
 * Starts the whole pipeline on one loopback port: S3, SQS (local-aws-sqs), DynamoDB (dynalite),
 * SNS Publish and Lambda Invoke running the deployment zips (whose EMF log lines are the metrics),
 * with S3 notifications to the queue and the dispatcher on a schedule.
 */
export async function startLocalStack(options: LocalStackOptions): Promise<LocalStack> {
  const { config } = options;
  const dataDir = resolve(options.dataDir);
  const print = options.print ?? ((text: string) => process.stdout.write(`${text}\n`));
  const region = config.aws_region;
  const accountId = LOCAL_ACCOUNT_ID;
  const names = resourceNames(config);

  // Each started part registers how it stops; stop() runs them in reverse order, once.
  const stopSteps: (() => Promise<void>)[] = [await lockDataDir(dataDir)];
  let stopping = false;
  const stop = async (): Promise<void> => {
    stopping = true;
    for (const step of stopSteps.splice(0).reverse()) await step().catch(() => undefined);
  };
  try {
    // The front first: its port goes into the queue URLs and the workers' AWS_ENDPOINT_URL.
    let frontHandler: ReturnType<typeof createFrontHandler> = (_req, res) =>
      sendJsonError(res, 503, 'ServiceUnavailable', 'the local stack is starting');
    const front = createServer((req, res) => frontHandler(req, res));
    keepIdleConnections(front);
    // Each new connection's first request decides where the connection is served: S3 ones in
    // the store's process (set below, once the stack is wired), the rest by `front` here.
    let handOff: HandOff | undefined;
    routeConnections(front, () => handOff);
    const port = await listenLoopback(front, options.port ?? DEFAULT_LOCAL_PORT);
    stopSteps.push(() => closeFront(front));
    const endpoint = `http://127.0.0.1:${port}`;
    const queueUrl = `${endpoint}/${accountId}/${names.queue}`;
    const deadLetterQueueUrl = `${endpoint}/${accountId}/${names.deadLetterQueue}`;

    const faults = new FaultInjector(options.faults);
    const clientConfig = { endpoint, region, credentials: LOCAL_CREDENTIALS };
    const sqs = new SQSClient(clientConfig);
    stopSteps.push(() => Promise.resolve(sqs.destroy()));

    const dynamo = await startDynamo(dataDir, print);
    stopSteps.push(dynamo.close);
    const sqsEmulator = await startSqs({
      config,
      names,
      region,
      accountId,
      frontPort: port,
      visibilityTimeoutSeconds:
        options.visibilityTimeoutSeconds ?? queueVisibilityTimeoutSeconds(config),
    });
    stopSteps.push(sqsEmulator.close);
    const notify = notifyObjectCreated(
      (body) => sqsEmulator.enqueue(queueUrl, body),
      names.bucket,
      (key, error) => print(`[local] S3 notification for ${key} failed: ${errorText(error)}`),
      () => faults.duplicateNotification(),
    );
    // An object the store committed just before it died may never have been notified: once it
    // is back, the bucket is reconciled with the verdicts (set below, once there is a client).
    let afterS3Restart = (): void => undefined;
    const s3 = await startS3(dataDir, [names.bucket, names.rulesBucket], print, notify, port, () =>
      afterS3Restart(),
    );
    stopSteps.push(s3.close);

    const sinks = createAlertSinks({
      alertsPath: join(dataDir, ALERTS_FILE),
      webhooks: options.webhooks ?? [],
      print,
    });
    const topicArn = (topic: string): string => `arn:aws:sns:${region}:${accountId}:${topic}`;
    const metrics = new MetricStore();

    const { functions, analyzerWorkers } = localFunctions({
      config,
      names,
      zipsDir: resolve(options.zipsDir),
      accountId,
      queueUrl,
      ...(options.workers === undefined ? {} : { workers: options.workers }),
      ...(options.dispatchWaitSeconds === undefined
        ? {}
        : { dispatchWaitSeconds: options.dispatchWaitSeconds }),
    });
    const workerEndpoints = {
      // S3 by host name: S3 clients address dotted bucket names virtual-hosted style, which
      // needs a name rather than an IP (the worker preload resolves *.localhost). Straight to
      // the store's process, which applies the front's guard itself and keeps its port across
      // restarts: the front's proxy hop cost as much CPU per byte as the store and every
      // object is read once by an analyzer. Through the front when S3 faults are injected.
      s3: `http://localhost:${faults.injectsS3Faults ? port : s3.port}`,
      // DynamoDB likewise straight to its process (which applies the guard and keeps its port):
      // the front's hop cost as much CPU as dynalite for the small requests the workers make.
      // Through the front when DynamoDB faults are injected.
      dynamodb: faults.injectsDynamoFaults ? endpoint : `http://127.0.0.1:${dynamo.port}`,
    };
    const runner = await startFunctionRunner({
      functions,
      namePrefix: config.name_prefix,
      dataDir,
      region,
      accountId,
      baseEnvironment: {
        AWS_ENDPOINT_URL: endpoint,
        AWS_ENDPOINT_URL_S3: workerEndpoints.s3,
        AWS_ENDPOINT_URL_DYNAMODB: workerEndpoints.dynamodb,
        AWS_ACCESS_KEY_ID: LOCAL_CREDENTIALS.accessKeyId,
        AWS_SECRET_ACCESS_KEY: LOCAL_CREDENTIALS.secretAccessKey,
      },
      print,
      metrics,
      // Its messages are retried at once, not after the visibility timeout.
      onWorkerDeath: (fn, event) => {
        if (fn === names.analyzerFunction) requeueDeadAnalyzerMessages(sqs, queueUrl, event, print);
      },
      onTimeout: (fn, invocation) => recordWorkerKill(dataDir, fn, invocation, 'timeout'),
    });
    const { runtime } = runner;
    const killSender = ({ functionName, invocation, pid }: PublishSender): void => {
      const worker = runtime.workerInfo(functionName).find((w) => w.invocation === invocation);
      recordWorkerKill(
        dataDir,
        functionName,
        { pid, invocation, event: worker?.event },
        'fault injection after its publish',
      );
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    };
    /** The process at the other end of each connection, once found (a keep-alive connection
     * carries many Publishes of one worker). */
    const socketPids = new WeakMap<Socket, number>();
    /** The local invocation on the other end of a request (the sender of an alert). */
    const senderOf = async (req: IncomingMessage): Promise<PublishSender | undefined> => {
      const running = runtime.runningByPid();
      let pid = socketPids.get(req.socket);
      if (pid === undefined) {
        pid = await peerPid(req.socket.remotePort, req.socket.localPort, running.keys());
        if (pid !== undefined) socketPids.set(req.socket, pid);
      }
      const invocation = pid === undefined ? undefined : running.get(pid);
      return invocation && pid !== undefined ? { ...invocation, pid } : undefined;
    };
    stopSteps.push(runner.closeLogs); // after the workers stop, for their last lines
    stopSteps.push(() => runtime.stop());

    frontHandler = createFrontHandler({
      get s3Port() {
        return s3.port;
      },
      sqsPort: sqsEmulator.port,
      get dynamoPort() {
        return dynamo.port;
      },
      sns: createSnsHandler(
        [names.matchesTopic, names.negativeMatchesTopic, names.alarmTopic].map(topicArn),
        async (published) => {
          await sinks.deliver(published);
          // Before SNS answers: the alert is out, its sender dies without knowing.
          if (published.sender && faults.publisherKill()) killSender(published.sender);
        },
        () => faults.snsPublishError(),
        senderOf,
      ),
      lambda: createLambdaHandler(runtime, runner.reportFailure),
      purgeQueue: sqsEmulator.purgeQueue,
      faults,
      onError: (error, req) => {
        // Connections cut by stop() (e.g. a dispatcher's long poll) are expected then.
        if (!stopping) print(`[local] ${req.method} ${req.url} failed: ${errorText(error)}`);
      },
    });

    // Upload bytes then go from the client's socket to the store's disk without passing through
    // this process. S3 faults are injected on GetObject here, so with them a connection that
    // starts with a read stays here (the analyzers' connections only read) and uploads still go.
    if (!faults.injectsS3Faults) handOff = s3.handOff;
    else {
      handOff = (socket, prefix, head) =>
        head.method !== 'GET' && head.method !== 'HEAD' && s3.handOff(socket, prefix);
    }

    const dynamoClient = new DynamoDBClient(clientConfig);
    stopSteps.push(() => Promise.resolve(dynamoClient.destroy()));
    await createTables(dynamoClient, names);

    stopSteps.push(
      faults.killWorkers(runtime, names.analyzerFunction, (killed) =>
        recordWorkerKill(dataDir, names.analyzerFunction, killed, 'fault injection'),
      ),
    );

    if (options.dispatch ?? true) {
      const stopTrigger = startAnalyzerTrigger({
        trigger: config.analyzer_trigger,
        runtime,
        sqs,
        queueUrl,
        queueArn: `arn:aws:sqs:${region}:${accountId}:${names.queue}`,
        region,
        names,
        analyzerWorkers,
        ...(options.dispatchIntervalMs === undefined
          ? {}
          : { dispatchIntervalMs: options.dispatchIntervalMs }),
        onFailure: runner.reportFailure,
        print,
      });
      stopSteps.push(async () => {
        const finished = stopTrigger();
        await runtime.stop(); // ends the invocations in progress
        await finished;
      });
    }

    const status = (): Promise<LocalStatus> =>
      readStatus({
        sqs,
        queueUrl,
        deadLetterQueueUrl,
        metrics,
        alerts: () => sinks.alerts.length,
        errors: runner.errors,
      });
    stopSteps.push(
      await startRulesReload({
        endpoint,
        region,
        bucket: names.rulesBucket,
        ...(options.compiledRules ? { compiledRules: options.compiledRules } : {}),
        print,
      }),
    );
    // Nothing queued before a crash is lost: the queue lives in memory, the ledger on disk.
    const s3Client = new S3Client({ ...clientConfig, forcePathStyle: true });
    const reconcile = () =>
      reconcileVerdicts(
        { s3: s3Client, dynamo: dynamoClient, sqs },
        { bucket: names.bucket, verdictTable: names.verdictTable, queueUrl },
      );
    const reconcileAndReport = (): Promise<ReconcileOutcome | undefined> =>
      reconcile().then(
        (outcome) => {
          if (outcome.queued > 0) {
            print(`[local] queued ${outcome.queued} objects that had no verdict yet`);
          }
          return outcome;
        },
        (error: unknown) => {
          if (!stopping) print(`[local] reconciliation failed: ${errorText(error)}`);
          return undefined;
        },
      );
    const reconciliations = new Set<Promise<unknown>>();
    const reconciled = reconcileAndReport();
    reconciliations.add(reconciled);
    afterS3Restart = () => {
      if (stopping) return;
      const again = reconcileAndReport();
      reconciliations.add(again);
      void again.finally(() => reconciliations.delete(again));
    };
    stopSteps.push(async () => {
      await Promise.all(reconciliations);
      s3Client.destroy();
    });
    const statusIntervalMs = options.statusIntervalMs ?? 10_000;
    if (statusIntervalMs > 0) stopSteps.push(startStatusLine(status, statusIntervalMs, print));

    return {
      endpoint,
      region,
      accountId,
      credentials: LOCAL_CREDENTIALS,
      names,
      queueUrl,
      deadLetterQueueUrl,
      alerts: sinks.alerts,
      metrics,
      lambda: runtime,
      faults: faults.injected,
      emulators: { s3, dynamo },
      workerEndpoints,
      status,
      reconciled,
      reconcile,
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}
