import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { S3Client } from '@aws-sdk/client-s3';
import { SendMessageBatchCommand, type SQSClient } from '@aws-sdk/client-sqs';
import {
  s3EventRecord,
  verdictCoverage,
  type ListedObject,
  type VerdictCoverage,
} from '@binaryalert/core';

/** SQS takes at most 10 messages per SendMessageBatch. */
const BATCH = 10;

/** What a reconciliation found and how many objects it queued again. */
export type ReconcileOutcome = VerdictCoverage & { queued: number };

export interface ReconcileTarget {
  bucket: string;
  verdictTable: string;
  queueUrl: string;
}

/**
 * Queues again every object of the bucket that has no verdict for its current content (never
 * analyzed, replaced since, or whose last analysis failed), as an S3 notification would. After a crash of the local stack its
 * in-memory queue is gone: this is how the objects uploaded (or queued) before the crash still
 * reach a verdict. An object queued twice is analyzed twice, never alerted twice (the alert
 * decision is per binary and rule). Returns the comparison; `queued` counts the messages sent.
 */
export async function reconcileVerdicts(
  clients: { s3: S3Client; dynamo: DynamoDBClient; sqs: SQSClient },
  target: ReconcileTarget,
): Promise<ReconcileOutcome> {
  let pending: ListedObject[] = [];
  let queued = 0;
  const flush = async (): Promise<void> => {
    const batch = pending;
    pending = [];
    if (batch.length === 0) return;
    const response = await clients.sqs.send(
      new SendMessageBatchCommand({
        QueueUrl: target.queueUrl,
        Entries: batch.map((object, index) => ({
          Id: String(index),
          MessageBody: JSON.stringify({
            Records: [
              s3EventRecord(
                {
                  bucket: target.bucket,
                  key: object.key,
                  ...(object.size === undefined ? {} : { size: object.size }),
                },
                'ObjectCreated:Put',
              ),
            ],
          }),
        })),
      }),
    );
    const failed = response.Failed ?? [];
    if (failed.length > 0) {
      throw new Error(`could not queue ${failed.length} objects: ${failed[0]?.Message ?? ''}`);
    }
    queued += batch.length;
  };
  const coverage = await verdictCoverage(clients, {
    bucket: target.bucket,
    table: target.verdictTable,
    // A failure's retries lived in the lost queue: the object would keep `failed` for good.
    retryFailed: true,
    onGap: async (object) => {
      pending.push(object);
      if (pending.length >= BATCH) await flush();
    },
  });
  await flush();
  return { ...coverage, queued };
}
