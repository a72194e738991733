import type { SQSClient } from '@aws-sdk/client-sqs';
import { createLogger, retryReceiptsAfter, type Logger } from '@binaryalert/core';

/**
 * The receipt handles an analyzer invocation carried: a dispatcher payload's `SQSReceipts`, or
 * the `receiptHandle` of each record of an SQS event-source batch; none for other events.
 */
export function receiptsOf(event: unknown): string[] {
  const shape = event as { SQSReceipts?: unknown; Records?: unknown } | null;
  const candidates = Array.isArray(shape?.SQSReceipts)
    ? (shape.SQSReceipts as unknown[])
    : Array.isArray(shape?.Records)
      ? (shape.Records as unknown[]).map(
          (record) => (record as { receiptHandle?: unknown } | null)?.receiptHandle,
        )
      : [];
  return candidates.filter(
    (receipt): receipt is string => typeof receipt === 'string' && receipt !== '',
  );
}

/**
 * Makes the messages a dead analyzer worker held visible again at once (visibility timeout 0)
 * instead of after the queue's visibility timeout: the local runtime knows which receipts each
 * invocation carried. Returns how many were released; a receipt that fails (e.g. deleted
 * meanwhile) is logged and left to the visibility timeout. A message whose alert claim the dead
 * worker held comes back once more at the claim's expiry (the analyzer's AlertInFlightError
 * retry), so the death costs it at most two receives of max_receives.
 */
export function releaseReceipts(
  sqs: SQSClient,
  queueUrl: string,
  event: unknown,
  log: Logger,
): Promise<number> {
  const retries = receiptsOf(event).map((receipt) => ({ receipt, seconds: 0 }));
  return retryReceiptsAfter(sqs, queueUrl, retries, log);
}

/** releaseReceipts for the local stack: what it did (and any failure) goes to the console. */
export function requeueDeadAnalyzerMessages(
  sqs: SQSClient,
  queueUrl: string,
  event: unknown,
  print: (text: string) => void,
): void {
  const log = createLogger('local', (line) => {
    const entry = JSON.parse(line) as { message?: string; code?: string };
    print(`[local] ${entry.message ?? ''}${entry.code ? ` (${entry.code})` : ''}`);
  });
  void releaseReceipts(sqs, queueUrl, event, log).then((released) => {
    if (released > 0) print(`[local] a dead analyzer's ${released} message(s) are queued again`);
  });
}
