// The encrypted-7z path of the analysis: libarchive cannot decrypt 7z, so 7-Zip opens them.
import { rmSync } from 'node:fs';
// Types only: a value import would load the addon into every bundle that uses core.
import type { CompiledRules, EncryptedSevenZip, UnscannedContent } from '@binaryalert/yara';
import type { AnalyzeOptions, ArchiveSettings, FileAnalysis, analyzeFile } from './analysis';
import { monotonicMs } from './clock';
import { errorText, unreachable } from './errors';
import { openEncryptedSevenZip, removeSevenZipRun, type SevenZipExtraction } from './sevenzip';

/** What a stopped 7-Zip worker takes to remove its partial output and answer (measured 30-60 ms). */
const SEVEN_ZIP_WRAP_UP_MS = 250;

export interface SevenZipAnalysisOptions extends AnalyzeOptions {
  archives: ArchiveSettings;
  deadlineMs: number;
  /** Called after a member matched (the object's MD5 is taken then). */
  onMemberMatch: () => Promise<void>;
  /** analysis.ts's analyzeFile, passed in so the two modules do not import each other. */
  analyzeMember: typeof analyzeFile;
}

/**
 * libarchive cannot decrypt 7z: an encrypted 7z the walk handed over (the object itself, or a
 * member at any depth) is opened with 7-Zip in a worker thread and the passwords (sevenzip.ts);
 * each member it yields is analyzed like any file (containers inside it too, within what the
 * bounds have left, one level deeper), named `<7z path>!<member>`, and the 7z's `encrypted`
 * entries give way to them. With no password that fits, the entries stay `encrypted`; a 7-Zip
 * that dies makes them `corrupt`, one stopped past the deadline `time-limit`.
 */
export async function withEncryptedSevenZip(
  rules: CompiledRules,
  archive: EncryptedSevenZip,
  analysis: FileAnalysis,
  options: SevenZipAnalysisOptions,
): Promise<FileAnalysis> {
  const { archives, deadlineMs } = options;
  const keepEncrypted = (
    reason: UnscannedContent['reason'] = 'encrypted',
    detail?: string,
  ): FileAnalysis => ({
    ...analysis,
    unscanned: [
      ...analysis.unscanned,
      ...archive.encrypted.map((entry) => ({
        ...entry,
        reason,
        detail: detail === undefined ? entry.detail : `${entry.detail} (${detail})`,
      })),
    ],
  });
  if (monotonicMs() > deadlineMs) {
    return keepEncrypted('time-limit', 'time budget spent before a password was tried');
  }
  let run: Awaited<ReturnType<typeof openEncryptedSevenZip>> | undefined;
  try {
    run = await openEncryptedSevenZip(
      archive.file,
      archive.size,
      {
        passwords: archives.passwords,
        maxMembers: Math.max(0, archives.maxMembers - analysis.members.length),
        maxExpandedBytes: Math.max(0, archives.maxExpandedBytes - analysis.expandedBytes),
        maxRatio: archives.maxRatio,
        // Stopped a little early: its partial output is removed and its answer travels in time.
        deadline: deadlineMs - SEVEN_ZIP_WRAP_UP_MS,
        ...(options.tempDir === undefined ? {} : { tempDir: options.tempDir }),
        skip: archive.scannedNames,
      },
      options.sevenZipWorker,
    );
    // The 7z's bytes are no longer needed: free the disk before its members are scanned.
    if (archive.owned) rmSync(archive.file, { force: true });
    const { outcome } = run;
    switch (outcome.kind) {
      case 'failed':
        return keepEncrypted('encrypted', outcome.detail);
      case 'died':
        return keepEncrypted('corrupt', outcome.detail);
      case 'stalled':
        return keepEncrypted('time-limit', outcome.detail);
      case 'finished':
        break;
      default:
        unreachable(outcome);
    }
    const extraction = outcome.extraction;
    if (!extraction?.password) {
      return extraction?.outOfTime
        ? keepEncrypted('time-limit', 'time budget spent before a password was tried')
        : keepEncrypted();
    }
    return await scanExtractedMembers(rules, archive, extraction, analysis, options);
  } finally {
    if (run) removeSevenZipRun(run);
  }
}

/** Analyzes each member 7-Zip extracted, one level below the 7z, within what is left of the bounds. */
async function scanExtractedMembers(
  rules: CompiledRules,
  archive: EncryptedSevenZip,
  extraction: SevenZipExtraction,
  analysis: FileAnalysis,
  options: SevenZipAnalysisOptions,
): Promise<FileAnalysis> {
  const { archives, deadlineMs } = options;
  const depth = archive.depth + 1;
  const opened = {
    ...analysis,
    matches: [...analysis.matches],
    members: [...analysis.members],
    unscanned: [...analysis.unscanned],
  };
  for (const member of extraction.members) {
    const memberPath = `${archive.path}!${member.name}`;
    if (monotonicMs() > deadlineMs) {
      opened.unscanned.push({
        path: memberPath,
        reason: 'time-limit',
        detail: 'time budget spent before this member was scanned',
      });
      rmSync(member.file, { force: true });
      continue;
    }
    try {
      const inner = await options.analyzeMember(rules, member.file, {
        filepath: memberPath,
        label: memberPath,
        md5: 'never', // a member is recorded by its SHA-256 only
        // The member's own scan ends with the object's budget too.
        ...(options.timeoutSeconds === undefined ? {} : { timeoutSeconds: options.timeoutSeconds }),
        archives: {
          ...archives,
          maxDepth: archives.maxDepth - depth,
          maxMembers: Math.max(0, archives.maxMembers - opened.members.length - 1),
          maxExpandedBytes: Math.max(
            0,
            archives.maxExpandedBytes - opened.expandedBytes - member.size,
          ),
        },
        ...(Number.isFinite(deadlineMs) ? { deadlineMs } : {}),
        ...(options.tempDir === undefined ? {} : { tempDir: options.tempDir }),
        ...(options.sevenZipWorker === undefined ? {} : { sevenZipWorker: options.sevenZipWorker }),
      });
      opened.members.push(
        {
          path: memberPath,
          type: 'file',
          depth,
          size: inner.size,
          ...(inner.matches.length > 0 ? { sha256: inner.sha256 } : {}),
        },
        ...inner.members.map((nested) => ({ ...nested, depth: nested.depth + depth })),
      );
      opened.matches.push(
        ...inner.matches.map((match) =>
          match.member ? match : { ...match, member: { path: memberPath, sha256: inner.sha256 } },
        ),
      );
      opened.unscanned.push(...inner.unscanned);
      opened.expandedBytes += member.size + inner.expandedBytes;
      if (inner.matches.length > 0) await options.onMemberMatch();
    } catch (error) {
      opened.unscanned.push({
        path: memberPath,
        // ScanTimeoutError (its code: see the type-only import above).
        reason:
          (error as { code?: unknown }).code === 'ERROR_SCAN_TIMEOUT' ? 'time-limit' : 'scan-error',
        detail: errorText(error),
      });
    } finally {
      rmSync(member.file, { force: true });
    }
  }
  opened.unscanned.push(
    ...extraction.unscanned.map(({ name, ...entry }) => ({
      ...entry,
      path: `${archive.path}!${name}`,
    })),
  );
  return opened;
}
