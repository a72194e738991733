// The delta scan: the ledger's version of an object downloaded and scanned with the delta rules.
import {
  analyzeFile,
  Slots,
  unquotedEtag,
  type Logger,
  type S3ObjectRef,
  type VerdictRecord,
} from '@binaryalert/core';
import type { CompiledRules } from '@binaryalert/yara';
import { scanBudgetMs, type AnalyzerDeps, type AnalyzerSettings } from './analyze';
import { downloadForScan, type ScanSource } from './download';

/**
 * Downloads the ledger's version of the object and scans it with the delta rules: whether a delta
 * rule matched, or undefined when the bytes are not the ledger's (replaced since the listing) or
 * could not be fully scanned (the full analysis that follows reports why).
 */
export async function scanWithDelta(
  deps: AnalyzerDeps,
  settings: AnalyzerSettings,
  ref: S3ObjectRef,
  previous: VerdictRecord,
  delta: CompiledRules,
  remainingMs: (() => number) | undefined,
  scanSlots: Slots,
  log: Logger,
): Promise<boolean | undefined> {
  let download: Extract<ScanSource, { kind: 'downloaded' }> | undefined;
  try {
    const fetched = await downloadForScan(deps.s3, ref, settings.maxFileBytes, {
      tempRoot: settings.tempRoot,
      inMemoryBytes: settings.inMemoryBytes,
      ifMatch: previous.etag,
    });
    if (fetched.kind === 'too-large') return undefined;
    download = fetched;
    // A store that ignores If-Match, or another version with the same ETag.
    if (
      (download.etag !== undefined &&
        unquotedEtag(download.etag) !== unquotedEtag(previous.etag!)) ||
      (previous.versionId !== undefined && download.versionId !== previous.versionId)
    ) {
      log.info('the object changed since its verdict; analyzing in full');
      return undefined;
    }
    const { source, tempDir, metadata } = download;
    const analysis = await scanSlots.run(() =>
      analyzeFile(delta, source, {
        ...(metadata.filepath ? { filepath: metadata.filepath } : {}),
        label: ref.key,
        timeoutSeconds: settings.scanTimeoutSeconds,
        archives: settings.archives,
        budgetMs: scanBudgetMs(settings, remainingMs),
        tempDir,
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
    await download?.remove().catch(() => undefined);
  }
}
