import { InvokeCommand, type LambdaClient } from '@aws-sdk/client-lambda';
import {
  ListObjectsV2Command,
  type ListObjectsV2CommandOutput,
  type S3Client,
  type _Object,
} from '@aws-sdk/client-s3';
import {
  SendMessageBatchCommand,
  type SendMessageBatchRequestEntry,
  type SQSClient,
} from '@aws-sdk/client-sqs';
import {
  errorText,
  forEachConcurrent,
  addMetric,
  publishMetrics,
  s3EventRecord,
  type ListingFacts,
  type Logger,
  type Metrics,
} from '@binaryalert/core';
import { z } from 'zod';

export interface BatcherDeps {
  s3: S3Client;
  sqs: SQSClient;
  lambda: LambdaClient;
  /** Powertools Metrics: embedded metric format in the function's log. */
  metrics: Metrics;
  log: Logger;
}

export interface BatcherConfig {
  bucket: string;
  queueUrl: string;
  objectsPerMessage: number;
  /** This function's name and alias, for the asynchronous self re-invocation. */
  functionName: string;
  qualifier: string;
  /** The `service` of its logs and metrics (the function's name; see functionService). */
  service?: string | undefined;
  /** Below this much remaining time the batcher hands over to a new invocation (default 15 s). */
  marginMs?: number;
  /** SendMessageBatch calls in flight at once (default 16). */
  sendConcurrency?: number;
  /** Attempts per batch entry before it counts as a BatchEnqueueFailure (default 4). */
  maxSendAttempts?: number;
  /** Keys per ListObjectsV2 page (default and maximum 1000). */
  pageSize?: number;
}

/** The batcher's event: what the user (or the previous batcher) asks to enqueue. */
export const BatchEventSchema = z.object({
  Prefix: z.string().optional(),
  ContinuationToken: z.string().optional(),
  /**
   * `delta` (after a rules release): the analyzer may scan with the release's new and changed
   * rules only, or carry verdicts over. `full` (default, and `retro-analyze --full`): every object
   * is downloaded and scanned with every rule.
   */
  Mode: z.enum(['full', 'delta']).optional(),
});
export type BatchEvent = z.infer<typeof BatchEventSchema>;

export interface BatchResult {
  /** Keys this invocation put on the queue. */
  enqueuedKeys: number;
  /** Keys in messages that still failed after every retry (reported as BatchEnqueueFailures). */
  failedKeys: number;
  failedMessages: number;
  /** Whether a follow-up invocation was started with the continuation token. */
  continued: boolean;
}

/** The self re-invocation could not be started, so the rest of the bucket would be skipped. */
export class ContinuationInvokeError extends Error {
  override readonly name = 'ContinuationInvokeError';
}

interface Message {
  body: string;
  keys: number;
}

interface ListedPage {
  output: ListObjectsV2CommandOutput;
  listedAt: Date;
}

/**
 * Enqueues every object of the bucket (under the event's prefix, from its continuation token) as
 * S3-event-shaped SQS messages of `objectsPerMessage` keys; when time runs short, re-invokes this
 * function asynchronously with the continuation token. At least one page is always handled, so
 * every invocation makes progress.
 */
export async function enqueueBucket(
  deps: BatcherDeps,
  config: BatcherConfig,
  event: BatchEvent,
  remainingMs: () => number,
): Promise<BatchResult> {
  const result: BatchResult = {
    enqueuedKeys: 0,
    failedKeys: 0,
    failedMessages: 0,
    continued: false,
  };
  const marginMs = config.marginMs ?? 15_000;
  const listPage = async (token: string | undefined): Promise<ListedPage> => {
    // Taken before the request: every fact in the answer is at least this new.
    const listedAt = new Date();
    const output = await deps.s3.send(
      new ListObjectsV2Command({
        Bucket: config.bucket,
        Prefix: event.Prefix,
        ContinuationToken: token,
        MaxKeys: config.pageSize ?? 1000,
      }),
    );
    return { output, listedAt };
  };
  deps.log.info('enqueueing bucket', {
    bucket: config.bucket,
    prefix: event.Prefix,
    continuing: event.ContinuationToken !== undefined,
  });

  let page = listPage(event.ContinuationToken);
  for (;;) {
    const { output: listed, listedAt } = await page;
    const nextToken = listed.IsTruncated ? listed.NextContinuationToken : undefined;
    // List the next page while this one is being sent.
    let next: Promise<ListedPage> | undefined;
    if (nextToken !== undefined) {
      next = listPage(nextToken);
      next.catch(() => undefined); // awaited below, or abandoned when handing over
    }
    const sent = await sendObjects(deps, config, listed.Contents ?? [], event.Mode, listedAt);
    result.enqueuedKeys += sent.enqueuedKeys;
    result.failedKeys += sent.failedKeys;
    result.failedMessages += sent.failedMessages;

    if (nextToken === undefined || next === undefined) break;
    if (remainingMs() < marginMs) {
      await continueLater(deps, config, {
        Prefix: event.Prefix,
        ContinuationToken: nextToken,
        ...(event.Mode ? { Mode: event.Mode } : {}),
      });
      result.continued = true;
      break;
    }
    page = next;
  }

  addMetric(deps.metrics, 'BatchEnqueueFailures', result.failedMessages);
  publishMetrics(deps.metrics, deps.log);
  deps.log.info('enqueue finished', { ...result });
  if (result.failedMessages > 0) {
    deps.log.error('some messages could not be enqueued', {
      failedMessages: result.failedMessages,
      failedKeys: result.failedKeys,
    });
  }
  return result;
}

async function continueLater(
  deps: BatcherDeps,
  config: BatcherConfig,
  event: BatchEvent,
): Promise<void> {
  try {
    await deps.lambda.send(
      new InvokeCommand({
        FunctionName: config.functionName,
        Qualifier: config.qualifier,
        InvocationType: 'Event',
        Payload: Buffer.from(JSON.stringify(event)),
      }),
    );
    deps.log.info('handed the rest of the bucket to a new invocation', { prefix: event.Prefix });
  } catch (error) {
    throw new ContinuationInvokeError(
      `could not re-invoke ${config.functionName}:${config.qualifier} to continue the listing`,
      { cause: error },
    );
  }
}

/**
 * Bytes of one message at most: the dispatcher hands up to ten messages (one receive) to one
 * asynchronous analyzer invocation, whose payload Lambda caps at 1 MB; the rest of the 1 MB is
 * room for the ten receipt handles (up to 1,024 bytes each) and the payload's own fields.
 */
export const MAX_MESSAGE_BYTES = 96_000;

/**
 * Packs objects into messages (S3 notification shape, keys URL-encoded by s3EventRecord) of up to
 * `objectsPerMessage` objects and MAX_MESSAGE_BYTES. In a delta re-scan each record also carries
 * what the listing said (ETag, size, LastModified, and `listedAt`, when it was asked for), so the
 * analyzer can tell whether the object still holds the bytes its ledger verdict was made from
 * without a HEAD per object.
 */
export function packMessages(
  bucket: string,
  objects: _Object[],
  objectsPerMessage: number,
  mode: BatchEvent['Mode'] = 'full',
  listedAt?: Date,
): Message[] {
  const messages: Message[] = [];
  let records: string[] = [];
  let bytes = 0;
  const flush = (): void => {
    if (records.length === 0) return;
    messages.push({ body: `{"Records":[${records.join(',')}]}`, keys: records.length });
    records = [];
    bytes = 0;
  };
  for (const object of objects) {
    if (object.Key === undefined) continue;
    const record = JSON.stringify(
      s3EventRecord({
        bucket,
        key: object.Key,
        size: object.Size,
        ...(mode === 'delta' ? { retro: 'delta' as const } : {}),
        ...(mode === 'delta' ? listingFacts(object, listedAt) : {}),
      }),
    );
    // A 1,024-byte key URL-encoded is up to 3 KB: a hundred of them would be about 350 KB.
    const size = Buffer.byteLength(record) + 1;
    if (records.length === objectsPerMessage || bytes + size > MAX_MESSAGE_BYTES - 16) flush();
    records.push(record);
    bytes += size;
  }
  flush();
  return messages;
}

/** The listing's facts of one object, when the listing gave them all. */
function listingFacts(object: _Object, listedAt: Date | undefined): { listed?: ListingFacts } {
  if (!listedAt || !object.ETag || object.Size === undefined || !object.LastModified) return {};
  return {
    listed: {
      etag: object.ETag,
      size: object.Size,
      lastModified: object.LastModified.toISOString(),
      listedAt: listedAt.toISOString(),
    },
  };
}

async function sendObjects(
  deps: BatcherDeps,
  config: BatcherConfig,
  objects: _Object[],
  mode: BatchEvent['Mode'],
  listedAt: Date,
): Promise<Omit<BatchResult, 'continued'>> {
  const messages = packMessages(config.bucket, objects, config.objectsPerMessage, mode, listedAt);
  const batches = sendBatches(messages);

  const totals = { enqueuedKeys: 0, failedKeys: 0, failedMessages: 0 };
  await forEachConcurrent(batches, config.sendConcurrency ?? 16, async (batch) => {
    const failed = await sendBatchWithRetries(deps, config, batch);
    const failedKeys = failed.reduce((sum, message) => sum + message.keys, 0);
    totals.enqueuedKeys += batch.reduce((sum, message) => sum + message.keys, 0) - failedKeys;
    totals.failedKeys += failedKeys;
    totals.failedMessages += failed.length;
  });
  return totals;
}

/** SendMessageBatch takes at most 10 messages of at most this many bytes together. */
const BATCH_MAX_MESSAGES = 10;
const BATCH_MAX_BYTES = 1024 * 1024;

/**
 * Groups messages into SendMessageBatch calls within SQS's limits: 100 objects with long unicode
 * keys (each byte URL-encoded as three) make a message of about 350 KB, and SQS refuses a whole
 * batch over 1 MiB (BatchRequestTooLong), which no retry would get through.
 */
function sendBatches(messages: Message[]): Message[][] {
  const batches: Message[][] = [];
  let batch: Message[] = [];
  let bytes = 0;
  for (const message of messages) {
    const size = Buffer.byteLength(message.body);
    if (
      batch.length === BATCH_MAX_MESSAGES ||
      (batch.length > 0 && bytes + size > BATCH_MAX_BYTES)
    ) {
      batches.push(batch);
      batch = [];
      bytes = 0;
    }
    batch.push(message);
    bytes += size;
  }
  if (batch.length > 0) batches.push(batch);
  return batches;
}

/** Sends up to 10 messages, re-sending failed entries; returns those that never succeeded. */
async function sendBatchWithRetries(
  deps: BatcherDeps,
  config: BatcherConfig,
  batch: Message[],
): Promise<Message[]> {
  const maxAttempts = config.maxSendAttempts ?? 4;
  let pending = batch.map((message, index) => ({ id: String(index), message }));
  for (let attempt = 1; attempt <= maxAttempts && pending.length > 0; attempt++) {
    if (attempt > 1) await new Promise((resolve) => setTimeout(resolve, 50 * 2 ** attempt));
    const entries: SendMessageBatchRequestEntry[] = pending.map(({ id, message }) => ({
      Id: id,
      MessageBody: message.body,
    }));
    try {
      const response = await deps.sqs.send(
        new SendMessageBatchCommand({ QueueUrl: config.queueUrl, Entries: entries }),
      );
      const failedIds = new Set((response.Failed ?? []).map((failure) => failure.Id));
      if (failedIds.size > 0) {
        deps.log.warn('SendMessageBatch entries failed', { attempt, failed: response.Failed });
      }
      pending = pending.filter(({ id }) => failedIds.has(id));
    } catch (error) {
      deps.log.warn('SendMessageBatch failed', {
        attempt,
        error: errorText(error),
      });
    }
  }
  return pending.map(({ message }) => message);
}
