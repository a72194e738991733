import { z } from 'zod';
import {
  InvalidEventError,
  objectId,
  parseS3Notification,
  s3ObjectRef,
  S3EventRecordSchema,
  unreachable,
  type Logger,
  type S3ObjectRef,
  type SlotLease,
} from '@binaryalert/core';

/**
 * What the dispatcher sends: the S3 records of the messages it received and their receipts.
 * `RecordReceipts` (optional) gives, per record, the index of its message's receipt; without it a
 * one-to-one mapping is assumed when the counts are equal (each dispatched message has at least
 * one record), and otherwise a receipt is deleted only when every object finished.
 */
export const DispatcherPayloadSchema = z.object({
  Records: z.array(S3EventRecordSchema),
  SQSReceipts: z.array(z.string().min(1)),
  RecordReceipts: z.array(z.number().int().nonnegative()).optional(),
  /** The dispatch slot the invocation holds, released when it ends (docs/contracts.md). */
  DispatchSlot: z
    .object({ Slot: z.number().int().nonnegative(), Holder: z.string().min(1) })
    .optional(),
});

const SqsRecordSchema = z.looseObject({
  messageId: z.string().min(1),
  receiptHandle: z.string().optional(),
  body: z.string(),
  eventSource: z.literal('aws:sqs'),
});

/** A batch from an SQS event source mapping whose bodies are S3 event notifications. */
export const SqsEventSchema = z.object({ Records: z.array(SqsRecordSchema).min(1) });

/** One object to analyze, with the groups (SQS messages) whose completion depends on it. */
export interface ObjectTask {
  ref: S3ObjectRef;
  /** Indexes into `AnalyzerInput.groups` of the messages that finish only when this object did. */
  groups: number[];
}

/** A unit that finishes only when all its objects finished: an SQS message (receipt or id). */
export interface CompletionGroup {
  /** The receipt handle (dispatcher payload) or message id (SQS event source). */
  id: string;
  /** The message's receipt handle, to delete it or change its visibility. */
  receipt?: string;
}

export type AnalyzerInput =
  | { kind: 'dispatcher'; tasks: ObjectTask[]; groups: CompletionGroup[]; slot?: SlotLease }
  | { kind: 's3'; tasks: ObjectTask[]; groups: [] }
  | { kind: 'sqs'; tasks: ObjectTask[]; groups: CompletionGroup[] };

/**
 * Recognizes the three invocation shapes and lists the objects to analyze. Test events and bodies
 * that are not S3 notifications are dropped with a log line (an SQS message with such a body counts
 * as finished). Throws InvalidEventError for an event of no known shape.
 */
export function parseAnalyzerInput(event: unknown, log: Logger): AnalyzerInput {
  const dispatcher = DispatcherPayloadSchema.safeParse(event);
  if (dispatcher.success) return fromDispatcher(dispatcher.data, log);
  if (typeof event === 'object' && event !== null && 'SQSReceipts' in event) {
    throw new InvalidEventError('malformed dispatcher payload', { cause: dispatcher.error });
  }

  const sqs = SqsEventSchema.safeParse(event);
  if (sqs.success) return fromSqsEvent(sqs.data, log);

  // Anything else must be an S3 event notification invoking the analyzer directly.
  const notification = parseS3Notification(event);
  switch (notification.kind) {
    case 'records': {
      const tasks = notification.records.map((record) => ({
        ref: s3ObjectRef(record),
        groups: [],
      }));
      return { kind: 's3', tasks: dedupe(tasks), groups: [] };
    }
    case 'test':
      log.info('dropping S3 test event');
      return { kind: 's3', tasks: [], groups: [] };
    case 'invalid':
      throw new InvalidEventError(
        `event is neither a dispatcher payload {Records, SQSReceipts}, an SQS batch nor an S3 event (${notification.reason})`,
        { cause: dispatcher.error },
      );
    default:
      return unreachable(notification);
  }
}

/** Merges tasks naming the same object, so one invocation analyzes each object once. */
function dedupe(tasks: ObjectTask[]): ObjectTask[] {
  const byId = new Map<string, ObjectTask>();
  for (const task of tasks) {
    const id = objectId(task.ref.bucket, task.ref.key);
    const seen = byId.get(id);
    if (seen) {
      seen.groups = [...new Set([...seen.groups, ...task.groups])];
      // Events of two uploads under the key: which size is current is unknown, so the download
      // reads it (a stale oversized one must not skip the object the other event names).
      const sizesDiffer = seen.ref.size !== task.ref.size;
      // One request for a full analysis makes the whole task full.
      if (seen.ref.retro && !task.ref.retro) seen.ref = task.ref;
      if (sizesDiffer && seen.ref.size !== undefined) {
        const { size: _size, ...withoutSize } = seen.ref;
        seen.ref = withoutSize;
      }
    } else byId.set(id, { ref: task.ref, groups: [...task.groups] });
  }
  return [...byId.values()];
}

function fromDispatcher(
  payload: z.infer<typeof DispatcherPayloadSchema>,
  log: Logger,
): AnalyzerInput {
  const groups = payload.SQSReceipts.map((id) => ({ id, receipt: id }));
  const everyGroup = groups.map((_group, index) => index);
  let receiptOf: (recordIndex: number) => number[];
  const mapping = payload.RecordReceipts;
  if (
    mapping &&
    mapping.length === payload.Records.length &&
    mapping.every((index) => index < groups.length)
  ) {
    receiptOf = (recordIndex) => [mapping[recordIndex]!];
  } else if (payload.Records.length === groups.length) {
    receiptOf = (recordIndex) => [recordIndex];
  } else {
    if (mapping) log.warn('ignoring RecordReceipts that do not fit Records and SQSReceipts');
    receiptOf = () => everyGroup;
  }
  return {
    kind: 'dispatcher',
    tasks: dedupe(
      payload.Records.map((record, index) => ({
        ref: s3ObjectRef(record),
        groups: receiptOf(index),
      })),
    ),
    groups,
    ...(payload.DispatchSlot
      ? { slot: { slot: payload.DispatchSlot.Slot, holder: payload.DispatchSlot.Holder } }
      : {}),
  };
}

function fromSqsEvent(event: z.infer<typeof SqsEventSchema>, log: Logger): AnalyzerInput {
  const tasks: ObjectTask[] = [];
  const groups: CompletionGroup[] = [];
  event.Records.forEach((message, index) => {
    groups.push({
      id: message.messageId,
      ...(message.receiptHandle ? { receipt: message.receiptHandle } : {}),
    });
    const notification = parseS3Notification(message.body);
    switch (notification.kind) {
      case 'records':
        for (const record of notification.records) {
          tasks.push({ ref: s3ObjectRef(record), groups: [index] });
        }
        break;
      case 'test':
        log.info('dropping S3 test event', { messageId: message.messageId });
        break;
      case 'invalid':
        log.warn('dropping message that is not an S3 event notification', {
          messageId: message.messageId,
          reason: notification.reason,
        });
        break;
      default:
        unreachable(notification);
    }
  });
  return { kind: 'sqs', tasks: dedupe(tasks), groups };
}
