import path from 'node:path';
import type { CompiledRules, ExternalValue, RuleMatch } from '@binaryalert/yara';

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

export interface MatchedRuleSummary {
  RuleName: string;
  RuleFile: string;
  RuleTags: string[];
  Meta: Record<string, ExternalValue>;
  MatchedStrings: string[];
}

/** The per-file result the analyzer returns, alerts with, and `manage.ts scan --json` prints. */
export interface FileSummary {
  FileInfo: {
    /** Only where it is stored or sent: files a rule matched (and every file with negative-match alerts on). */
    MD5?: string;
    SHA256: string;
    S3LastModified: string;
    S3Location: string;
    S3Metadata: Record<string, string>;
  };
  /** Keys Rule1, Rule2, ... in match order. */
  MatchedRules: Record<string, MatchedRuleSummary>;
  NumMatchedRules: number;
}

export interface FileAnalysis {
  sha256: string;
  /** Present when computed: always with `md5: 'always'`, else only for a file a rule matched. */
  md5?: string;
  size: number;
  matches: RuleMatch[];
  /** Wall time of the scan (hashing included), in milliseconds. */
  scanMs: number;
}

/**
 * Hashes and scans one local file with the given rules, in one pass of the addon's worker thread
 * (never on the event loop). SHA-256 always (it keys the match table); MD5 only for a file a rule
 * matched, where it is stored and alerted, unless `md5: 'always'` (negative-match alerts carry it
 * too). `filepath` is the file's original path (e.g. the S3 `filepath` metadata, or the path given
 * to `manage.ts scan`) from which the externals come; without it they are empty strings. Errors are
 * the addon's typed errors (FileOpenError, FileTypeError, ScanTimeoutError, ScanError).
 */
export async function analyzeFile(
  rules: CompiledRules,
  filePath: string,
  options: { filepath?: string; timeoutSeconds?: number; md5?: 'always' | 'if-matched' } = {},
): Promise<FileAnalysis> {
  const started = performance.now();
  const result = await rules.scanFile(filePath, {
    externals: externalsForPath(options.filepath ?? ''),
    sha256: true,
    md5: options.md5 ?? 'if-matched',
    ...(options.timeoutSeconds === undefined ? {} : { timeoutSeconds: options.timeoutSeconds }),
  });
  const scanMs = performance.now() - started;
  if (result.sha256 === undefined) {
    throw new TypeError(`the yara addon returned no SHA-256 for ${filePath}`);
  }
  return {
    sha256: result.sha256,
    ...(result.md5 === undefined ? {} : { md5: result.md5 }),
    size: result.size,
    matches: result.matches,
    scanMs,
  };
}

/** `namespace:rule`, the identifier of a rule in the match table. */
export function ruleId(match: Pick<RuleMatch, 'namespace' | 'rule'>): string {
  return `${match.namespace}:${match.rule}`;
}

/** Shapes an analysis into the per-file summary (original BinaryAlert's layout). */
export function summarize(
  analysis: FileAnalysis,
  location: { S3Location: string; S3LastModified?: string; S3Metadata?: Record<string, string> },
): FileSummary {
  const MatchedRules: Record<string, MatchedRuleSummary> = {};
  analysis.matches.forEach((match, index) => {
    MatchedRules[`Rule${index + 1}`] = {
      RuleName: match.rule,
      RuleFile: match.namespace,
      RuleTags: [...match.tags],
      Meta: { ...match.meta },
      MatchedStrings: [...new Set(match.strings.map((s) => s.identifier))].sort(),
    };
  });
  return {
    FileInfo: {
      ...(analysis.md5 === undefined ? {} : { MD5: analysis.md5 }),
      SHA256: analysis.sha256,
      S3LastModified: location.S3LastModified ?? '',
      S3Location: location.S3Location,
      S3Metadata: { ...(location.S3Metadata ?? {}) },
    },
    MatchedRules,
    NumMatchedRules: analysis.matches.length,
  };
}
