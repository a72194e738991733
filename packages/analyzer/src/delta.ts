import {
  ConditionalCheckFailedException,
  GetItemCommand,
  UpdateItemCommand,
  type DynamoDBClient,
} from '@aws-sdk/client-dynamodb';
import { HeadObjectCommand, type HeadObjectCommandOutput } from '@aws-sdk/client-s3';
import {
  analyzeFile,
  matchCarriesOver,
  objectId,
  Slots,
  type Logger,
  type S3ObjectRef,
  type VerdictRecord,
} from '@binaryalert/core';
import type { CompiledRules } from '@binaryalert/yara';
import {
  analyzeObject,
  scanBudgetMs,
  type AnalyzerDeps,
  type AnalyzerSettings,
  type ObjectOutcome,
} from './analyze';
import { downloadObject, privateTempDir } from './download';
import { ledgerExpiry, readVerdict, recordVerdict } from './ledger';
import type { ActiveRules } from './rules-release';

/**
 * Re-scanning only what a rules release changed. For an object named by a delta re-scan (the
 * batcher's RETRO_DELTA_EVENT records), when its ledger verdict was made from these very bytes
 * (S3's ETag, size, Last-Modified and version id unchanged: a HEAD, no download) with a release the
 * current one's delta builds on, only the delta rules (the files with new or changed rules) can
 * change the verdict:
 * - each distinct SHA-256 is scanned with the delta once; the outcome is kept on the binary's
 *   match-table item (`DeltaScanVersion`, `DeltaScanMatched`), so other keys holding the same
 *   bytes are decided without a download (not when the delta rules read per-object externals);
 * - no delta rule matched: the verdict is carried over (less matches of rules the release removed
 *   or changed) and recorded for the new release without a download;
 * - a delta rule matched: the object is analyzed in full, which records and alerts as always.
 * Everything else (no ledger entry, changed bytes, an older verdict, a skipped, failed or partial
 * one, a release without a delta) is analyzed in full.
 */

/** An object whose verdict was settled without a full analysis. */
export interface CarriedOutcome {
  status: 'carried';
  id: string;
  rulesVersion: number;
  verdict: VerdictRecord['verdict'];
  /** `current`: already verdicted with this release; `scanned`: downloaded and scanned with the
   * delta rules; `known`: the delta's outcome for these bytes was known (no download). */
  how: 'current' | 'scanned' | 'known';
}

const CARRIED_VERDICTS = new Set<VerdictRecord['verdict']>(['matched', 'clean']);

/** A delta re-scan of one object: carried over where it can be, else analyzed in full. */
export async function analyzeAfterRelease(
  deps: AnalyzerDeps,
  settings: AnalyzerSettings,
  ref: S3ObjectRef,
  version: number,
  remainingMs?: () => number,
  scanSlots: Slots = new Slots(settings.concurrency),
): Promise<ObjectOutcome | CarriedOutcome> {
  const full = () => analyzeObject(deps, settings, ref, version, remainingMs, scanSlots);
  const analyzedAt = new Date();
  const id = objectId(ref.bucket, ref.key);
  const log = deps.log.child({ object: id });
  // One release for the whole decision, as for a full analysis.
  const rules = await deps.rules.current();
  const delta = rules.manifest.delta;
  if (!delta || (delta.namespaces.length > 0 && !rules.delta)) return full();

  let previous: VerdictRecord | undefined;
  try {
    // Both at once: the HEAD (no download) tells whether the ledger's bytes are still there.
    const [verdict, head] = await Promise.all([
      readVerdict(deps.dynamo, settings.verdictTable, ref),
      deps.s3.send(new HeadObjectCommand({ Bucket: ref.bucket, Key: ref.key })),
    ]);
    previous = verdict;
    if (!previous || !previous.sha256 || !CARRIED_VERDICTS.has(previous.verdict)) return full();
    const previousVersion = Number(previous.rulesVersion);
    const current = previousVersion === rules.manifest.version;
    const buildsOn =
      previousVersion >= delta.baseVersion && previousVersion < rules.manifest.version;
    if (!current && !buildsOn) return full();
    if (!sameBytes(head, previous)) return full();
    if (current) {
      return {
        status: 'carried',
        id,
        rulesVersion: previousVersion,
        verdict: previous.verdict,
        how: 'current',
      };
    }
  } catch (error) {
    log.warn('could not decide a delta re-scan; analyzing in full', { error });
    return full();
  }

  const sha256 = previous.sha256;
  let how: CarriedOutcome['how'] = 'known';
  let matched: boolean | undefined;
  let remembered: Promise<void> = Promise.resolve();
  if (delta.namespaces.length === 0) matched = false;
  else if (!delta.usesExternals) {
    matched = await knownDeltaOutcome(
      deps.dynamo,
      settings.matchesTable,
      sha256,
      rules.manifest.version,
    );
  }
  if (matched === undefined) {
    const scanned = await scanWithDelta(
      deps,
      settings,
      ref,
      rules.delta!,
      remainingMs,
      scanSlots,
      log,
    );
    // Other bytes than the ledger says, or content the delta could not fully scan: in full.
    if (scanned.sha256 !== sha256 || scanned.partial) return full();
    matched = scanned.matched;
    how = 'scanned';
    if (!delta.usesExternals) {
      // Written while the verdict is (an optimization: a lost write only costs another scan).
      remembered = rememberDeltaOutcome(
        deps.dynamo,
        settings.matchesTable,
        sha256,
        rules.manifest.version,
        matched,
      ).catch((error: unknown) => log.warn('could not remember the delta outcome', { error }));
    }
  }
  if (matched) {
    await remembered;
    return full();
  }

  const record = carriedRecord(previous, rules, version, analyzedAt, settings.verdictTtlDays);
  try {
    await Promise.all([recordVerdict(deps.dynamo, settings.verdictTable, record), remembered]);
  } catch (error) {
    log.error('could not record the carried-over verdict; the object will be retried', { error });
    return { status: 'failed', id, error };
  }
  log.info('verdict carried over to a new rules release', {
    sha256,
    verdict: record.verdict,
    rulesVersion: rules.manifest.version,
    from: previous.rulesVersion,
    how,
  });
  return {
    status: 'carried',
    id,
    rulesVersion: rules.manifest.version,
    verdict: record.verdict,
    how,
  };
}

/** Whether the object still holds the bytes its ledger entry was made from. */
function sameBytes(head: HeadObjectCommandOutput, previous: VerdictRecord): boolean {
  return (
    previous.etag !== undefined &&
    head.ETag === previous.etag &&
    head.ContentLength === previous.size &&
    head.LastModified?.toISOString() === previous.lastModified &&
    (head.VersionId ?? undefined) === (previous.versionId ?? undefined)
  );
}

/** The ledger record of a verdict carried over to `rules`: matches the release still stands by. */
export function carriedRecord(
  previous: VerdictRecord,
  rules: ActiveRules,
  analyzerVersion: number,
  analyzedAt: Date,
  ttlDays: number,
): VerdictRecord {
  const carries = (ruleId: string) => matchCarriesOver(rules.manifest, ruleId);
  const kept = previous.rules.filter(carries);
  const { alerted: _alerted, alertReason: _reason, reason: _why, ...rest } = previous;
  return {
    ...rest,
    verdict: kept.length > 0 ? 'matched' : 'clean',
    analyzedAt: analyzedAt.toISOString(),
    analyzerVersion,
    rulesVersion: String(rules.manifest.version),
    rules: kept,
    matches: previous.matches.filter((match) => carries(match.id)),
    expiresAt: ledgerExpiry(analyzedAt, ttlDays),
  };
}

async function scanWithDelta(
  deps: AnalyzerDeps,
  settings: AnalyzerSettings,
  ref: S3ObjectRef,
  delta: CompiledRules,
  remainingMs: (() => number) | undefined,
  scanSlots: Slots,
  log: Logger,
): Promise<{ sha256?: string; matched: boolean; partial: boolean }> {
  const temp = await privateTempDir(settings.tempRoot);
  try {
    const download = await downloadObject(deps.s3, ref, temp.dir, settings.maxFileBytes);
    if (download.kind === 'too-large') return { matched: false, partial: true };
    const analysis = await scanSlots.run(() =>
      analyzeFile(delta, download.file, {
        ...(download.metadata.filepath ? { filepath: download.metadata.filepath } : {}),
        label: ref.key,
        timeoutSeconds: settings.scanTimeoutSeconds,
        archives: settings.archives,
        budgetMs: scanBudgetMs(settings, remainingMs),
        tempDir: temp.dir,
      }),
    );
    return {
      sha256: analysis.sha256,
      matched: analysis.matches.length > 0,
      partial: analysis.unscanned.length > 0,
    };
  } catch (error) {
    // The full analysis that follows reports (and retries) whatever this was.
    log.warn('the delta scan failed; analyzing in full', { error });
    return { matched: false, partial: true };
  } finally {
    await temp.remove().catch(() => undefined);
  }
}

/** What the delta of `rulesVersion` found in these bytes, when some analyzer recorded it. */
async function knownDeltaOutcome(
  dynamo: DynamoDBClient,
  table: string,
  sha256: string,
  rulesVersion: number,
): Promise<boolean | undefined> {
  const { Item } = await dynamo.send(
    new GetItemCommand({
      TableName: table,
      Key: { SHA256: { S: sha256 } },
      ProjectionExpression: 'DeltaScanVersion, DeltaScanMatched',
      ConsistentRead: true,
    }),
  );
  if (Item?.DeltaScanVersion?.N !== String(rulesVersion)) return undefined;
  return Item.DeltaScanMatched?.BOOL;
}

/** Records the delta's outcome for these bytes (never over a newer release's). */
async function rememberDeltaOutcome(
  dynamo: DynamoDBClient,
  table: string,
  sha256: string,
  rulesVersion: number,
  matched: boolean,
): Promise<void> {
  try {
    await dynamo.send(
      new UpdateItemCommand({
        TableName: table,
        Key: { SHA256: { S: sha256 } },
        UpdateExpression: 'SET DeltaScanVersion = :version, DeltaScanMatched = :matched',
        ConditionExpression:
          'attribute_not_exists(DeltaScanVersion) OR DeltaScanVersion <= :version',
        ExpressionAttributeValues: {
          ':version': { N: String(rulesVersion) },
          ':matched': { BOOL: matched },
        },
      }),
    );
  } catch (error) {
    if (!(error instanceof ConditionalCheckFailedException)) throw error;
  }
}
