import { createServer } from 'node:http';
import {
  CreateTableCommand,
  DescribeTableCommand,
  ResourceNotFoundException,
  type CreateTableCommandInput,
  type DynamoDBClient,
} from '@aws-sdk/client-dynamodb';
import {
  dispatchSlotsTableDefinition,
  matchTableDefinition,
  verdictTableDefinition,
} from '@binaryalert/core';
import type { BinaryAlertConfig, ResourceNames } from '@binaryalert/deployment';
import { createRequestHandler } from 'local-aws-sqs';

import { refusal } from './guard';
import { closeServer, keepIdleConnections, listenLoopback } from './loopback';
import { sendJsonError } from './protocol';
import type { ObjectCreatedEvent } from './s3/store';
import { superviseEmulator, type SupervisedEmulator } from './supervisor';

/** An emulator listening on its own loopback port, behind the front server. */
export interface Emulator {
  port: number;
  close: () => Promise<void>;
}

/** DynamoDB (dynalite) in a supervised child process, persisted under `<dataDir>/dynamodb`. */
export function startDynamo(
  dataDir: string,
  print: (text: string) => void,
): Promise<SupervisedEmulator> {
  return superviseEmulator({
    name: 'DynamoDB',
    kind: 'dynamodb',
    // Lambda workers were given its port at their start (stack.ts).
    keepPort: true,
    // dynalite allocates a JSON document or two per item and keeps little: without incremental
    // marking and with a larger young generation, its CPU during a delta re-scan (pnpm bench
    // --only delta) fell from 0.29 to 0.23-0.24 s (issue #14's notes, session 9).
    v8Flags: ['--no-incremental-marking', '--max-semi-space-size=16'],
    settings: { dataDir },
    print,
  });
}

export interface SqsEmulator extends Emulator {
  /** Empties a queue at once (local-aws-sqs would wait 60 s); false when there is no such queue. */
  purgeQueue: (queueUrl: string) => boolean;
  /**
   * Puts one message on a queue in the stack's own process, as AWS delivers an S3 event
   * notification: no SDK client, no HTTP. Throws when there is no such queue.
   */
  enqueue: (queueUrl: string, messageBody: string) => void;
}

export interface SqsSettings {
  config: BinaryAlertConfig;
  names: ResourceNames;
  region: string;
  accountId: string;
  /** The front server's port: queue URLs name it. */
  frontPort: number;
  visibilityTimeoutSeconds: number;
}

type SqsQueue = ReturnType<typeof createRequestHandler>['service']['Queues'][number];
interface SqsRecord {
  MessageId: string;
  ReceiptHandle: string;
  attributes: { ApproximateReceiveCount: string };
}

/**
 * The MessageId in a local-aws-sqs receipt handle (base64 of a UUID followed by a JSON object
 * naming the message); undefined for a handle not in that form.
 */
export function messageIdOfReceipt(receipt: string): string | undefined {
  const text = Buffer.from(receipt, 'base64').toString('utf8');
  try {
    const { MessageId } = JSON.parse(text.slice(text.indexOf('{'))) as { MessageId?: unknown };
    return typeof MessageId === 'string' ? MessageId : undefined;
  } catch {
    return undefined;
  }
}

/**
 * On AWS, ChangeMessageVisibility is no receive; local-aws-sqs counts it as one, so a message
 * made visible again (a dead worker's, one waiting for an alert claim) would reach the
 * dead-letter queue a receive early. Gives the count back after each change.
 */
function changingVisibilityIsNoReceive(queue: SqsQueue): void {
  const records = new Map<string, SqsRecord>();
  const newRecord = queue.newRecord;
  queue.newRecord = (record, delay) => {
    records.set((record as SqsRecord).MessageId, record as SqsRecord);
    return newRecord(record, delay) as unknown;
  };
  // By the MessageId the handle carries: a search of every record on each delete was O(queue).
  const byReceipt = (receipt: string): SqsRecord | undefined => {
    const messageId = messageIdOfReceipt(receipt);
    if (messageId === undefined) {
      return [...records.values()].find((record) => record.ReceiptHandle === receipt);
    }
    const record = records.get(messageId);
    return record?.ReceiptHandle === receipt ? record : undefined;
  };
  const deleteMessage = queue.delete.bind(queue);
  queue.delete = (receipt) => {
    const record = byReceipt(receipt);
    const deleted = deleteMessage(receipt);
    if (deleted && record) records.delete(record.MessageId);
    return deleted;
  };
  const clearRecords = queue.clearRecords.bind(queue);
  queue.clearRecords = () => {
    records.clear();
    clearRecords();
  };
  const changeVisibility = queue.changeVisibility.bind(queue);
  queue.changeVisibility = (receipt, timeout) => {
    const record = byReceipt(receipt);
    const changed = changeVisibility(receipt, timeout);
    if (changed && record) {
      const count = Number(record.attributes.ApproximateReceiveCount);
      record.attributes.ApproximateReceiveCount = String(Math.max(0, count - 1));
    }
    return changed;
  };
}

/**
 * SQS's long poll answers as soon as a message is available; local-aws-sqs's keeps collecting
 * until it has `MaxNumberOfMessages` or the whole wait has passed, so a shallow queue held every
 * receive for the whole wait (the local dispatcher's 1 s: most of an upload's time to its alert).
 * A receive with a wait is made of receives without one (each collects for local-aws-sqs's 40 ms),
 * repeated until one returns a message or the wait is over.
 */
function longPollAnswersEarly(queue: SqsQueue): void {
  const receive = queue.receive.bind(queue);
  queue.receive = async (options: { WaitTimeSeconds?: number | string }) => {
    const waitSeconds = Number(options.WaitTimeSeconds ?? queue.ReceiveMessageWaitTimeSeconds ?? 0);
    const deadline = Date.now() + waitSeconds * 1000;
    for (;;) {
      const messages = (await receive({ ...options, WaitTimeSeconds: 0 })) as unknown[];
      if (messages.length > 0 || Date.now() >= deadline) return messages;
    }
  };
}

/** SQS (local-aws-sqs): the analysis queue and its dead-letter queue, as terraform/sqs.tf configures them. */
export async function startSqs(settings: SqsSettings): Promise<SqsEmulator> {
  const { config, names, region, accountId } = settings;
  const { service, requestHandler } = createRequestHandler({
    port: settings.frontPort,
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
          VisibilityTimeout: settings.visibilityTimeoutSeconds,
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
  for (const queue of service.Queues) {
    const getAttributes = queue.getAttributes.bind(queue);
    queue.getAttributes = (attributeNames: string[]) => {
      const attributes = getAttributes(attributeNames) as Record<string, string> | undefined;
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
  for (const queue of service.Queues) {
    changingVisibilityIsNoReceive(queue);
    longPollAnswersEarly(queue);
  }
  // The front's guard on this port too: a web page that finds it (a form POST needs no CORS
  // preflight) must not delete or fill the stack's queues.
  const server = createServer((req, res) => {
    const refused = refusal(req);
    if (!refused) return void requestHandler(req, res);
    req.resume();
    sendJsonError(res, 403, 'AccessDenied', refused);
  });
  keepIdleConnections(server);
  const port = await listenLoopback(server, 0);
  const queueAt = (queueUrl: string): SqsQueue | undefined => {
    const name = queueUrl.split('/').pop();
    return service.Queues.find((q) => q.QueueName === name);
  };
  return {
    port,
    purgeQueue: (queueUrl) => {
      const queue = queueAt(queueUrl);
      if (!queue) return false;
      queue.clearRecords();
      return true;
    },
    enqueue: (queueUrl, messageBody) => {
      const queue = queueAt(queueUrl);
      if (!queue) throw new Error(`no queue ${queueUrl}`);
      queue.setRecord({ MessageBody: messageBody });
    },
    close: async () => {
      await closeServer(server);
      // Releases local-aws-sqs's per-message visibility and retention timers.
      for (const queue of service.Queues) queue.clearRecords();
    },
  };
}

/**
 * S3 (the local object store) in a supervised child process, objects under `<dataDir>/s3`;
 * `buckets` exist from the start. A restart keeps its port.
 */
export function startS3(
  dataDir: string,
  buckets: string[],
  print: (text: string) => void,
  onObjectCreated: (event: ObjectCreatedEvent) => void,
  /** The stack's port, which hands S3 connections to the store (handoff.ts). */
  frontPort?: number,
  /** The store was restarted after it died (its notifications in flight died with it). */
  onRestarted?: () => void,
): Promise<SupervisedEmulator> {
  return superviseEmulator({
    name: 'S3',
    kind: 's3',
    // Lambda workers were given its port at their start (stack.ts).
    keepPort: true,
    // The store streams bytes and keeps a small heap, so an atomic full GC is short. With
    // incremental marking, V8 fell in about one run in two into a Mark-Compact every few MB
    // streamed, for the process's whole life: 2-3x the store's CPU per MB (pnpm bench --only
    // pipeline splits the CPU by process; notes of issue #14).
    v8Flags: ['--no-incremental-marking'],
    settings: { dataDir, buckets, ...(frontPort === undefined ? {} : { frontPort }) },
    print,
    ...(onRestarted ? { onRestarted } : {}),
    onEvent: (message) => {
      if (message.type === 'objectCreated') onObjectCreated(message.event);
    },
  });
}

async function ensureTable(client: DynamoDBClient, definition: CreateTableCommandInput) {
  try {
    await client.send(new DescribeTableCommand({ TableName: definition.TableName }));
  } catch (error) {
    if (!(error instanceof ResourceNotFoundException)) throw error;
    await client.send(new CreateTableCommand(definition));
  }
}

/** The match table, the verdict ledger and the dispatch slots, as Terraform defines them. */
export async function createTables(client: DynamoDBClient, names: ResourceNames): Promise<void> {
  await ensureTable(client, matchTableDefinition(names.table));
  await ensureTable(client, verdictTableDefinition(names.verdictTable));
  await ensureTable(client, dispatchSlotsTableDefinition(names.dispatchSlotsTable));
}
