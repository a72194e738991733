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
import { carriedRecord, unchangedVerdict, type Unchanged } from './delta-carry';
import {
  emptyRescans,
  knownDeltaOutcome,
  rememberDeltaOutcome,
  type DeltaRescans,
} from './delta-reads';
import { scanWithDelta } from './delta-scan';
import { recordVerdict } from './ledger';

/**
 * Re-scanning only what a rules release changed. For an object named by a delta re-scan (the
 * batcher's RETRO_DELTA_EVENT records), when its ledger verdict was made from the bytes the object
 * still holds, with a release the current one's delta builds on, only the delta rules (the files
 * with new or changed rules) can change the verdict:
 * - "still holds": S3's ETag, size and Last-Modified equal the ledger's. The batcher's listing says
 *   so when it was made after the verdict (no request per object); otherwise a HEAD (which also
 *   compares the version id);
 * - the content prefilter: when the verdict's content signature (the trigrams of every byte the
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
 * An invocation reads its objects' ledger entries and their binaries' delta outcomes in batches
 * first (prepareDeltaRescans, delta-reads.ts); whatever that could not read is read per object.
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
  else if (excludedByPrefilter(previous.contentSignature, delta.prefilter)) {
    [matched, how] = [false, 'excluded'];
  } else if (sharesOutcome) {
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
    const [write] = await Promise.all([
      recordVerdict(deps.dynamo, settings.verdictTable, record, { carried: true }),
      remembered,
    ]);
    if (!write.written) {
      // Another analysis wrote the object's verdict since it was read: that one stands.
      log.info('kept the verdict written meanwhile; nothing carried over', { sha256 });
    }
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
