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
  /** Also compute the SHA-256 of the scanned bytes, in the scan's worker thread (OpenSSL, on the CPU's SHA extensions where present). */
  sha256?: boolean;
  /**
   * Also compute the MD5 of the scanned bytes in the scan's worker thread: 'always', or
   * 'if-matched' (only when a rule matched, after the scan, over the same mapping). Default: never.
   */
  md5?: 'always' | 'if-matched';
  /**
   * Also return the content signature of everything scanned (the object's bytes and, with
   * `containers`, every member's): its byte trigrams hashed into a bitmap (format in
   * content-signature.h; read by core's content-signature.ts). Costs one more pass over the bytes.
   */
  contentSignature?: boolean;
  /** Also scan the members of every container inside, recursively (see ContainerOptions). */
  containers?: ContainerOptions;
}

/**
 * How members of containers (zip, 7z, rar, cab, tar, iso, cpio, ar; gzip, bzip2, xz, lzma, zstd,
 * lz4, compress streams; PDF FlateDecode streams), recognized by magic bytes, are extracted and
 * scanned in the scan's worker thread. Hitting a bound never fails the scan: the rest is listed in
 * `ContainerScan.unscanned`.
 */
export interface ContainerOptions {
  /** Display path of the scanned object: the root of every member path (`label!dir/member`). */
  label: string;
  /** Container levels opened below the object (default 5). */
  maxDepth?: number;
  /** Members per object, all levels together (default 10,000). */
  maxMembers?: number;
  /** Bytes extracted per object, all levels together (default 512 MiB). */
  maxExpandedBytes?: number;
  /** Expanded/compressed ceiling per container past 8 MiB expanded (default 250; 0 = off). */
  maxRatio?: number;
  /** Milliseconds from the start of the scan after which extraction stops (0 or absent = none). */
  budgetMs?: number;
  /**
   * When the whole scan must end, in the clock of `process.hrtime` (milliseconds; see
   * `monotonicMs` in core): bounds the object's own scan as well as the members (0 = none).
   */
  deadlineMs?: number;
  /**
   * Hand encrypted 7z archives (libarchive cannot decrypt 7z AES) to the caller in
   * `ContainerScan.encryptedSevenZips` instead of listing their entries as `encrypted`; only with
   * passwords. The caller must remove the `owned` files.
   */
  handOffEncryptedSevenZip?: boolean;
  /** Tried on encrypted zip entries (libarchive cannot decrypt 7z). */
  passwords?: string[];
  /** Where members larger than memoryMemberBytes are spilled (anonymous files, default /tmp). */
  tempDir?: string;
  /** Members up to this size are scanned from memory (default 16 MiB). */
  memoryMemberBytes?: number;
}

/** Why content inside an object was not scanned. */
export type UnscannedReason =
  | 'depth-limit'
  | 'size-limit'
  | 'ratio-limit'
  | 'member-limit'
  | 'time-limit'
  | 'encrypted'
  | 'corrupt'
  | 'unsupported'
  | 'scan-error';

export interface UnscannedContent {
  /** Display path of the member or container concerned. */
  path: string;
  reason: UnscannedReason;
  detail: string;
}

/** Entries other than regular files are labels only: never scanned, never created anywhere. */
export type MemberType =
  'file' | 'symlink' | 'hardlink' | 'character-device' | 'block-device' | 'fifo' | 'socket';

export interface MemberScan {
  /** `outer!dir/member`, nested `a.7z!b.tar.gz!c.zip!payload.exe`; control bytes escaped as \xNN. */
  path: string;
  type: MemberType;
  /** 1 for members of the object itself. */
  depth: number;
  /** Present for files. */
  size?: number;
  /** Present for files a rule matched (the only ones whose SHA-256 is recorded). */
  sha256?: string;
  matches?: RuleMatch[];
  /** Present for links. */
  linkTarget?: string;
}

export interface ContainerScan {
  members: MemberScan[];
  unscanned: UnscannedContent[];
  expandedBytes: number;
  /** Encrypted 7z archives handed over (`handOffEncryptedSevenZip`); otherwise empty. */
  encryptedSevenZips: EncryptedSevenZip[];
}

/** An encrypted 7z inside (or being) the scanned object, for the caller to open with 7-Zip. */
export interface EncryptedSevenZip {
  /** Its display path (the object's label when the object itself is the 7z). */
  path: string;
  /** Its bytes: the scanned file itself, or a copy of a generated name in tempDir (`owned`). */
  file: string;
  /** The caller removes `file` when done. */
  owned: boolean;
  /** Nesting depth of the 7z (0: the object); its members are one deeper. */
  depth: number;
  size: number;
  /** What would have been reported unscanned: the caller reports these if no password fits. */
  encrypted: UnscannedContent[];
  /** Its members libarchive could read, already scanned (names inside the 7z). */
  scannedNames: string[];
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
  /** Lower-case hex, present when `sha256` was requested. */
  sha256?: string;
  /** Lower-case hex, present when `md5` was requested (and, for 'if-matched', a rule matched). */
  md5?: string;
  /** Present when `containers` was requested. */
  containers?: ContainerScan;
  /** Present when `contentSignature` was requested (absent when the bitmap would prove too little). */
  contentSignature?: Buffer;
}
