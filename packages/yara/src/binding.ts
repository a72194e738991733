// The raw native binding (internal: use the typed API in index.ts).
import { existsSync } from 'node:fs';
import { join } from 'node:path';

import type {
  CompileMessage,
  ContainerOptions,
  ContainerScan,
  ExternalValue,
  RuleMatch,
} from './types';

export interface NativeScanOptions {
  externals?: Record<string, ExternalValue>;
  timeoutSeconds?: number;
  fastMode?: boolean;
  maxOffsetsPerString?: number;
  sha256?: boolean;
  md5?: 'always' | 'if-matched';
  contentSignature?: boolean;
  containers?: ContainerOptions;
}

export interface NativeScanResult {
  matches: RuleMatch[];
  size: number;
  sha256?: string;
  md5?: string;
  contentSignature?: Buffer;
  containers?: ContainerScan;
  /** Monotonic milliseconds (the clock behind process.hrtime) when the worker began and ended. */
  startedAt: number;
  endedAt: number;
}

export interface NativeRules {
  readonly ruleCount: number;
  save(path: string): Promise<void>;
  scanBuffer(data: Uint8Array, options?: NativeScanOptions): Promise<NativeScanResult>;
  scanFile(path: string, options?: NativeScanOptions): Promise<NativeScanResult>;
}

export interface NativeCompileResult {
  rules?: NativeRules;
  errors: CompileMessage[];
  warnings: CompileMessage[];
}

/** What the native side rejects with: an Error carrying these fields. */
export interface NativeError extends Error {
  code: string;
  yaraCode?: number;
  errno?: number;
  syscall?: string;
  path?: string;
}

export interface NativeBinding {
  version: string;
  compile(
    sources: { path: string; namespace: string }[],
    externals: Record<string, ExternalValue>,
  ): Promise<NativeCompileResult>;
  load(path: string): Promise<NativeRules>;
}

// libyara's "magic" module reads libmagic's database at scan time and fails every scan without it.
// Where the system has none (Lambda), the bundle ships magic.mgc beside the code; point libmagic at it.
const bundledMagic = join(__dirname, 'magic.mgc');
if (process.env.MAGIC === undefined && existsSync(bundledMagic)) process.env.MAGIC = bundledMagic;

// One literal path, so the Lambda bundler can find the addon and copy it beside the bundle.
// eslint-disable-next-line @typescript-eslint/no-require-imports
export const native = require('../build/Release/yara.node') as NativeBinding;
