import { createHash } from 'node:crypto';
import { createReadStream, rmSync } from 'node:fs';
import path from 'node:path';
// Types only: a value import would load the addon into every bundle that uses core.
import type { CompiledRules, MemberScan, RuleMatch, UnscannedContent } from '@binaryalert/yara';
import { monotonicMs } from './clock';
import { withEncryptedSevenZip } from './sevenzip-analysis';
import type { WorkerScript } from './sevenzip';

/**
 * How the members of containers are opened: terraform.tfvars' archive_* settings (defaults there
 * equal these; terraform.test.ts checks it). `manage.ts scan` uses these unless flags say otherwise.
 */
export interface ArchiveSettings {
  /** Tried in turn on encrypted zip and 7z members. */
  passwords: string[];
  maxDepth: number;
  maxMembers: number;
  maxExpandedBytes: number;
  /** Expanded/compressed ceiling per container (0 = off). */
  maxRatio: number;
}

export const DEFAULT_ARCHIVE_SETTINGS: Readonly<ArchiveSettings> = Object.freeze({
  passwords: ['infected', 'malware', 'virus'],
  maxDepth: 5,
  maxMembers: 10_000,
  maxExpandedBytes: 512 * 1024 * 1024,
  maxRatio: 250,
});

/**
 * YARA externals for a file's original path, as the original BinaryAlert set them:
 * `filename` (base name), `filepath` (as given), `extension` ('.exe' or ''), `filetype` (the
 * upper-case text after the last dot of the name, '' without a dot). An empty path gives ''s.
 */
export function externalsForPath(filepath: string): Record<string, string> {
  const filename = path.posix.basename(filepath);
  const dot = filename.lastIndexOf('.');
  return {
    filename,
    filepath,
    extension: path.posix.extname(filename),
    filetype: dot === -1 ? '' : filename.slice(dot + 1).toUpperCase(),
  };
}

/** Whether everything inside the object was scanned; `partial` names the rest in `unscanned`. */
export type Coverage = 'complete' | 'partial';

/** A rule match and where it was found: absent `member` means the object's own bytes. */
export interface LocatedMatch extends RuleMatch {
  member?: { path: string; sha256: string };
}

/** A member of a container inside the object (its matches are in FileAnalysis.matches). */
export type MemberInfo = Omit<MemberScan, 'matches'>;

export interface FileAnalysis {
  sha256: string;
  /** Present when computed: with `md5: 'always'`, or 'if-matched' and a rule matched; never with 'never'. */
  md5?: string;
  size: number;
  /** The object's display path: the root of member paths (`label!dir/member`). */
  label: string;
  matches: LocatedMatch[];
  members: MemberInfo[];
  unscanned: UnscannedContent[];
  coverage: Coverage;
  /** Bytes extracted from containers. */
  expandedBytes: number;
  /** Wall time of the scan (hashing and extraction included), in milliseconds. */
  scanMs: number;
  /**
   * With `contentSignature`: the content signature of everything scanned (content-signature.ts),
   * only when the addon alone scanned it all (absent when anything inside was not scanned, or an
   * encrypted 7z was opened by 7-Zip, or the bitmap would prove too little).
   */
  contentSignature?: Buffer;
}

/** When the analysis computes a file's MD5 (SHA-256 is always computed: it keys the match table). */
export type Md5Policy = 'always' | 'if-matched' | 'never';

export interface AnalyzeOptions {
  /** The file's original path, from which the externals come (default: none, empty strings). */
  filepath?: string;
  /** The object's display path in member paths (default: filepath, else the file's base name). */
  label?: string;
  timeoutSeconds?: number;
  /** Containers inside are opened with these settings; absent: the object's own bytes only. */
  archives?: ArchiveSettings;
  /**
   * Milliseconds, from this call, that the whole analysis may take (with `archives`): the
   * object's own scan is cut to it (ScanTimeoutError), and what is left inside when it runs out
   * is `time-limit` (absent: no limit but the scan timeout).
   */
  budgetMs?: number;
  /** The same as an absolute `monotonicMs()` time (members of an encrypted 7z share the object's). */
  deadlineMs?: number;
  /** Where members too large for memory are spilled (anonymous files; default the OS temp dir). */
  tempDir?: string;
  /**
   * 'if-matched' (default): MD5 only when a rule matched the object or a member inside it, where
   * the analyzer stores and alerts it; 'always': every file; 'never': not at all (`scan` without
   * `--md5`, whose output is the only consumer).
   */
  md5?: Md5Policy;
  /** The 7-Zip worker's entry (default sevenZipWorkerScript(); tests give a failing one). */
  sevenZipWorker?: WorkerScript;
  /** Also compute the content signature (a delta re-scan's prefilter reads it; the analyzer's full analyses). */
  contentSignature?: boolean;
}

/**
 * Hashes and scans one local file with the given rules and, with `archives`, every member of every
 * container inside it, recursively, in one pass of the addon's worker thread (never on the event
 * loop); encrypted 7z archives inside (or the file itself), which libarchive cannot decrypt, are
 * opened with 7-Zip in a worker thread and the passwords. SHA-256 always (it keys the match
 * table); MD5 only for a file a rule matched (inside or out), where it is stored and alerted,
 * unless `md5` says 'always' (negative-match alerts carry it too) or 'never'. `filepath` is the file's original
 * path (e.g. the S3 `filepath` metadata, or the path given to `manage.ts scan`) from which the
 * externals come; without it they are empty strings. Errors are the addon's typed errors for the
 * object itself (FileOpenError, FileTypeError, ScanTimeoutError, ScanError); trouble inside
 * containers becomes `unscanned` entries instead.
 */
export async function analyzeFile(
  rules: CompiledRules,
  /** A local file, or bytes in memory (an encrypted 7z among them is copied to `tempDir` for 7-Zip). */
  source: string | Buffer,
  options: AnalyzeOptions = {},
): Promise<FileAnalysis> {
  const started = performance.now();
  const inMemory = typeof source !== 'string';
  const deadlineMs =
    options.deadlineMs ??
    (options.budgetMs === undefined ? undefined : monotonicMs() + options.budgetMs);
  const label =
    options.label ?? (options.filepath || (inMemory ? 'object' : path.basename(source)));
  const archives = options.archives;
  const md5 = options.md5 ?? 'if-matched';
  const scanOptions = {
    externals: externalsForPath(options.filepath ?? ''),
    sha256: true,
    ...(md5 === 'never' ? {} : { md5 }),
    ...(options.contentSignature ? { contentSignature: true } : {}),
    ...(options.timeoutSeconds === undefined ? {} : { timeoutSeconds: options.timeoutSeconds }),
    ...(archives
      ? {
          containers: {
            label,
            passwords: archives.passwords,
            maxDepth: archives.maxDepth,
            maxMembers: archives.maxMembers,
            maxExpandedBytes: archives.maxExpandedBytes,
            maxRatio: archives.maxRatio,
            handOffEncryptedSevenZip: archives.passwords.length > 0,
            // Stopped a little early: unmapping the object and answering fit in the budget.
            ...(deadlineMs === undefined ? {} : { deadlineMs: deadlineMs - ADDON_WRAP_UP_MS }),
            ...(options.tempDir === undefined ? {} : { tempDir: options.tempDir }),
          },
        }
      : {}),
  };
  const result = inMemory
    ? await rules.scanBuffer(source, scanOptions)
    : await rules.scanFile(source, scanOptions);
  if (result.sha256 === undefined) {
    throw new TypeError(`the yara addon returned no SHA-256 for ${inMemory ? label : source}`);
  }
  const members = result.containers?.members ?? [];
  const unscanned = result.containers?.unscanned ?? [];
  const memberMatches = members.flatMap(({ matches, path, sha256 }) =>
    (matches ?? []).map((match) => ({ ...match, member: { path, sha256: sha256 ?? '' } })),
  );
  let analysis: FileAnalysis = {
    sha256: result.sha256,
    ...(result.md5 === undefined ? {} : { md5: result.md5 }),
    size: result.size,
    label,
    matches: [...result.matches, ...memberMatches],
    members: members.map(({ matches: _matches, ...member }) => member),
    unscanned,
    coverage: unscanned.length > 0 ? 'partial' : 'complete',
    expandedBytes: result.containers?.expandedBytes ?? 0,
    scanMs: performance.now() - started,
  };
  const sealed = result.containers?.encryptedSevenZips ?? [];
  // Content the addon did not scan (cut short, or left to 7-Zip below) is not in the signature.
  if (result.contentSignature && unscanned.length === 0 && sealed.length === 0) {
    analysis.contentSignature = result.contentSignature;
  }
  if (!archives || sealed.length === 0) return analysis;
  let objectMd5 = analysis.md5;
  // A match inside needs the object's MD5 (it is stored and alerted with the object): taken at
  // the first one, so the pass is spent inside the time budget (as the addon does).
  const onMemberMatch = async (): Promise<void> => {
    if (objectMd5 !== undefined || md5 === 'never') return;
    objectMd5 =
      typeof source === 'string'
        ? await fileDigest(source, 'md5')
        : createHash('md5').update(source).digest('hex');
  };
  try {
    for (const archive of sealed) {
      analysis = await withEncryptedSevenZip(rules, archive, analysis, {
        ...options,
        archives,
        deadlineMs: deadlineMs ?? Number.POSITIVE_INFINITY,
        onMemberMatch,
        analyzeMember: analyzeFile,
      });
    }
  } finally {
    for (const archive of sealed) if (archive.owned) rmSync(archive.file, { force: true });
  }
  return {
    ...analysis,
    ...(objectMd5 === undefined ? {} : { md5: objectMd5 }),
    coverage: analysis.unscanned.length > 0 ? 'partial' : 'complete',
    scanMs: performance.now() - started,
  };
}

/** What the addon takes after its deadline to drop a large object and its spill and answer (0.1-0.3 s for 1 GiB under load). */
const ADDON_WRAP_UP_MS = 500;
async function fileDigest(filePath: string, algorithm: string): Promise<string> {
  const hash = createHash(algorithm);
  for await (const chunk of createReadStream(filePath)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** A member's path inside the object (`dir/a.zip!x.exe`): its display path without the label. */
export function pathInsideObject(
  analysis: Pick<FileAnalysis, 'label'>,
  memberPath: string,
): string {
  const prefix = `${analysis.label}!`;
  return memberPath.startsWith(prefix) ? memberPath.slice(prefix.length) : memberPath;
}

/** `namespace:rule`, the identifier of a rule in the match table. */
export function ruleId(match: Pick<RuleMatch, 'namespace' | 'rule'>): string {
  return `${match.namespace}:${match.rule}`;
}

/** An S3 object as the analyzer read it. */
export interface AnalyzedObject {
  bucket: string;
  key: string;
  lastModified: string;
  /** The object's user metadata (x-amz-meta-*). */
  metadata: Record<string, string>;
}

/** The internal model of one object's analysis: what was found, in which object. */
export interface ObjectAnalysis {
  object: AnalyzedObject;
  analysis: FileAnalysis;
}
