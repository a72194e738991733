import { GetQueueAttributesCommand, type SQSClient } from '@aws-sdk/client-sqs';

import type { MetricStore } from './metrics';

export interface LocalStatus {
  queued: number;
  inFlight: number;
  deadLetters: number;
  analyzed: number;
  matched: number;
  alerts: number;
  /** Objects not scanned (too large, missing, access denied). */
  skipped: number;
  /** Objects whose analysis failed (each attempt; retried). */
  failed: number;
  /** Objects some content of which could not be scanned. */
  partial: number;
  errors: number;
}

export interface StatusSources {
  sqs: SQSClient;
  queueUrl: string;
  deadLetterQueueUrl: string;
  metrics: MetricStore;
  alerts: () => number;
  /** Error log lines of the functions plus failed invocations (each failure once: the
   * AnalysisErrors metric would count the same failed objects again). */
  errors: () => number;
}

async function queueCount(
  sqs: SQSClient,
  queueUrl: string,
): Promise<{ visible: number; inFlight: number }> {
  const { Attributes = {} } = await sqs.send(
    new GetQueueAttributesCommand({
      QueueUrl: queueUrl,
      AttributeNames: ['ApproximateNumberOfMessages', 'ApproximateNumberOfMessagesNotVisible'],
    }),
  );
  return {
    visible: Number(Attributes.ApproximateNumberOfMessages ?? 0),
    inFlight: Number(Attributes.ApproximateNumberOfMessagesNotVisible ?? 0),
  };
}

/** The stack's progress: queue depths, analysis metrics, alerts and errors. */
export async function readStatus(sources: StatusSources): Promise<LocalStatus> {
  const [queue, dlq] = await Promise.all([
    queueCount(sources.sqs, sources.queueUrl),
    queueCount(sources.sqs, sources.deadLetterQueueUrl),
  ]);
  return {
    queued: queue.visible,
    inFlight: queue.inFlight,
    deadLetters: dlq.visible + dlq.inFlight,
    analyzed: sources.metrics.sum('AnalyzedBinaries'),
    matched: sources.metrics.sum('MatchedBinaries'),
    alerts: sources.alerts(),
    skipped: sources.metrics.sum('SkippedBinaries'),
    failed: sources.metrics.sum('AnalysisErrors'),
    partial: sources.metrics.sum('PartialBinaries'),
    errors: sources.errors(),
  };
}

/** The status line; `perSecond` is the analysis rate since the previous line. */
export function formatStatus(s: LocalStatus, perSecond: number): string {
  return (
    `[local] ${perSecond.toFixed(1)} analyzed/s | analyzed ${s.analyzed}, matched ${s.matched}, ` +
    `alerts ${s.alerts}, skipped ${s.skipped}, failed ${s.failed}, partial ${s.partial} | ` +
    `queue ${s.queued} (in flight ${s.inFlight}), dead letters ${s.deadLetters} | errors ${s.errors}`
  );
}

/** Prints the status line every `intervalMs` when it changed; returns its stop function. */
export function startStatusLine(
  status: () => Promise<LocalStatus>,
  intervalMs: number,
  print: (text: string) => void,
): () => Promise<void> {
  let last = '';
  let previous = { at: Date.now(), analyzed: 0 };
  const timer = setInterval(() => {
    status().then(
      (s) => {
        const at = Date.now();
        const perSecond = ((s.analyzed - previous.analyzed) * 1000) / Math.max(1, at - previous.at);
        previous = { at, analyzed: s.analyzed };
        const line = formatStatus(s, perSecond);
        // An idle stack prints nothing new (the rate is 0 and nothing else moved).
        if (line !== last) print(line);
        last = line;
      },
      () => undefined,
    );
  }, intervalMs);
  timer.unref();
  return () => Promise.resolve(clearInterval(timer));
}
