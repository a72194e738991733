import {
  ConditionalCheckFailedException,
  GetItemCommand,
  UpdateItemCommand,
  type DynamoDBClient,
} from '@aws-sdk/client-dynamodb';
import { HeadObjectCommand } from '@aws-sdk/client-s3';
import {
  analyzeFile,
  batchGetItems,
  hasVerdict,
  matchCarriesOver,
  objectId,
  Slots,
  unquotedEtag,
  verdictFromItem,
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
import { DEFAULT_RANGED_DOWNLOAD, downloadBytes, downloadObject, privateTempDir } from './download';
import { ledgerExpiry, readVerdict, recordVerdict } from './ledger';
import type { ActiveRules } from './rules-release';

/**
 * Re-scanning only what a rules release changed. For an object named by a delta re-scan (the
 * batcher's RETRO_DELTA_EVENT records), when its ledger verdict was made from the bytes the object
 * still holds, with a release the current one's delta builds on, only the delta rules (the files
 * with new or changed rules) can change the verdict:
 * - "still holds": S3's ETag, size and Last-Modified equal the ledger's. The batcher's listing says
 *   so when it was made after the verdict (no request per object); otherwise a HEAD (which also
 *   compares the version id);
 * - each distinct SHA-256 is scanned with the delta once: within an invocation the copies wait for
 *   one scan; across invocations the outcome is kept on the binary's match-table item
 *   (`DeltaScanVersion`, `DeltaScanMatched`), so other keys holding the same bytes are decided
 *   without a download (not when the delta rules read per-object externals);
 * - the delta scan downloads with If-Match on the ledger's ETag and checks that the bytes' SHA-256
 *   is the ledger's (and the version id, when the ledger has one): anything else (the object was
 *   replaced since the listing) is analyzed in full;
 * - no delta rule matched: the verdict is carried over (less matches of rules the release removed
 *   or changed) and recorded for the new release without a full analysis;
 * - a delta rule matched: the object is analyzed in full, which records and alerts as always.
 * Everything else (no ledger entry, changed bytes, an older verdict, a skipped, failed or partial
 * one, a release without a delta) is analyzed in full.
 * An invocation reads its objects' ledger entries and their binaries' delta outcomes in batches
 * first (prepareDeltaRescans); whatever that could not read is read per object.
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

/** What the delta re-scans of one invocation share. */
export interface DeltaRescans {
  /** Ledger verdicts by object id; null: no verdict; absent: not read (read per object). */
  verdicts: Map<string, VerdictRecord | null>;
  /** Delta outcomes of the current release known before the invocation, by SHA-256. */
  outcomes: Map<string, boolean>;
  /** This invocation's delta scans by SHA-256 (undefined: the scan could not decide). */
  scans: Map<string, Promise<boolean | undefined>>;
}

const CARRIED_VERDICTS = new Set<VerdictRecord['verdict']>(['matched', 'clean']);

/** No shared reads: every object reads for itself. */
const emptyRescans = (): DeltaRescans => ({
  verdicts: new Map(),
  outcomes: new Map(),
  scans: new Map(),
});

/**
 * Reads, for the delta re-scans of one invocation, the objects' ledger verdicts (one
 * BatchGetItem per 100 objects) and the delta outcomes of their binaries (one per 100 distinct
 * SHA-256); never throws (what it could not read is read per object later).
 */
export async function prepareDeltaRescans(
  deps: AnalyzerDeps,
  settings: AnalyzerSettings,
  refs: S3ObjectRef[],
): Promise<DeltaRescans> {
  const shared = emptyRescans();
  if (refs.length === 0) return shared;
  try {
    const { manifest } = await deps.rules.current();
    const delta = manifest.delta;
    if (!delta) return shared;
    const keys = new Map(
      refs.map((ref) => [
        objectId(ref.bucket, ref.key),
        { Bucket: { S: ref.bucket }, Key: { S: ref.key } },
      ]),
    );
    const ledger = await batchGetItems(deps.dynamo, settings.verdictTable, [...keys.values()], {
      consistentRead: true,
    });
    const unread = new Set(ledger.unprocessed.map((key) => objectId(key.Bucket!.S!, key.Key!.S!)));
    for (const id of keys.keys()) if (!unread.has(id)) shared.verdicts.set(id, null);
    for (const item of ledger.items) {
      if (!hasVerdict(item)) continue;
      const record = verdictFromItem(item);
      shared.verdicts.set(objectId(record.bucket, record.key), record);
    }
    if (delta.namespaces.length === 0 || delta.usesExternals) return shared;
    const binaries = new Set<string>();
    for (const record of shared.verdicts.values()) {
      if (record?.sha256 && buildsOn(record, manifest.version, delta.baseVersion)) {
        binaries.add(record.sha256);
      }
    }
    const known = await batchGetItems(
      deps.dynamo,
      settings.matchesTable,
      [...binaries].map((sha256) => ({ SHA256: { S: sha256 } })),
      { consistentRead: true, projection: 'SHA256, DeltaScanVersion, DeltaScanMatched' },
    );
    for (const item of known.items) {
      const matched = item.DeltaScanMatched?.BOOL;
      if (
        item.SHA256?.S &&
        item.DeltaScanVersion?.N === String(manifest.version) &&
        matched !== undefined
      ) {
        shared.outcomes.set(item.SHA256.S, matched);
      }
    }
  } catch (error) {
    deps.log.warn('could not read the delta re-scans in batches; reading per object', { error });
  }
  return shared;
}

function buildsOn(record: VerdictRecord, version: number, baseVersion: number): boolean {
  const previous = Number(record.rulesVersion);
  return previous >= baseVersion && previous < version;
}

/** A delta re-scan of one object: carried over where it can be, else analyzed in full. */
export async function analyzeAfterRelease(
  deps: AnalyzerDeps,
  settings: AnalyzerSettings,
  ref: S3ObjectRef,
  version: number,
  remainingMs?: () => number,
  scanSlots: Slots = new Slots(settings.concurrency),
  shared: DeltaRescans = emptyRescans(),
): Promise<ObjectOutcome | CarriedOutcome> {
  const full = () => analyzeObject(deps, settings, ref, version, remainingMs, scanSlots);
  const id = objectId(ref.bucket, ref.key);
  const log = deps.log.createChild({ persistentKeys: { object: id } });
  // One release for the whole decision, as for a full analysis.
  const rules = await deps.rules.current();
  const delta = rules.manifest.delta;
  if (!delta || (delta.namespaces.length > 0 && !rules.delta)) return full();

  let unchanged: Unchanged | undefined;
  try {
    unchanged = await unchangedVerdict(deps, settings, ref, shared, rules.manifest.version, delta);
  } catch (error) {
    log.warn('could not decide a delta re-scan; analyzing in full', { error });
    return full();
  }
  if (!unchanged) return full();
  const { previous, observedAt } = unchanged;
  if (Number(previous.rulesVersion) === rules.manifest.version) {
    return {
      status: 'carried',
      id,
      rulesVersion: rules.manifest.version,
      verdict: previous.verdict,
      how: 'current',
    };
  }

  const sha256 = previous.sha256!;
  let how: CarriedOutcome['how'] = 'known';
  let matched: boolean | undefined;
  let remembered: Promise<void> = Promise.resolve();
  const sharesOutcome = !delta.usesExternals;
  if (delta.namespaces.length === 0) matched = false;
  else if (sharesOutcome) {
    matched =
      shared.outcomes.get(sha256) ??
      (shared.verdicts.has(id)
        ? undefined // read with the batch: not known then
        : await knownDeltaOutcome(
            deps.dynamo,
            settings.matchesTable,
            sha256,
            rules.manifest.version,
          ));
    // Another key of this invocation holding the same bytes is being scanned: its outcome.
    const inFlight = shared.scans.get(sha256);
    if (matched === undefined && inFlight) matched = await inFlight;
  }
  if (matched === undefined) {
    const scan = scanWithDelta(
      deps,
      settings,
      ref,
      previous,
      rules.delta!,
      remainingMs,
      scanSlots,
      log,
    );
    if (sharesOutcome) shared.scans.set(sha256, scan);
    matched = await scan;
    // Other bytes than the ledger says, or content the delta could not fully scan: in full.
    if (matched === undefined) return full();
    how = 'scanned';
    if (sharesOutcome) {
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

  const record = carriedRecord(previous, rules, version, observedAt, settings.verdictTtlDays);
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

interface Unchanged {
  previous: VerdictRecord;
  /** Since when the object is known to hold the verdict's bytes: the carried verdict's time, so
   * an analysis that began after it (of a newer upload) is never overwritten by the carry. */
  observedAt: Date;
}

/**
 * The object's ledger verdict when it was made with release `version` or one the delta builds on,
 * and the object still holds the bytes it was made from; undefined otherwise.
 */
async function unchangedVerdict(
  deps: AnalyzerDeps,
  settings: AnalyzerSettings,
  ref: S3ObjectRef,
  shared: DeltaRescans,
  version: number,
  delta: { baseVersion: number },
): Promise<Unchanged | undefined> {
  const id = objectId(ref.bucket, ref.key);
  const { listed } = ref;
  const headNow = () => {
    const observedAt = new Date();
    return deps.s3
      .send(new HeadObjectCommand({ Bucket: ref.bucket, Key: ref.key }))
      .then((head) => ({ head, observedAt }));
  };
  // Without the listing's facts, the HEAD goes out with the ledger read (the shape of old messages).
  const early = listed ? undefined : headNow();
  early?.catch(() => undefined); // awaited below unless the ledger already rules it out
  const previous = shared.verdicts.has(id)
    ? (shared.verdicts.get(id) ?? undefined)
    : await readVerdict(deps.dynamo, settings.verdictTable, ref);
  if (!previous?.sha256 || !CARRIED_VERDICTS.has(previous.verdict)) return undefined;
  const current = Number(previous.rulesVersion) === version;
  if (!current && !buildsOn(previous, version, delta.baseVersion)) return undefined;
  // A listing made after the verdict is as good as a HEAD then (it has no version id: the ETag,
  // size and Last-Modified of the key's current version); a verdict of this very release is
  // only confirmed (nothing is written), whenever the listing was made.
  if (listed && (current || Date.parse(listed.listedAt) > Date.parse(previous.analyzedAt))) {
    return sameObject(listed, previous, false)
      ? { previous, observedAt: new Date(listed.listedAt) }
      : undefined;
  }
  const { head, observedAt } = await (early ?? headNow());
  const facts = {
    ...(head.ETag ? { etag: head.ETag } : {}),
    ...(head.ContentLength === undefined ? {} : { size: head.ContentLength }),
    ...(head.LastModified ? { lastModified: head.LastModified.toISOString() } : {}),
    ...(head.VersionId ? { versionId: head.VersionId } : {}),
  };
  return sameObject(facts, previous, true) ? { previous, observedAt } : undefined;
}

/** Whether S3's facts of an object are those of the version a ledger verdict was made from. */
function sameObject(
  facts: { etag?: string; size?: number; lastModified?: string; versionId?: string },
  previous: VerdictRecord,
  compareVersionId: boolean,
): boolean {
  return (
    previous.etag !== undefined &&
    facts.etag !== undefined &&
    unquotedEtag(facts.etag) === unquotedEtag(previous.etag) &&
    facts.size === previous.size &&
    sameSecond(facts.lastModified, previous.lastModified) &&
    (!compareVersionId || (facts.versionId ?? undefined) === (previous.versionId ?? undefined))
  );
}

/** Last-Modified to the second: a GET's header has no milliseconds, a listing does. */
function sameSecond(a: string | undefined, b: string | undefined): boolean {
  if (a === undefined || b === undefined) return false;
  const [ta, tb] = [Date.parse(a), Date.parse(b)];
  return !Number.isNaN(ta) && Math.floor(ta / 1000) === Math.floor(tb / 1000);
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

/**
 * Objects smaller than this (by the listing) are delta-scanned from memory: no temp directory and
 * no file written and read back (members of containers inside still spill to anonymous files).
 */
const IN_MEMORY_BYTES = DEFAULT_RANGED_DOWNLOAD.thresholdBytes;

/**
 * Downloads the ledger's version of the object and scans it with the delta rules: whether a delta
 * rule matched, or undefined when the bytes are not the ledger's (replaced since the listing) or
 * could not be fully scanned (the full analysis that follows reports why).
 */
async function scanWithDelta(
  deps: AnalyzerDeps,
  settings: AnalyzerSettings,
  ref: S3ObjectRef,
  previous: VerdictRecord,
  delta: CompiledRules,
  remainingMs: (() => number) | undefined,
  scanSlots: Slots,
  log: Logger,
): Promise<boolean | undefined> {
  const inMemory = ref.size !== undefined && ref.size < IN_MEMORY_BYTES;
  let temp: Awaited<ReturnType<typeof privateTempDir>> | undefined;
  try {
    let download: { etag?: string; versionId?: string; metadata: Record<string, string> };
    let source: string | Buffer;
    if (inMemory) {
      const bytes = await downloadBytes(
        deps.s3,
        ref,
        Math.min(settings.maxFileBytes, IN_MEMORY_BYTES),
        previous.etag,
      );
      if (bytes.kind === 'too-large') return undefined;
      [download, source] = [bytes, bytes.bytes];
    } else {
      temp = await privateTempDir(settings.tempRoot);
      const file = await downloadObject(
        deps.s3,
        ref,
        temp.dir,
        settings.maxFileBytes,
        undefined,
        previous.etag,
      );
      if (file.kind === 'too-large') return undefined;
      [download, source] = [file, file.file];
    }
    // A store that ignores If-Match, or another version with the same ETag.
    if (
      (download.etag !== undefined &&
        unquotedEtag(download.etag) !== unquotedEtag(previous.etag!)) ||
      (previous.versionId !== undefined && download.versionId !== previous.versionId)
    ) {
      log.info('the object changed since its verdict; analyzing in full');
      return undefined;
    }
    const tempDir = temp?.dir ?? settings.tempRoot;
    const analysis = await scanSlots.run(() =>
      analyzeFile(delta, source, {
        ...(download.metadata.filepath ? { filepath: download.metadata.filepath } : {}),
        label: ref.key,
        timeoutSeconds: settings.scanTimeoutSeconds,
        archives: settings.archives,
        budgetMs: scanBudgetMs(settings, remainingMs),
        ...(tempDir === undefined ? {} : { tempDir }),
      }),
    );
    // The hash proves the scanned bytes are the verdict's (an ETag is no proof: MD5 collides).
    if (analysis.sha256 !== previous.sha256) {
      log.info('the object holds other bytes than its verdict; analyzing in full');
      return undefined;
    }
    return analysis.unscanned.length > 0 ? undefined : analysis.matches.length > 0;
  } catch (error) {
    // The full analysis that follows reports (and retries) whatever this was.
    log.warn('the delta scan failed; analyzing in full', { error });
    return undefined;
  } finally {
    await temp?.remove().catch(() => undefined);
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
