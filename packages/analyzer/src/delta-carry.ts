// Whether an object's ledger verdict still stands for a new release, and the record it carries.
import { HeadObjectCommand } from '@aws-sdk/client-s3';
import {
  matchCarriesOver,
  objectId,
  unquotedEtag,
  type S3ObjectRef,
  type VerdictRecord,
} from '@binaryalert/core';
import type { AnalyzerDeps, AnalyzerSettings } from './analyze';
import type { DeltaRescans } from './delta-reads';
import { ledgerExpiry, readVerdict } from './ledger';
import type { ActiveRules } from './rules-release';

const CARRIED_VERDICTS = new Set<VerdictRecord['verdict']>(['matched', 'clean']);

/** Whether a verdict was made with a release from the delta's base up to (not including) `version`. */
export function buildsOn(record: VerdictRecord, version: number, baseVersion: number): boolean {
  const previous = Number(record.rulesVersion);
  return previous >= baseVersion && previous < version;
}

export interface Unchanged {
  previous: VerdictRecord;
  /** Since when the object is known to hold the verdict's bytes: the carried verdict's time, so
   * an analysis that began after it (of a newer upload) is never overwritten by the carry. */
  observedAt: Date;
}

/**
 * The object's ledger verdict when it was made with release `version` or one the delta builds on,
 * and the object still holds the bytes it was made from; undefined otherwise.
 */
export async function unchangedVerdict(
  deps: AnalyzerDeps,
  settings: AnalyzerSettings,
  ref: S3ObjectRef,
  shared: DeltaRescans,
  version: number,
  delta: { baseVersion: number },
): Promise<Unchanged | undefined> {
  const id = objectId(ref.bucket, ref.key);
  const headNow = () => {
    const observedAt = new Date();
    return deps.s3
      .send(new HeadObjectCommand({ Bucket: ref.bucket, Key: ref.key }))
      .then((head) => ({ head, observedAt }));
  };
  // Without the listing's facts, the HEAD goes out with the ledger read (the shape of old messages).
  const early = ref.listed ? undefined : headNow();
  early?.catch(() => undefined); // awaited below unless the ledger already rules it out
  const previous = shared.verdicts.has(id)
    ? (shared.verdicts.get(id) ?? undefined)
    : await readVerdict(deps.dynamo, settings.verdictTable, ref);
  const judged = judgeByListing(ref, previous, version, delta);
  if (judged !== 'needs-head') return judged;
  const { head, observedAt } = await (early ?? headNow());
  const facts = {
    ...(head.ETag ? { etag: head.ETag } : {}),
    ...(head.ContentLength === undefined ? {} : { size: head.ContentLength }),
    ...(head.LastModified ? { lastModified: head.LastModified.toISOString() } : {}),
    ...(head.VersionId ? { versionId: head.VersionId } : {}),
  };
  return sameObject(facts, previous!, true) ? { previous: previous!, observedAt } : undefined;
}

/**
 * unchangedVerdict's judgement as far as the ledger verdict and the batcher's listing tell:
 * `needs-head` when only S3 can say whether the object still holds the verdict's bytes.
 */
export function judgeByListing(
  ref: S3ObjectRef,
  previous: VerdictRecord | undefined,
  version: number,
  delta: { baseVersion: number },
): Unchanged | undefined | 'needs-head' {
  if (!previous?.sha256 || !CARRIED_VERDICTS.has(previous.verdict)) return undefined;
  const current = Number(previous.rulesVersion) === version;
  if (!current && !buildsOn(previous, version, delta.baseVersion)) return undefined;
  // A listing made after the verdict is as good as a HEAD then (it has no version id: the ETag,
  // size and Last-Modified of the key's current version); a verdict of this very release is
  // only confirmed (nothing is written), whenever the listing was made.
  const { listed } = ref;
  if (listed && (current || Date.parse(listed.listedAt) > Date.parse(previous.analyzedAt))) {
    return sameObject(listed, previous, false)
      ? { previous, observedAt: new Date(listed.listedAt) }
      : undefined;
  }
  return 'needs-head';
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
