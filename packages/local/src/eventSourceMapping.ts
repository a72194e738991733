import {
  DeleteMessageBatchCommand,
  ReceiveMessageCommand,
  type Message,
  type SQSClient,
} from '@aws-sdk/client-sqs';

import { errorText } from '@binaryalert/core';
import type { InvokeOutcome, LambdaRuntime } from './lambda';

/** terraform/sqs.tf: the mapping hands the analyzer at most this many messages at once. */
export const MAPPING_BATCH_SIZE = 10;

export interface EventSourceMappingOptions {
  runtime: LambdaRuntime;
  sqs: SQSClient;
  queueUrl: string;
  queueArn: string;
  region: string;
  analyzerFunction: string;
  /** Most batches in flight at once (the mapping's maximum concurrency). */
  maxConcurrency: number;
  /** Long poll of each receive (seconds); short locally so stop() is quick. */
  waitSeconds?: number;
  onFailure: (functionName: string, outcome: InvokeOutcome) => void;
  print: (text: string) => void;
}

/** The SQS event Lambda builds from received messages. */
export function sqsEvent(
  messages: Message[],
  queueArn: string,
  region: string,
): { Records: unknown[] } {
  return {
    Records: messages.map((m) => ({
      messageId: m.MessageId,
      receiptHandle: m.ReceiptHandle,
      body: m.Body ?? '',
      attributes: m.Attributes ?? {},
      messageAttributes: {},
      md5OfBody: m.MD5OfBody,
      eventSource: 'aws:sqs',
      eventSourceARN: queueArn,
      awsRegion: region,
    })),
  };
}

/**
 * The message ids of a batch to leave on the queue, from the function's response (Lambda's
 * ReportBatchItemFailures rules): the listed ones, or the whole batch when the invocation failed
 * or the response names an id that is empty or not in the batch.
 */
export function failedMessageIds(outcome: InvokeOutcome, batch: string[]): Set<string> {
  if (!outcome.ok) return new Set(batch);
  const failures = (outcome.payload as { batchItemFailures?: unknown } | null)?.batchItemFailures;
  if (failures === undefined || failures === null) return new Set();
  if (!Array.isArray(failures)) return new Set(batch);
  const ids = failures.map((f) => (f as { itemIdentifier?: unknown } | null)?.itemIdentifier);
  if (ids.some((id) => typeof id !== 'string' || !batch.includes(id))) return new Set(batch);
  return new Set(ids as string[]);
}

/**
 * The analyzer's SQS event source mapping (`analyzer_trigger = "sqs"`), as Lambda runs it: receive
 * up to 10 messages, invoke the analyzer synchronously with them, delete the ones it did not
 * report as failed; never more than `maxConcurrency` batches at once. Returns its stop function,
 * which resolves once the batches in flight end (stopping the runtime ends them at once).
 */
export function startEventSourceMapping(options: EventSourceMappingOptions): () => Promise<void> {
  const { runtime, sqs, queueUrl } = options;
  let stopped = false;
  const inFlight = new Set<Promise<void>>();
  let freed: (() => void) | undefined;
  const abort = new AbortController();

  const finish = async (messages: Message[]): Promise<void> => {
    const outcome = await runtime.invoke(
      options.analyzerFunction,
      sqsEvent(messages, options.queueArn, options.region),
    );
    options.onFailure(options.analyzerFunction, outcome);
    const ids = messages.map((m) => m.MessageId ?? '');
    const failed = failedMessageIds(outcome, ids);
    const done = messages.filter((m) => !failed.has(m.MessageId ?? ''));
    if (done.length === 0 || stopped) return;
    await sqs.send(
      new DeleteMessageBatchCommand({
        QueueUrl: queueUrl,
        Entries: done.map((m, index) => ({ Id: String(index), ReceiptHandle: m.ReceiptHandle })),
      }),
    );
  };

  const loop = (async () => {
    while (!stopped) {
      while (!stopped && inFlight.size >= options.maxConcurrency)
        await new Promise<void>((ok) => (freed = ok));
      if (stopped) break;
      let messages: Message[] = [];
      try {
        ({ Messages: messages = [] } = await sqs.send(
          new ReceiveMessageCommand({
            QueueUrl: queueUrl,
            MaxNumberOfMessages: MAPPING_BATCH_SIZE,
            WaitTimeSeconds: options.waitSeconds ?? 1,
            MessageSystemAttributeNames: ['All'],
          }),
          { abortSignal: abort.signal },
        ));
      } catch (error) {
        if (stopped) break;
        options.print(`[local] event source mapping: receive failed: ${errorText(error)}`);
        await new Promise((ok) => setTimeout(ok, 1000));
        continue;
      }
      if (messages.length === 0) continue;
      const batch: Promise<void> = finish(messages)
        .catch((error: unknown) =>
          options.print(`[local] event source mapping: ${errorText(error)}`),
        )
        .finally(() => {
          inFlight.delete(batch);
          freed?.();
        });
      inFlight.add(batch);
    }
  })();

  return async () => {
    stopped = true;
    abort.abort();
    freed?.();
    await loop;
    await Promise.allSettled([...inFlight]);
  };
}
