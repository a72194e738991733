import { SendMessageBatchCommand, type SQSClient } from '@aws-sdk/client-sqs';
import { objectId, s3EventRecord, type Logger, type S3ObjectRef } from '@binaryalert/core';
import type { InvocationOutcome } from './invocation';
import type { AnalyzerInput } from './input';

// SendMessageBatch takes at most 10 entries.
const MAX_BATCH = 10;
/** SQS's longest DelaySeconds. */
const MAX_DELAY_SECONDS = 900;

/**
 * A message naming several objects (a retro-analysis message) finishes only when all of them did.
 * When some of its objects finished and others failed, the failed ones go back to the queue in a
 * message of their own and the original counts as finished: the healthy objects are not analyzed
 * again on every redelivery, and an object that always fails (poison) reaches the dead-letter
 * queue alone, its `failed` verdict already in the ledger. Objects that only wait for another
 * analysis's alert claim go back too, even when they are the whole message, in a message delayed
 * until the claim ends: a wait never brings a healthy object nearer the dead-letter queue.
 *
 * The caller deletes (or reports as done) the original only after this returned it: a crash in
 * between leaves both messages (objects analyzed twice, never alerted twice), never neither.
 * Each split for failures leaves fewer objects in the new message, so a message is split at most
 * n-1 times; an object waiting for a claim goes out again once per claim it meets (a claim ends
 * within the claim time unless its live holder renews it).
 *
 * Returns the indexes of the groups (messages) whose failed objects are queued again.
 */
export async function requeueFailedObjects(
  sqs: SQSClient,
  queueUrl: string,
  input: AnalyzerInput,
  outcomes: InvocationOutcome[],
  log: Logger,
): Promise<Set<number>> {
  const failed = (index: number): boolean => outcomes[index]?.status === 'failed';
  // Per message: the failed objects of a message some of whose objects finished.
  const splits: {
    group: number;
    failing: number[];
    refs: S3ObjectRef[];
    delaySeconds: number;
  }[] = [];
  const queued = new Set<string>();
  input.groups.forEach((_group, group) => {
    const members = input.tasks.flatMap((task, index) =>
      task.groups.includes(group) ? [index] : [],
    );
    const failing = members.filter(failed);
    // A message all of whose objects failed is retried whole (its receives count toward the
    // dead-letter queue), unless each of them only waits for another analysis's alert claim:
    // waiting must not use up receives, so they too go out again, delayed until the claim ends.
    const waitsForClaims = failing.every((index) => {
      const outcome = outcomes[index];
      return outcome?.status === 'failed' && outcome.retryAfterMs !== undefined;
    });
    if (failing.length === 0 || (failing.length === members.length && !waitsForClaims)) return;
    // An object in two such messages is queued once; both messages count as split.
    const refs = failing
      .map((index) => input.tasks[index]!.ref)
      .filter((ref) => !queued.has(objectId(ref.bucket, ref.key)));
    refs.forEach((ref) => queued.add(objectId(ref.bucket, ref.key)));
    const waitMs = Math.max(
      0,
      ...failing.map((index) => {
        const outcome = outcomes[index];
        return outcome?.status === 'failed' ? (outcome.retryAfterMs ?? 0) : 0;
      }),
    );
    splits.push({
      group,
      failing,
      refs,
      delaySeconds: Math.min(MAX_DELAY_SECONDS, Math.ceil(waitMs / 1000)),
    });
  });

  const sent = new Set<string>();
  const toSend = splits.filter((split) => split.refs.length > 0);
  for (let start = 0; start < toSend.length; start += MAX_BATCH) {
    const chunk = toSend.slice(start, start + MAX_BATCH);
    try {
      const response = await sqs.send(
        new SendMessageBatchCommand({
          QueueUrl: queueUrl,
          Entries: chunk.map((split, index) => ({
            Id: String(index),
            MessageBody: JSON.stringify({ Records: split.refs.map((ref) => s3EventRecord(ref)) }),
            // An object refused because another analysis holds its alert claim waits for it.
            ...(split.delaySeconds > 0 ? { DelaySeconds: split.delaySeconds } : {}),
          })),
        }),
      );
      for (const entry of response.Successful ?? []) {
        for (const ref of chunk[Number(entry.Id)]!.refs) sent.add(objectId(ref.bucket, ref.key));
      }
      for (const failure of response.Failed ?? []) {
        log.warn('could not queue the failed objects of a message again; it is kept whole', {
          code: failure.Code,
          reason: failure.Message,
        });
      }
    } catch (error) {
      log.warn('could not queue failed objects again; their messages are kept whole', { error });
    }
  }
  // A message is done when every one of its failed objects went out (in its own or another
  // message's new message).
  const done = new Set(
    splits
      .filter((split) =>
        split.failing.every((index) => {
          const { ref } = input.tasks[index]!;
          return sent.has(objectId(ref.bucket, ref.key));
        }),
      )
      .map((split) => split.group),
  );
  if (done.size > 0) {
    log.info('queued the failed objects of partly finished messages again', {
      messages: done.size,
      objects: sent.size,
    });
  }
  return done;
}
