import {
  excludedByPrefilter,
  objectId,
  Slots,
  type S3ObjectRef,
  type VerdictRecord,
} from '@binaryalert/core';
import {
  analyzeObject,
  type AnalyzerDeps,
  type AnalyzerSettings,
  type ObjectOutcome,
} from './analyze';
import { carriedRecord, judgeByListing, unchangedVerdict, type Unchanged } from './delta-carry';
import {
  emptyRescans,
  readBinaryFacts,
  rememberDeltaOutcome,
  type DeltaRescans,
} from './delta-reads';
import { scanWithDelta } from './delta-scan';
import { recordCarriedVerdicts } from './ledger';
import type { ActiveRules } from './rules-release';

/**
 * Re-scanning only what a rules release changed. For an object named by a delta re-scan (the
 * batcher's RETRO_DELTA_EVENT records), when its ledger verdict was made from the bytes the object
 * still holds, with a release the current one's delta builds on, only the delta rules (the files
 * with new or changed rules) can change the verdict:
 * - "still holds": S3's ETag, size and Last-Modified equal the ledger's. The batcher's listing says
 *   so when it was made after the verdict (no request per object); otherwise a HEAD (which also
 *   compares the version id);
 * - the content prefilter: when the binary's content signature (the trigrams of every byte the
 *   full analysis scanned) lacks a literal that any match of the delta rules requires (the
 *   release's `delta.prefilter`), no delta rule can match: decided with no download or read;
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
 * An invocation reads its objects' ledger entries, then their binaries' content signatures and
 * delta outcomes, in batches first (prepareDeltaRescans, delta-reads.ts), and carries what those
 * reads settle alone, 25 to a request, while it reads the others (settleFromLedger); whatever the
 * batches could not read is read per object.
 * Whether a verdict still stands is delta-carry.ts; the download and scan with the delta rules is
 * delta-scan.ts.
 */

/** An object whose verdict was settled without a full analysis. */
export interface CarriedOutcome {
  status: 'carried';
  id: string;
  rulesVersion: number;
  verdict: VerdictRecord['verdict'];
  /** `current`: already verdicted with this release; `scanned`: downloaded and scanned with the
   * delta rules; `known`: the delta's outcome for these bytes was known (no download);
   * `excluded`: the content signature proves no delta rule can match (no download). */
  how: 'current' | 'scanned' | 'known' | 'excluded';
}

/** The release a delta re-scan works with, when it has a usable delta. */
type DeltaRules = ActiveRules & {
  manifest: { delta: NonNullable<ActiveRules['manifest']['delta']> };
};

function usableDelta(rules: ActiveRules): rules is DeltaRules {
  const delta = rules.manifest.delta;
  return !!delta && (delta.namespaces.length === 0 || !!rules.delta);
}

/** An object verdicted with this very release: confirmed, nothing written. */
function confirmed(id: string, rules: ActiveRules, previous: VerdictRecord): CarriedOutcome {
  return {
    status: 'carried',
    id,
    rulesVersion: rules.manifest.version,
    verdict: previous.verdict,
    how: 'current',
  };
}

/**
 * The delta's outcome for an unchanged verdict's bytes when it is known without a download or a
 * request: no delta rule to run, ruled out by the content prefilter, or the invocation's batch
 * read it from the match table.
 */
function outcomeWithoutDownload(
  previous: VerdictRecord,
  delta: DeltaRules['manifest']['delta'],
  shared: DeltaRescans,
): { matched: boolean; how: 'known' | 'excluded' } | undefined {
  if (delta.namespaces.length === 0) return { matched: false, how: 'known' };
  const signature = shared.signatures.get(previous.sha256!) ?? undefined;
  if (excludedByPrefilter(signature, delta.prefilter)) {
    return { matched: false, how: 'excluded' };
  }
  const matched = delta.usesExternals ? undefined : shared.outcomes.get(previous.sha256!);
  return matched === undefined ? undefined : { matched, how: 'known' };
}

/** The objects an invocation's batch reads settle alone, and their outcomes once recorded. */
export interface Settling {
  refs: Set<S3ObjectRef>;
  outcomes: Promise<Map<S3ObjectRef, CarriedOutcome | ObjectOutcome>>;
}

/**
 * The delta re-scans an invocation's batch reads settle alone (the ledger verdict stands for the
 * listed bytes and the delta's outcome is known without a download): decided at once, their
 * verdicts carried over together, 25 to a request, while the invocation reads the others (which
 * are left to analyzeAfterRelease).
 */
export async function settleFromLedger(
  deps: AnalyzerDeps,
  settings: AnalyzerSettings,
  refs: S3ObjectRef[],
  version: number,
  shared: DeltaRescans,
): Promise<Settling> {
  const settled = new Map<S3ObjectRef, CarriedOutcome | ObjectOutcome>();
  const none = { refs: new Set<S3ObjectRef>(), outcomes: Promise.resolve(settled) };
  if (refs.length === 0) return none;
  const rules = shared.rules ?? (await deps.rules.current());
  if (!usableDelta(rules)) return none;
  const carries: Carry[] = [];
  for (const ref of refs) {
    const id = objectId(ref.bucket, ref.key);
    if (!shared.verdicts.has(id)) continue;
    const unchanged = judgeByListing(
      ref,
      shared.verdicts.get(id) ?? undefined,
      rules.manifest.version,
      rules.manifest.delta,
    );
    if (unchanged === undefined || unchanged === 'needs-head') continue;
    if (Number(unchanged.previous.rulesVersion) === rules.manifest.version) {
      settled.set(ref, confirmed(id, rules, unchanged.previous));
      continue;
    }
    const known = outcomeWithoutDownload(unchanged.previous, rules.manifest.delta, shared);
    if (known && !known.matched) carries.push({ ref, ...unchanged, how: known.how });
  }
  return {
    refs: new Set([...settled.keys(), ...carries.map((carry) => carry.ref)]),
    outcomes: carryOver(deps, settings, rules, version, carries).then((outcomes) => {
      carries.forEach((carry, index) => settled.set(carry.ref, outcomes[index]!));
      return settled;
    }),
  };
}

interface Carry extends Unchanged {
  ref: S3ObjectRef;
  how: CarriedOutcome['how'];
}

/** Records carried verdicts (recordCarriedVerdicts) and says, per object, what became of it. */
async function carryOver(
  deps: AnalyzerDeps,
  settings: AnalyzerSettings,
  rules: ActiveRules,
  version: number,
  carries: Carry[],
): Promise<(CarriedOutcome | ObjectOutcome)[]> {
  if (carries.length === 0) return [];
  const records = carries.map(({ previous, observedAt }) =>
    carriedRecord(previous, rules, version, observedAt, settings.verdictTtlDays),
  );
  const writes = await recordCarriedVerdicts(deps.dynamo, settings.verdictTable, records);
  const how: Partial<Record<CarriedOutcome['how'], number>> = {};
  carries.forEach((carry, index) => {
    if (writes[index]!.written) how[carry.how] = (how[carry.how] ?? 0) + 1;
  });
  // One line for the batch; each object's at debug level (a re-scan carries most of a bucket).
  if (Object.keys(how).length > 0) {
    deps.log.info('verdicts carried over to a new rules release', {
      rulesVersion: rules.manifest.version,
      ...how,
    });
  }
  return carries.map(({ ref, previous, how }, index): CarriedOutcome | ObjectOutcome => {
    const [record, write] = [records[index]!, writes[index]!];
    const id = objectId(ref.bucket, ref.key);
    const sha256 = record.sha256;
    if (!write.written && write.reason === 'failed') {
      deps.log.error('could not record the carried-over verdict; the object will be retried', {
        object: id,
        error: write.error,
      });
      return { status: 'failed', id, error: write.error };
    }
    if (write.written) {
      deps.log.debug('verdict carried over to a new rules release', {
        object: id,
        sha256,
        verdict: record.verdict,
        rulesVersion: rules.manifest.version,
        from: previous.rulesVersion,
        how,
      });
    } else {
      // Another analysis wrote the object's verdict since it was read: that one stands.
      deps.log.info('kept the verdict written meanwhile; nothing carried over', {
        object: id,
        sha256,
      });
    }
    return {
      status: 'carried',
      id,
      rulesVersion: rules.manifest.version,
      verdict: record.verdict,
      how,
    };
  });
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
  // Made when first needed: most objects of a delta re-scan log nothing of their own.
  let objectLog: typeof deps.log | undefined;
  const log = (): typeof deps.log =>
    (objectLog ??= deps.log.createChild({ persistentKeys: { object: id } }));
  // One release for the whole decision (the invocation's, when it read them together).
  const rules = shared.rules ?? (await deps.rules.current());
  if (!usableDelta(rules)) return full();
  const delta = rules.manifest.delta;

  let unchanged: Unchanged | undefined;
  try {
    unchanged = await unchangedVerdict(deps, settings, ref, shared, rules.manifest.version, delta);
  } catch (error) {
    log().warn('could not decide a delta re-scan; analyzing in full', { error });
    return full();
  }
  if (!unchanged) return full();
  const { previous } = unchanged;
  if (Number(previous.rulesVersion) === rules.manifest.version) {
    return confirmed(id, rules, previous);
  }

  const sha256 = previous.sha256!;
  const sharesOutcome = !delta.usesExternals;
  if (delta.namespaces.length > 0 && !shared.signatures.has(sha256)) {
    // Not read with the invocation's batch: the binary's facts, for this object alone.
    try {
      const facts = await readBinaryFacts(
        deps.dynamo,
        settings.matchesTable,
        sha256,
        rules.manifest.version,
      );
      shared.signatures.set(sha256, facts.signature ?? null);
      if (facts.matched !== undefined && sharesOutcome) shared.outcomes.set(sha256, facts.matched);
    } catch (error) {
      log().warn("could not read the binary's signature and delta outcome; reading the object", {
        error,
      });
    }
  }
  const known = outcomeWithoutDownload(previous, delta, shared);
  let how: CarriedOutcome['how'] = known?.how ?? 'known';
  let matched = known?.matched;
  let remembered: Promise<void> = Promise.resolve();
  // Another key of this invocation holding the same bytes is being scanned: its outcome.
  const inFlight = sharesOutcome ? shared.scans.get(sha256) : undefined;
  if (matched === undefined && inFlight) matched = await inFlight;
  if (matched === undefined) {
    const scan = scanWithDelta(
      deps,
      settings,
      ref,
      previous,
      rules.delta!,
      remainingMs,
      scanSlots,
      log(),
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
      ).catch((error: unknown) => log().warn('could not remember the delta outcome', { error }));
    }
  }
  if (matched) {
    await remembered;
    return full();
  }
  const [[outcome]] = await Promise.all([
    carryOver(deps, settings, rules, version, [{ ref, ...unchanged, how }]),
    remembered,
  ]);
  return outcome!;
}
