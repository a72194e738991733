import { InvokeCommand, type LambdaClient } from '@aws-sdk/client-lambda';
import { ReceiveMessageCommand, type Message, type SQSClient } from '@aws-sdk/client-sqs';
import {
  deleteReceipts,
  errorText,
  parseS3Notification,
  unreachable,
  type Logger,
  type S3EventRecord,
  type SlotLease,
} from '@binaryalert/core';
import type { DispatchSlots } from './slots';

export interface DispatchDeps {
  sqs: SQSClient;
  lambda: LambdaClient;
  /** One slot per analyzer invocation in flight, shared by every dispatcher run. */
  slots: DispatchSlots;
  log: Logger;
}

export interface DispatchConfig {
  queueUrl: string;
  analyzerFunctionName: string;
  analyzerQualifier: string;
  /** Upper bound on analyzer invocations (attempted) per dispatcher run. */
  maxInvocations: number;
  waitTimeSeconds: number;
  /** Receive loops running concurrently. */
  receiveConcurrency: number;
  /** Time kept in reserve beyond one long poll before starting another receive (default 2 s). */
  marginMs?: number;
  /** Pause before asking for a slot again when every analyzer slot is taken (default 1 s). */
  slotWaitMs?: number;
}

/**
 * What the dispatcher sends to the analyzer: S3 event records, the receipts to delete, and for
 * each record the index of its message's receipt (a retro message carries several objects, and
 * its receipt may be deleted only once all of them are finished).
 */
export interface AnalyzerPayload {
  Records: S3EventRecord[];
  SQSReceipts: string[];
  RecordReceipts: number[];
  /** The dispatch slot this invocation holds; the analyzer releases it when it ends. */
  DispatchSlot: { Slot: number; Holder: string };
}

export interface DispatchResult {
  /** Analyzer invocations accepted by Lambda. */
  invocations: number;
  /** Invocations Lambda refused; their messages become visible again after the visibility timeout. */
  failedInvocations: number;
  /** Times a receive loop waited because every analyzer slot was held. */
  slotWaits: number;
  /** Messages handed to analyzers. */
  dispatchedMessages: number;
  /** Test events and invalid bodies removed from the queue. */
  deletedMessages: number;
}

/**
 * Long-polls the analysis queue and hands each received batch to one asynchronous analyzer
 * invocation, with `receiveConcurrency` receive loops, until `maxInvocations` analyzers were
 * started or less than one long poll plus a margin is left. Each invocation holds a dispatch slot
 * taken before its receive, so the analyzers in flight (from this run and every earlier one)
 * never outnumber the slots; without a free slot a loop waits for an analyzer to finish.
 */
export async function dispatch(
  deps: DispatchDeps,
  config: DispatchConfig,
  remainingMs: () => number,
): Promise<DispatchResult> {
  const result: DispatchResult = {
    invocations: 0,
    failedInvocations: 0,
    slotWaits: 0,
    dispatchedMessages: 0,
    deletedMessages: 0,
  };
  const reserveMs = config.waitTimeSeconds * 1000 + (config.marginMs ?? 2000);
  // Counted before a receive so concurrent loops never exceed maxInvocations.
  let attempts = 0;

  const receiveLoop = async (): Promise<void> => {
    while (attempts < config.maxInvocations && remainingMs() > reserveMs) {
      const lease = await acquireSlot(deps);
      if (!lease) {
        result.slotWaits += 1;
        await new Promise((resolve) => setTimeout(resolve, config.slotWaitMs ?? 1000));
        continue;
      }
      attempts += 1;
      const outcome = await receiveAndInvoke(deps, config, result, lease);
      if (outcome === 'nothing received') attempts -= 1;
      // An invoke that may have reached Lambda keeps its slot until the lease runs out.
      if (outcome !== 'invoked' && outcome !== 'maybe invoked') await deps.slots.release(lease);
    }
  };
  await Promise.all(Array.from({ length: config.receiveConcurrency }, receiveLoop));
  deps.log.info('dispatch finished', { ...result });
  return result;
}

async function acquireSlot(deps: DispatchDeps): Promise<SlotLease | undefined> {
  try {
    return await deps.slots.acquire();
  } catch (error) {
    // Without the slots table the dispatcher cannot know what runs: it starts nothing.
    deps.log.error('cannot take a dispatch slot', { error: errorText(error) });
    return undefined;
  }
}

type ReceiveOutcome = 'nothing received' | 'invoked' | 'refused' | 'maybe invoked';

/** Lambda refuses an asynchronous invocation whose payload is over 1 MB (413). */
const MAX_INVOKE_PAYLOAD_BYTES = 1_000_000;

/** One receive and, when it brought S3 records, one analyzer invocation holding `lease`. */
async function receiveAndInvoke(
  deps: DispatchDeps,
  config: DispatchConfig,
  result: DispatchResult,
  lease: SlotLease,
): Promise<ReceiveOutcome> {
  let messages: Message[];
  try {
    const received = await deps.sqs.send(
      new ReceiveMessageCommand({
        QueueUrl: config.queueUrl,
        MaxNumberOfMessages: 10,
        WaitTimeSeconds: config.waitTimeSeconds,
      }),
    );
    messages = received.Messages ?? [];
  } catch (error) {
    deps.log.error('receive from the analysis queue failed', { error: errorText(error) });
    // Back off briefly so a broken queue does not turn into a hot loop.
    await new Promise((resolve) => setTimeout(resolve, 1000));
    return 'nothing received';
  }
  if (messages.length === 0) return 'nothing received';

  const payload: AnalyzerPayload = {
    Records: [],
    SQSReceipts: [],
    RecordReceipts: [],
    DispatchSlot: { Slot: lease.slot, Holder: lease.holder },
  };
  // Receipts of test events and invalid bodies: nothing will ever analyze them.
  const drop: string[] = [];
  const emptyBytes = Buffer.byteLength(JSON.stringify(payload));
  let payloadBytes = emptyBytes;
  for (const message of messages) {
    const notification = parseS3Notification(message.Body ?? '');
    switch (notification.kind) {
      case 'records': {
        // Its share of the payload, rounded up: records, receipt, and per record an index.
        const bytes =
          Buffer.byteLength(JSON.stringify(notification.records)) +
          Buffer.byteLength(JSON.stringify(message.ReceiptHandle ?? '')) +
          4 * notification.records.length +
          2;
        if (payloadBytes + bytes > MAX_INVOKE_PAYLOAD_BYTES) {
          // Refused with the rest, it would hold up the messages received with it on every receive.
          deps.log.warn(
            emptyBytes + bytes > MAX_INVOKE_PAYLOAD_BYTES
              ? 'message too large for one analyzer invocation; left for the dead-letter queue'
              : 'message left for a later receive: the analyzer payload would pass 1 MB',
            { messageId: message.MessageId, bytes },
          );
          break;
        }
        payloadBytes += bytes;
        // Forwarded as S3 sent them (an SNS envelope removed).
        const receiptIndex = payload.SQSReceipts.push(message.ReceiptHandle ?? '') - 1;
        payload.Records.push(...notification.records);
        payload.RecordReceipts.push(...notification.records.map(() => receiptIndex));
        break;
      }
      case 'test':
        deps.log.warn('deleting S3 test event', { messageId: message.MessageId });
        drop.push(message.ReceiptHandle ?? '');
        break;
      case 'invalid':
        deps.log.warn(
          `deleting message that is not an S3 event notification: ${notification.reason}`,
          { messageId: message.MessageId },
        );
        drop.push(message.ReceiptHandle ?? '');
        break;
      default:
        unreachable(notification);
    }
  }
  if (drop.length > 0) {
    result.deletedMessages += await deleteReceipts(deps.sqs, config.queueUrl, drop, deps.log);
  }
  if (payload.SQSReceipts.length === 0) return 'nothing received';

  try {
    const response = await deps.lambda.send(
      new InvokeCommand({
        FunctionName: config.analyzerFunctionName,
        Qualifier: config.analyzerQualifier,
        InvocationType: 'Event',
        Payload: Buffer.from(JSON.stringify(payload)),
      }),
    );
    if (response.FunctionError) throw new Error(`function error ${response.FunctionError}`);
    result.invocations += 1;
    result.dispatchedMessages += payload.SQSReceipts.length;
    return 'invoked';
  } catch (error) {
    result.failedInvocations += 1;
    deps.log.error('analyzer invocation failed; its messages will become visible again', {
      error: errorText(error),
      messages: payload.SQSReceipts.length,
    });
    // A 4xx answer means Lambda did not queue the event; after a timeout or a 5xx it may have.
    const status = (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
    return status !== undefined && status >= 400 && status < 500 ? 'refused' : 'maybe invoked';
  }
}
