import type { CloudWatchClient } from '@aws-sdk/client-cloudwatch';
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { S3Client } from '@aws-sdk/client-s3';
import type { SNSClient } from '@aws-sdk/client-sns';
import type { SQSClient } from '@aws-sdk/client-sqs';
import type { SQSBatchResponse } from 'aws-lambda';
import {
  analyzeFile,
  deleteReceipts,
  retryReceiptsAfter,
  mapConcurrent,
  MetricsBatch,
  objectId,
  pathInsideObject,
  ruleFingerprint,
  ruleId,
  releaseSlot,
  Slots,
  objectSummary,
  unreachable,
  type ArchiveSettings,
  type FileSummary,
  type ObjectAnalysis,
  type Logger,
  type SlotLease,
  type S3ObjectRef,
} from '@binaryalert/core';
import { publishMatchAlert, publishNegativeAlert } from './alerts';
import { downloadObject, privateTempDir } from './download';
import {
  AlertInFlightError,
  AnalysisFailedError,
  MatchBookkeepingError,
  ObjectAccessDeniedError,
  ObjectMissingError,
} from './errors';
import { parseAnalyzerInput, type AnalyzerInput } from './input';
import { recordVerdict, verdictRecord, type S3ObjectFacts } from './ledger';
import { recordMatch, type MatchDecision } from './match-history';
import { analyzeAfterRelease, type CarriedOutcome } from './delta';
import { requeueFailedObjects } from './requeue';
import type { ActiveRules, RulesProvider } from './rules-release';

/** The clients and rules the analysis uses; built once per container by deps.ts, or by tests. */
export interface AnalyzerDeps {
  s3: S3Client;
  dynamo: DynamoDBClient;
  sns: SNSClient;
  sqs: SQSClient;
  cloudwatch: CloudWatchClient;
  /** The current rules release (refreshed between scans). */
  rules: RulesProvider;
  log: Logger;
}

export interface AnalyzerSettings {
  matchesTable: string;
  /** The verdict ledger: one item per S3 object. */
  verdictTable: string;
  /** Days a ledger item lives (0: no TTL). */
  verdictTtlDays: number;
  alertsTopicArn: string;
  /** Empty or undefined: negative-match alerts are off. */
  negativeAlertsTopicArn?: string;
  queueUrl: string;
  maxFileBytes: number;
  scanTimeoutSeconds: number;
  /** How containers inside objects are opened (terraform.tfvars archive_*). */
  archives: ArchiveSettings;
  /** Objects analyzed at once. */
  concurrency: number;
  /** The dispatcher's slots table; the slot a dispatched invocation holds is released there. */
  dispatchSlotsTable?: string;
  /** Where the per-object temp directories go (default: the OS temp directory, /tmp on Lambda). */
  tempRoot?: string;
}

export type ObjectOutcome =
  | {
      status: 'analyzed';
      id: string;
      /** What was found, in which object (the alert and the result are built from it). */
      result: ObjectAnalysis;
      object: S3ObjectFacts;
      downloadMs: number;
      scanMs: number;
      /** The rules release the object was scanned with. */
      rulesVersion: number;
      decision?: MatchDecision;
      /** Why some content could not be scanned (the verdict is then `partial`). */
      unscanned?: string;
    }
  | {
      status: 'skipped';
      id: string;
      reason: 'too-large' | 'missing' | 'access-denied';
      object?: Partial<S3ObjectFacts>;
    }
  | {
      status: 'failed';
      id: string;
      error: unknown;
      /** Retry no sooner than this (another analysis holds the object's alert claim). */
      retryAfterMs?: number;
    };

/** What became of one object of an invocation: analyzed (or not), or carried over (delta.ts). */
export type InvocationOutcome = ObjectOutcome | CarriedOutcome;

/** Analysis results keyed `S3:<bucket>:<key>` (dispatcher payloads and direct S3 events). */
export type AnalysisResults = Record<string, FileSummary>;
/** The partial batch response of an SQS event source mapping. */
export type SqsBatchResponse = SQSBatchResponse;

/** `$LATEST` (or anything unversioned) counts as version 0 in the verdict ledger. */
export function analyzerVersion(functionVersion: string | undefined): number {
  const version = Number(functionVersion);
  return Number.isInteger(version) && version > 0 ? version : 0;
}

/** Time kept back from the invocation's remaining time for the bookkeeping after a scan. */
export const BOOKKEEPING_RESERVE_MS = 10_000;

/**
 * Milliseconds a scan of containers may take: the scan timeout, cut to what the invocation has
 * left after the bookkeeping reserve (at least 1 s, so the object's own bytes are still scanned).
 */
export function scanBudgetMs(settings: AnalyzerSettings, remainingMs?: () => number): number {
  const timeoutMs = settings.scanTimeoutSeconds * 1000;
  if (!remainingMs) return timeoutMs;
  return Math.max(1000, Math.min(timeoutMs, remainingMs() - BOOKKEEPING_RESERVE_MS));
}

/**
 * Downloads, scans and does the match bookkeeping of one object, then records its verdict in the
 * ledger; never throws. An object whose verdict cannot be recorded counts as failed (retried).
 */
export async function analyzeObject(
  deps: AnalyzerDeps,
  settings: AnalyzerSettings,
  ref: S3ObjectRef,
  version: number,
  remainingMs?: () => number,
  /** Shared by the objects of one invocation: scans at once, while downloads run ahead. */
  scanSlots: Slots = new Slots(settings.concurrency),
): Promise<ObjectOutcome> {
  const analyzedAt = new Date();
  const id = objectId(ref.bucket, ref.key);
  const log = deps.log.child({ object: id });
  const outcome = await scanObject(deps, settings, ref, log, remainingMs, scanSlots);
  // Only waiting for another analysis's alert: the retry records the verdict, not "failed".
  if (outcome.status === 'failed' && outcome.retryAfterMs !== undefined) return outcome;
  const record = verdictRecord(ref, outcome, {
    analyzedAt,
    analyzerVersion: version,
    ...(outcome.status === 'analyzed' ? { rulesVersion: String(outcome.rulesVersion) } : {}),
    ttlDays: settings.verdictTtlDays,
  });
  try {
    const write = await recordVerdict(deps.dynamo, settings.verdictTable, record);
    if (!write.written) {
      log.info('kept the newer verdict already in the ledger', { verdict: record.verdict });
    }
  } catch (error) {
    log.error('could not record the verdict; the object will be retried', { error });
    return outcome.status === 'failed' ? outcome : { status: 'failed', id, error };
  }
  return outcome;
}

async function scanObject(
  deps: AnalyzerDeps,
  settings: AnalyzerSettings,
  ref: S3ObjectRef,
  log: Logger,
  remainingMs: (() => number) | undefined,
  scanSlots: Slots,
): Promise<ObjectOutcome> {
  const id = objectId(ref.bucket, ref.key);
  let temp: Awaited<ReturnType<typeof privateTempDir>> | undefined;
  try {
    temp = await privateTempDir(settings.tempRoot);
    const tempDir = temp.dir;
    const download = await downloadObject(deps.s3, ref, tempDir, settings.maxFileBytes);
    if (download.kind === 'too-large') {
      log.warn('skipping object larger than the maximum file size', {
        size: download.size,
        maxFileBytes: settings.maxFileBytes,
      });
      return { status: 'skipped', id, reason: 'too-large', object: { size: download.size } };
    }
    // One release for the whole object: a newer one loaded meanwhile applies to the next scan.
    const rules = await deps.rules.current();
    const analysis = await scanSlots.run(() =>
      analyzeFile(rules.compiled, download.file, {
        ...(download.metadata.filepath ? { filepath: download.metadata.filepath } : {}),
        // Member paths start from the key: what is in S3 (`key!dir/member`).
        label: ref.key,
        timeoutSeconds: settings.scanTimeoutSeconds,
        // Negative-match alerts carry the MD5 of files nothing matched; otherwise only matches need it.
        md5: settings.negativeAlertsTopicArn ? 'always' : 'if-matched',
        archives: settings.archives,
        budgetMs: scanBudgetMs(settings, remainingMs),
        tempDir,
      }),
    );
    // The file is no longer needed: free /tmp before the (network-bound) bookkeeping.
    await temp.remove();
    const result: ObjectAnalysis = {
      object: {
        bucket: ref.bucket,
        key: ref.key,
        lastModified: download.lastModified,
        metadata: download.metadata,
      },
      analysis,
    };
    const outcome = {
      status: 'analyzed' as const,
      id,
      result,
      object: {
        size: analysis.size,
        lastModified: download.lastModified,
        ...(download.etag ? { etag: download.etag } : {}),
        ...(download.versionId ? { versionId: download.versionId } : {}),
      },
      downloadMs: download.downloadMs,
      scanMs: analysis.scanMs,
      rulesVersion: rules.manifest.version,
      // The ledger keeps one reason: the first thing that could not be scanned.
      ...(analysis.unscanned[0] ? { unscanned: analysis.unscanned[0].reason } : {}),
    };
    log.info('analyzed object', {
      sha256: analysis.sha256,
      size: analysis.size,
      matchedRules: analysis.matches.map(ruleId),
      coverage: analysis.coverage,
      members: analysis.members.length,
      ...(analysis.unscanned.length > 0 ? { unscanned: analysis.unscanned.slice(0, 20) } : {}),
      downloadMs: Math.round(download.downloadMs),
      scanMs: Math.round(analysis.scanMs),
      rulesVersion: rules.manifest.version,
    });
    if (analysis.matches.length === 0) {
      if (settings.negativeAlertsTopicArn) {
        await publishNegativeAlert(
          deps.sns,
          settings.negativeAlertsTopicArn,
          objectSummary(result),
        );
      }
      return outcome;
    }
    const decision = await recordAndAlert(deps, settings, result, rules, log);
    return { ...outcome, decision };
  } catch (error) {
    if (error instanceof ObjectMissingError || error instanceof ObjectAccessDeniedError) {
      log.warn(`skipping object: ${error.message}`, { error });
      return {
        status: 'skipped',
        id,
        reason: error instanceof ObjectMissingError ? 'missing' : 'access-denied',
      };
    }
    if (error instanceof AlertInFlightError) {
      log.info('alert claimed by another analysis; retrying when the claim expires', {
        retryAfterMs: error.retryAfterMs,
      });
      return { status: 'failed', id, error, retryAfterMs: error.retryAfterMs };
    }
    log.error('analysis failed; the object will be retried', { error });
    return { status: 'failed', id, error };
  } finally {
    await temp?.remove().catch((error: unknown) => {
      log.error('could not remove the temp directory', { error, dir: temp?.dir });
    });
  }
}

async function recordAndAlert(
  deps: AnalyzerDeps,
  settings: AnalyzerSettings,
  result: ObjectAnalysis,
  rules: ActiveRules,
  log: Logger,
): Promise<MatchDecision> {
  const { object: ref, analysis } = result;
  if (analysis.md5 === undefined) {
    throw new TypeError(`no MD5 for the matched object ${objectId(ref.bucket, ref.key)}`);
  }
  const record = {
    sha256: analysis.sha256,
    md5: analysis.md5,
    object: { bucket: ref.bucket, key: ref.key },
    rules: analysis.matches.map((match) => ({
      id: ruleId(match),
      fingerprint: ruleFingerprint(rules.manifest, match),
    })),
    // Keyed by content, so paths inside the object, without the key (`a.zip!payload.exe`).
    // At most 100, so a container full of matching members cannot outgrow a DynamoDB item.
    memberMatches: analysis.matches
      .flatMap((match) =>
        match.member
          ? [
              {
                ruleId: ruleId(match),
                memberPath: pathInsideObject(analysis, match.member.path),
                memberSha256: match.member.sha256,
              },
            ]
          : [],
      )
      .slice(0, 100),
  };
  const tables = { matches: settings.matchesTable, ledger: settings.verdictTable };
  let published = false;
  let decision: MatchDecision;
  try {
    decision = await recordMatch(deps.dynamo, tables, record, async () => {
      await publishMatchAlert(deps.sns, settings.alertsTopicArn, objectSummary(result));
      published = true;
    });
  } catch (error) {
    if (error instanceof AlertInFlightError) throw error;
    throw new MatchBookkeepingError(
      published ? 'could not record the sent alert' : 'could not decide or publish the match alert',
      { cause: error },
    );
  }
  const fields = {
    matchedRules: record.rules.map((rule) => rule.id),
    alert: decision.alert,
    reason: decision.reason,
    rulesVersion: rules.manifest.version,
  };
  // Only a match that alerts is news (the alert itself is the warning); a re-match of a known
  // file is debug-level.
  if (decision.alert) log.info('object matched YARA rules', fields);
  else log.debug('object matched YARA rules', fields);
  return decision;
}

/** Sums up an invocation in one MetricsBatch. */
export function invocationMetrics(outcomes: InvocationOutcome[], ruleCount: number): MetricsBatch {
  const metrics = new MetricsBatch();
  const analyzed = outcomes.filter((outcome) => outcome.status === 'analyzed');
  metrics.add('AnalyzedBinaries', analyzed.length);
  metrics.add(
    'MatchedBinaries',
    analyzed.filter((outcome) => outcome.result.analysis.matches.length > 0).length,
  );
  metrics.add('YaraRules', ruleCount);
  metrics.addStatistics(
    'S3DownloadLatency',
    analyzed.map((outcome) => outcome.downloadMs),
    'Milliseconds',
  );
  metrics.addStatistics(
    'ScanLatency',
    analyzed.map((outcome) => outcome.scanMs),
    'Milliseconds',
  );
  metrics.add('SkippedBinaries', outcomes.filter((outcome) => outcome.status === 'skipped').length);
  metrics.add('PartialBinaries', analyzed.filter((outcome) => outcome.unscanned).length);
  metrics.add('AnalysisErrors', outcomes.filter((outcome) => outcome.status === 'failed').length);
  // Content inside objects that a bound, a password or damage kept from being scanned.
  metrics.add(
    'UnscannedContent',
    analyzed.reduce((sum, outcome) => sum + outcome.result.analysis.unscanned.length, 0),
  );
  // Re-scans after a rules release settled from the ledger, without a full analysis.
  metrics.add(
    'CarriedOverVerdicts',
    outcomes.filter((outcome) => outcome.status === 'carried').length,
  );
  return metrics;
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
  const outcomes = await mapConcurrent(input.tasks, settings.concurrency + 1, (task) =>
    task.ref.retro === 'delta'
      ? analyzeAfterRelease(deps, settings, task.ref, version, remainingMs, scanSlots)
      : analyzeObject(deps, settings, task.ref, version, remainingMs, scanSlots),
  );
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
    await invocationMetrics(outcomes, compiled.ruleCount).flush(deps.cloudwatch, deps.log);
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
