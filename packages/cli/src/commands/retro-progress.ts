import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { S3Client } from '@aws-sdk/client-s3';
import { GetQueueAttributesCommand, type SQSClient } from '@aws-sdk/client-sqs';
import { verdictCoverage, type Verdict, type VerdictCoverage } from '@binaryalert/core';

export interface RetroWatchOptions {
  clients: { s3: S3Client; dynamodb: DynamoDBClient; sqs: SQSClient };
  bucket: string;
  verdictTable: string;
  queueUrl: string;
  prefix?: string;
  /**
   * When the retro-analysis started (ISO 8601): an object counts as analyzed once its verdict is
   * newer than this.
   */
  since: string;
  /**
   * The rules release of a delta re-scan: its `matched` and `clean` verdicts count as analyzed
   * whenever they were made (the re-scan confirms them without writing).
   */
  rulesVersion?: number;
  /** Pause between polls (default: 1 s, longer for large buckets: each poll lists the bucket). */
  pollIntervalMs?: number;
  /** Give up when the queue is empty and no verdict arrived for this long (default 120 s). */
  stallMs?: number;
  /** Stops watching (Ctrl-C); the analysis itself goes on. */
  signal?: AbortSignal;
  out: { write(text: string): unknown; isTTY?: boolean };
  /** Clock (epoch ms), for tests. */
  now?: () => number;
}

export interface RetroWatchOutcome {
  /** Every listed object has a verdict newer than the start. */
  finished: boolean;
  /** Watching stopped by the signal. */
  interrupted: boolean;
  /** The queue was empty and no verdict arrived for `stallMs`. */
  stalled: boolean;
  /** Objects in the bucket (under the prefix) at the last poll. */
  listed: number;
  /** Of those, objects with a verdict newer than the start, by verdict. */
  analyzed: number;
  verdicts: Record<Verdict, number>;
  /** Most messages seen in the queue at once. */
  peakMessages: number;
}

/** Messages not yet finished: waiting, being analyzed, or delayed. */
export async function queueDepth(sqs: SQSClient, QueueUrl: string): Promise<number> {
  const { Attributes = {} } = await sqs.send(
    new GetQueueAttributesCommand({
      QueueUrl,
      AttributeNames: [
        'ApproximateNumberOfMessages',
        'ApproximateNumberOfMessagesNotVisible',
        'ApproximateNumberOfMessagesDelayed',
      ],
    }),
  );
  return (
    Number(Attributes.ApproximateNumberOfMessages ?? 0) +
    Number(Attributes.ApproximateNumberOfMessagesNotVisible ?? 0) +
    Number(Attributes.ApproximateNumberOfMessagesDelayed ?? 0)
  );
}

/** Resolves true after `ms`, or false as soon as the signal aborts. */
function sleep(ms: number, signal?: AbortSignal): Promise<boolean> {
  if (signal?.aborted) return Promise.resolve(false);
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve(true);
    }, ms);
    const onAbort = (): void => {
      clearTimeout(timer);
      resolve(false);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** `1h 02m`, `3m 07s`, `12s`. */
export function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s >= 3600)
    return `${Math.floor(s / 3600)}h ${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
  if (s >= 60) return `${Math.floor(s / 60)}m ${String(s % 60).padStart(2, '0')}s`;
  return `${s}s`;
}

/** The verdict counts that need a look: skipped, failed and partial (matched first). */
export function verdictCounts(verdicts: Record<Verdict, number>): string {
  return (
    `matched ${verdicts.matched}, clean ${verdicts.clean}, skipped ${verdicts.skipped}, ` +
    `failed ${verdicts.failed}, partial ${verdicts.partial}`
  );
}

/** One progress line: objects analyzed of those listed, rate, ETA and the queue depth. */
export function progressLine(
  coverage: Pick<VerdictCoverage, 'listed' | 'covered'>,
  ratePerSecond: number | undefined,
  messages: number,
): string {
  const width = 30;
  const { listed, covered } = coverage;
  const fraction = listed === 0 ? 1 : covered / listed;
  const filled = Math.round(fraction * width);
  const rate = ratePerSecond === undefined ? '-' : ratePerSecond.toFixed(1);
  const eta =
    ratePerSecond && ratePerSecond > 0
      ? formatDuration((listed - covered) / ratePerSecond)
      : covered === listed
        ? '0s'
        : '-';
  return (
    `[${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${covered}/${listed} objects analyzed, ` +
    `${rate}/s, ETA ${eta} | queue ${messages} messages`
  );
}

/**
 * Watches a retro-analysis in objects: polls the bucket listing against the verdict ledger until
 * every listed object has a verdict newer than `since` (objects uploaded meanwhile count too;
 * deleted ones drop out), showing objects analyzed, the rate and an ETA. Never ends on a fixed
 * start grace: only on completion, on the signal, or on a stall (empty queue, no new verdict for
 * `stallMs`: objects the batcher could not queue).
 */
export async function watchRetroProgress(options: RetroWatchOptions): Promise<RetroWatchOutcome> {
  const { out } = options;
  const now = options.now ?? Date.now;
  const stallMs = options.stallMs ?? 120_000;
  const outcome: RetroWatchOutcome = {
    finished: false,
    interrupted: false,
    stalled: false,
    listed: 0,
    analyzed: 0,
    verdicts: { matched: 0, clean: 0, skipped: 0, failed: 0, partial: 0 },
    peakMessages: 0,
  };
  let first: { at: number; covered: number } | undefined;
  let lastProgress = { at: now(), covered: -1 };
  let lastLine = '';
  const write = (line: string, final = false): void => {
    if (!final && line === lastLine) return;
    lastLine = line;
    out.write(out.isTTY ? `\r\x1b[2K${line}${final ? '\n' : ''}` : `${line}\n`);
  };
  for (;;) {
    const [coverage, messages] = await Promise.all([
      verdictCoverage(
        { s3: options.clients.s3, dynamo: options.clients.dynamodb },
        {
          bucket: options.bucket,
          table: options.verdictTable,
          ...(options.prefix ? { prefix: options.prefix } : {}),
          since: options.since,
          ...(options.rulesVersion === undefined ? {} : { rulesVersion: options.rulesVersion }),
        },
      ),
      queueDepth(options.clients.sqs, options.queueUrl),
    ]);
    const at = now();
    outcome.listed = coverage.listed;
    outcome.analyzed = coverage.covered;
    outcome.verdicts = coverage.verdicts;
    outcome.peakMessages = Math.max(outcome.peakMessages, messages);
    first ??= { at, covered: coverage.covered };
    const rate =
      at > first.at ? ((coverage.covered - first.covered) * 1000) / (at - first.at) : undefined;
    if (coverage.covered !== lastProgress.covered || messages > 0) {
      lastProgress = { at, covered: coverage.covered };
    }

    if (coverage.covered === coverage.listed) {
      outcome.finished = true;
      write(progressLine(coverage, rate, messages));
      if (out.isTTY) out.write('\n');
      return outcome;
    }
    if (at - lastProgress.at >= stallMs) {
      outcome.stalled = true;
      write(progressLine(coverage, rate, messages), true);
      return outcome;
    }
    write(progressLine(coverage, rate, messages));
    const interval =
      options.pollIntervalMs ?? Math.min(15_000, Math.max(1000, coverage.listed * 2));
    if (!(await sleep(interval, options.signal))) {
      outcome.interrupted = true;
      if (out.isTTY) out.write('\n');
      return outcome;
    }
  }
}
