export type ExternalValue = string | number | boolean;

/** A rule file on disk and the namespace its rules are compiled into. */
export interface RuleSource {
  path: string;
  namespace: string;
}

export interface CompileMessage {
  file: string;
  line: number;
  message: string;
}

export interface CompileOptions {
  /** External variables declared at compile time with their default values (default DEFAULT_EXTERNALS). */
  externals?: Record<string, ExternalValue>;
}

export interface ScanOptions {
  /** Per-scan values of externals declared at compile time. */
  externals?: Record<string, ExternalValue>;
  /** Default 60 (whole seconds, fractions round up; 0 = no limit). Exceeding it rejects with ScanTimeoutError. */
  timeoutSeconds?: number;
  /** libyara's fast mode: stop looking for more occurrences of a string once the rule can be decided. */
  fastMode?: boolean;
  /** Default 10: offsets reported per matched string. */
  maxOffsetsPerString?: number;
  /** Also compute SHA-256 and MD5 of the scanned bytes, in the scan's worker thread. */
  hashes?: boolean;
}

export interface MatchedString {
  identifier: string;
  offsets: number[];
}

export interface RuleMatch {
  rule: string;
  namespace: string;
  tags: string[];
  meta: Record<string, ExternalValue>;
  strings: MatchedString[];
}

export interface ScanResult {
  matches: RuleMatch[];
  size: number;
  /** Lower-case hex, present when `hashes` was requested. */
  sha256?: string;
  md5?: string;
}
