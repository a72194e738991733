import {
  ChangeMessageVisibilityBatchCommand,
  DeleteMessageBatchCommand,
  type SQSClient,
} from '@aws-sdk/client-sqs';
import type { Logger } from './logger';

// DeleteMessageBatch takes at most 10 entries.
const MAX_BATCH = 10;

/**
 * Deletes the given messages from the queue, 10 per DeleteMessageBatch. Failures are logged, never
 * thrown: an undeleted message is delivered again and re-analyzed, which the match table makes
 * harmless. Returns the number of receipts deleted.
 */
export async function deleteReceipts(
  sqs: SQSClient,
  queueUrl: string,
  receipts: string[],
  log: Logger,
): Promise<number> {
  let deleted = 0;
  for (let start = 0; start < receipts.length; start += MAX_BATCH) {
    const chunk = receipts.slice(start, start + MAX_BATCH);
    try {
      const response = await sqs.send(
        new DeleteMessageBatchCommand({
          QueueUrl: queueUrl,
          Entries: chunk.map((receipt, index) => ({ Id: String(index), ReceiptHandle: receipt })),
        }),
      );
      deleted += response.Successful?.length ?? 0;
      for (const failure of response.Failed ?? []) {
        log.warn('could not delete an SQS message', {
          code: failure.Code,
          reason: failure.Message,
        });
      }
    } catch (error) {
      log.error('DeleteMessageBatch failed; the messages will be delivered again', {
        error,
        receipts: chunk.length,
      });
    }
  }
  return deleted;
}

/**
 * Makes messages visible again after the given seconds instead of the queue's visibility timeout
 * (0: at once; or when an alert claim expires). Failures are logged, never thrown: such a message
 * waits out the visibility timeout, which is slower but loses nothing. Returns how many changed.
 */
export async function retryReceiptsAfter(
  sqs: SQSClient,
  queueUrl: string,
  retries: { receipt: string; seconds: number }[],
  log: Logger,
): Promise<number> {
  let changed = 0;
  for (let start = 0; start < retries.length; start += MAX_BATCH) {
    const chunk = retries.slice(start, start + MAX_BATCH);
    try {
      const response = await sqs.send(
        new ChangeMessageVisibilityBatchCommand({
          QueueUrl: queueUrl,
          Entries: chunk.map((retry, index) => ({
            Id: String(index),
            ReceiptHandle: retry.receipt,
            VisibilityTimeout: retry.seconds,
          })),
        }),
      );
      changed += response.Successful?.length ?? 0;
      for (const failure of response.Failed ?? []) {
        log.warn('could not change the visibility of an SQS message', {
          code: failure.Code,
          reason: failure.Message,
        });
      }
    } catch (error) {
      log.warn('ChangeMessageVisibilityBatch failed; the messages wait the visibility timeout', {
        error,
        receipts: chunk.length,
      });
    }
  }
  return changed;
}
