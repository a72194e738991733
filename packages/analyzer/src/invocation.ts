// One analyzer invocation: its input, its objects analyzed concurrently (analyze.ts), the messages
// it finishes, its metrics and its response.
import type { SQSBatchResponse } from 'aws-lambda';
import {
  deleteReceipts,
  retryReceiptsAfter,
  mapConcurrent,
  addMetric,
  publishMetrics,
  releaseSlot,
  Slots,
  objectSummary,
  unreachable,
  type FileSummary,
  type Metrics,
  type SlotLease,
} from '@binaryalert/core';
import { AnalysisFailedError } from './errors';
import { parseAnalyzerInput, type AnalyzerInput } from './input';
import { analyzeAfterRelease, settleFromLedger, type CarriedOutcome } from './delta';
import { prepareDeltaRescans } from './delta-reads';
import { requeueFailedObjects } from './requeue';
import {
  type AnalyzerDeps,
  type AnalyzerSettings,
  type ObjectOutcome,
  analyzeObject,
} from './analyze';

/** What became of one object of an invocation: analyzed (or not), or carried over (delta.ts). */
export type InvocationOutcome = ObjectOutcome | CarriedOutcome;

/** Analysis results keyed `S3:<bucket>:<key>` (dispatcher payloads and direct S3 events). */
export type AnalysisResults = Record<string, FileSummary>;

/** The partial batch response of an SQS event source mapping. */
export type SqsBatchResponse = SQSBatchResponse;

/** Adds an invocation's metrics to `metrics` (published once the invocation is done). */
export function addInvocationMetrics(
  metrics: Metrics,
  outcomes: InvocationOutcome[],
  ruleCount: number,
): void {
  const analyzed = outcomes.filter((outcome) => outcome.status === 'analyzed');
  addMetric(metrics, 'AnalyzedBinaries', analyzed.length);
  addMetric(
    metrics,
    'MatchedBinaries',
    analyzed.filter((outcome) => outcome.result.analysis.matches.length > 0).length,
  );
  addMetric(metrics, 'YaraRules', ruleCount);
  addMetric(
    metrics,
    'S3DownloadLatency',
    analyzed.map((outcome) => outcome.downloadMs),
  );
  addMetric(
    metrics,
    'ScanLatency',
    analyzed.map((outcome) => outcome.scanMs),
  );
  addMetric(
    metrics,
    'SkippedBinaries',
    outcomes.filter((outcome) => outcome.status === 'skipped').length,
  );
  addMetric(metrics, 'PartialBinaries', analyzed.filter((outcome) => outcome.unscanned).length);
  addMetric(
    metrics,
    'AnalysisErrors',
    outcomes.filter((outcome) => outcome.status === 'failed').length,
  );
  addMetric(
    metrics,
    'UnscannedContent',
    analyzed.reduce((sum, outcome) => sum + outcome.result.analysis.unscanned.length, 0),
  );
  addMetric(
    metrics,
    'CarriedOverVerdicts',
    outcomes.filter((outcome) => outcome.status === 'carried').length,
  );
  addMetric(
    metrics,
    'PrefilterExcludedObjects',
    outcomes.filter((outcome) => outcome.status === 'carried' && outcome.how === 'excluded').length,
  );
}

/**
 * Gives back the dispatch slot this invocation held, so the dispatcher may start another analyzer;
 * never throws (a slot not released frees itself when its lease runs out).
 */
async function releaseDispatchSlot(
  deps: AnalyzerDeps,
  table: string | undefined,
  lease: SlotLease,
): Promise<void> {
  if (!table) {
    deps.log.warn('holding a dispatch slot but no DISPATCH_SLOTS_TABLE: it frees itself later');
    return;
  }
  try {
    if (!(await releaseSlot(deps.dynamo, table, lease))) {
      deps.log.warn('the dispatch slot had run out and was taken again', { slot: lease.slot });
    }
  } catch (error) {
    deps.log.warn('could not release the dispatch slot', { slot: lease.slot, error });
  }
}

/**
 * Messages to retry sooner than the visibility timeout: those whose every failed object only
 * waits for an alert claim to expire, with the longest of those waits (group index -> ms).
 */
function earlyRetries(input: AnalyzerInput, outcomes: InvocationOutcome[]): Map<number, number> {
  const waits = new Map<number, number>();
  const mustWait = new Set<number>();
  input.tasks.forEach((task, index) => {
    const outcome = outcomes[index];
    if (outcome?.status !== 'failed') return;
    for (const group of task.groups) {
      if (outcome.retryAfterMs === undefined) mustWait.add(group);
      else waits.set(group, Math.max(waits.get(group) ?? 0, outcome.retryAfterMs));
    }
  });
  for (const group of mustWait) waits.delete(group);
  return waits;
}

/** Indexes of the groups (messages) all of whose objects finished (analyzed or skipped). */
function finishedGroups(input: AnalyzerInput, outcomes: InvocationOutcome[]): Set<number> {
  const finished = new Set(input.groups.map((_group, index) => index));
  input.tasks.forEach((task, index) => {
    if (outcomes[index]?.status === 'failed')
      for (const group of task.groups) finished.delete(group);
  });
  return finished;
}

/**
 * Handles one invocation: parses the event (dispatcher payload, S3 event or SQS batch), analyzes
 * its objects concurrently, queues again on their own the failed objects of messages whose other
 * objects finished (requeue.ts), deletes the dispatcher's receipts of finished messages, publishes the
 * metrics, and returns the results (or the SQS partial batch response). For a direct S3 event with
 * failed objects it throws AnalysisFailedError, so Lambda retries the invocation.
 */
export async function handleInvocation(
  deps: AnalyzerDeps,
  settings: AnalyzerSettings,
  event: unknown,
  version: number,
  /** The invocation's remaining time (Lambda context.getRemainingTimeInMillis). */
  remainingMs?: () => number,
): Promise<AnalysisResults | SqsBatchResponse> {
  const input = parseAnalyzerInput(event, deps.log);
  try {
    return await handleInput(deps, settings, input, version, remainingMs);
  } finally {
    if (input.kind === 'dispatcher' && input.slot) {
      await releaseDispatchSlot(deps, settings.dispatchSlotsTable, input.slot);
    }
  }
}

async function handleInput(
  deps: AnalyzerDeps,
  settings: AnalyzerSettings,
  input: AnalyzerInput,
  version: number,
  remainingMs: (() => number) | undefined,
): Promise<AnalysisResults | SqsBatchResponse> {
  deps.log.info('invoked', {
    shape: input.kind,
    objects: input.tasks.length,
    messages: input.groups.length,
    analyzerVersion: version,
  });
  // One object more than the scans in flight: its download overlaps the others' scans, so a
  // scan slot never waits on the network (and /tmp holds at most one extra object).
  const scanSlots = new Slots(settings.concurrency);
  const deltaRefs = input.tasks.flatMap((task) => (task.ref.retro === 'delta' ? [task.ref] : []));
  const rescans = await prepareDeltaRescans(deps, settings, deltaRefs);
  // What the batch reads alone settle is carried over in batches while the others are read.
  const settling = await settleFromLedger(deps, settings, deltaRefs, version, rescans);
  const others = input.tasks.filter((task) => !settling.refs.has(task.ref));
  const [settled, analyzed] = await Promise.all([
    settling.outcomes,
    mapConcurrent(others, settings.concurrency + 1, (task) =>
      task.ref.retro === 'delta'
        ? analyzeAfterRelease(deps, settings, task.ref, version, remainingMs, scanSlots, rescans)
        : analyzeObject(deps, settings, task.ref, version, remainingMs, scanSlots),
    ),
  ]);
  const byTask = new Map(others.map((task, index) => [task, analyzed[index]!]));
  const outcomes = input.tasks.map((task) => settled.get(task.ref) ?? byTask.get(task)!);
  const finished = finishedGroups(input, outcomes);
  if (input.kind !== 's3') {
    const requeued = await requeueFailedObjects(
      deps.sqs,
      settings.queueUrl,
      input,
      outcomes,
      deps.log,
    );
    for (const group of requeued) finished.add(group);
  }
  // A message finished by queueing its failed objects again is deleted, not retried.
  const retries = [...earlyRetries(input, outcomes)]
    .filter(([index]) => !finished.has(index))
    .flatMap(([index, ms]) => {
      const receipt = input.groups[index]!.receipt;
      return receipt ? [{ receipt, seconds: Math.ceil(ms / 1000) }] : [];
    });
  if (retries.length > 0) await retryReceiptsAfter(deps.sqs, settings.queueUrl, retries, deps.log);

  switch (input.kind) {
    case 'dispatcher': {
      const receipts = [...finished].map((index) => input.groups[index]!.id);
      const deleted = await deleteReceipts(deps.sqs, settings.queueUrl, receipts, deps.log);
      deps.log.info('deleted SQS messages of finished objects', {
        deleted,
        kept: input.groups.length - finished.size,
      });
      break;
    }
    case 'sqs': // Lambda's event source mapping deletes what the response does not list
    case 's3': // no message to delete
      break;
    default:
      unreachable(input);
  }
  if (outcomes.length > 0) {
    const { compiled } = await deps.rules.current();
    addInvocationMetrics(deps.metrics, outcomes, compiled.ruleCount);
    publishMetrics(deps.metrics, deps.log);
  }

  switch (input.kind) {
    case 'sqs':
      return {
        batchItemFailures: input.groups
          .filter((_group, index) => !finished.has(index))
          .map((group) => ({ itemIdentifier: group.id })),
      };
    case 's3': {
      // A direct invocation fails so Lambda's asynchronous retries analyze the object again.
      const failed = outcomes.filter((outcome) => outcome.status === 'failed');
      if (failed.length > 0) {
        throw new AnalysisFailedError(
          failed.map((outcome) => outcome.id),
          { cause: failed[0]?.status === 'failed' ? failed[0].error : undefined },
        );
      }
      return analysisResults(outcomes);
    }
    case 'dispatcher':
      return analysisResults(outcomes);
    default:
      return unreachable(input);
  }
}

/** The invocation result: the summary of each object analyzed, by object id. */
function analysisResults(outcomes: InvocationOutcome[]): AnalysisResults {
  const results: AnalysisResults = {};
  for (const outcome of outcomes) {
    if (outcome.status === 'analyzed') results[outcome.id] = objectSummary(outcome.result);
  }
  return results;
}
