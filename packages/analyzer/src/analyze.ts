import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { S3Client } from '@aws-sdk/client-s3';
import type { SNSClient } from '@aws-sdk/client-sns';
import type { SQSClient } from '@aws-sdk/client-sqs';
import {
  analyzeFile,
  objectId,
  pathInsideObject,
  ruleFingerprint,
  ruleId,
  Slots,
  objectSummary,
  type ArchiveSettings,
  type ObjectAnalysis,
  type Logger,
  type Metrics,
  type S3ObjectRef,
} from '@binaryalert/core';
import { publishMatchAlert, publishNegativeAlert } from './alerts';
import { downloadForScan, type ScanSource } from './download';
import {
  AlertInFlightError,
  MatchBookkeepingError,
  ObjectAccessDeniedError,
  ObjectMissingError,
} from './errors';
import { recordContentSignature } from './delta-reads';
import { recordVerdict, verdictRecord, type S3ObjectFacts } from './ledger';
import { recordMatch, type MatchDecision } from './match-history';
import type { ActiveRules, RulesProvider } from './rules-release';

/** The clients and rules the analysis uses; built once per container by deps.ts, or by tests. */
export interface AnalyzerDeps {
  s3: S3Client;
  dynamo: DynamoDBClient;
  sns: SNSClient;
  sqs: SQSClient;
  /** Powertools Metrics: embedded metric format in the function's log. */
  metrics: Metrics;
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
  /**
   * Record each full analysis's content signature for the delta re-scans' prefilter (tfvars
   * content_prefilter; absent: true).
   */
  contentSignatures?: boolean;
  /** Objects analyzed at once. */
  concurrency: number;
  /** Objects smaller than this (by their event) are read into memory (default IN_MEMORY_BYTES). */
  inMemoryBytes?: number;
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
  const log = deps.log.createChild({ persistentKeys: { object: id } });
  const outcome = await scanObject(deps, settings, ref, log, remainingMs, scanSlots);
  // Only waiting for another analysis's alert: the retry records the verdict, not "failed".
  if (outcome.status === 'failed' && outcome.retryAfterMs !== undefined) return outcome;
  const record = verdictRecord(ref, outcome, {
    analyzedAt,
    analyzerVersion: version,
    ...(outcome.status === 'analyzed' ? { rulesVersion: String(outcome.rulesVersion) } : {}),
    ttlDays: settings.verdictTtlDays,
  });
  // What a later delta re-scan's prefilter reads instead of the bytes, when every byte inside was
  // scanned; an optimization: without it the re-scan reads the object.
  const signature =
    outcome.status === 'analyzed' && !outcome.unscanned
      ? outcome.result.analysis.contentSignature
      : undefined;
  const signed = signature
    ? recordContentSignature(deps.dynamo, settings.matchesTable, record.sha256!, signature).catch(
        (error: unknown) =>
          log.warn('could not record the content signature; a delta re-scan will read it', {
            error,
          }),
      )
    : undefined;
  try {
    const [write] = await Promise.all([
      recordVerdict(deps.dynamo, settings.verdictTable, record),
      signed,
    ]);
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
  let download: Extract<ScanSource, { kind: 'downloaded' }> | undefined;
  try {
    const fetched = await downloadForScan(deps.s3, ref, settings.maxFileBytes, {
      tempRoot: settings.tempRoot,
      inMemoryBytes: settings.inMemoryBytes,
    });
    if (fetched.kind === 'too-large') {
      log.warn('skipping object larger than the maximum file size', {
        size: fetched.size,
        maxFileBytes: settings.maxFileBytes,
      });
      return { status: 'skipped', id, reason: 'too-large', object: { size: fetched.size } };
    }
    download = fetched;
    // One release for the whole object: a newer one loaded meanwhile applies to the next scan.
    const rules = await deps.rules.current();
    const { source, tempDir, metadata } = download;
    const analysis = await scanSlots.run(() =>
      analyzeFile(rules.compiled, source, {
        ...(metadata.filepath ? { filepath: metadata.filepath } : {}),
        // Member paths start from the key: what is in S3 (`key!dir/member`).
        label: ref.key,
        timeoutSeconds: settings.scanTimeoutSeconds,
        // Negative-match alerts carry the MD5 of files nothing matched; otherwise only matches need it.
        md5: settings.negativeAlertsTopicArn ? 'always' : 'if-matched',
        archives: settings.archives,
        budgetMs: scanBudgetMs(settings, remainingMs),
        tempDir,
        // What a later delta re-scan's prefilter reads instead of the object (delta.ts).
        contentSignature: settings.contentSignatures !== false,
      }),
    );
    // The bytes are no longer needed: free /tmp before the (network-bound) bookkeeping.
    await download.remove();
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
    await download?.remove().catch((error: unknown) => {
      log.error('could not remove the temp directory', { error, dir: download?.tempDir });
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
