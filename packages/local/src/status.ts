import { GetQueueAttributesCommand, type SQSClient } from '@aws-sdk/client-sqs';

import type { MetricStore } from './cloudwatch';

export interface LocalStatus {
  queued: number;
  inFlight: number;
  deadLetters: number;
  analyzed: number;
  matched: number;
  alerts: number;
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
    errors: sources.errors(),
  };
}

export function formatStatus(s: LocalStatus): string {
  return (
    `[local] queue ${s.queued} (in flight ${s.inFlight}), dead letters ${s.deadLetters} | ` +
    `analyzed ${s.analyzed}, matched ${s.matched}, alerts ${s.alerts} | errors ${s.errors}`
  );
}

/** Prints the status line every `intervalMs` when it changed; returns its stop function. */
export function startStatusLine(
  status: () => Promise<LocalStatus>,
  intervalMs: number,
  print: (text: string) => void,
): () => Promise<void> {
  let last = '';
  const timer = setInterval(() => {
    status().then(
      (s) => {
        const line = formatStatus(s);
        if (line !== last) print(line);
        last = line;
      },
      () => undefined,
    );
  }, intervalMs);
  timer.unref();
  return () => Promise.resolve(clearInterval(timer));
}
