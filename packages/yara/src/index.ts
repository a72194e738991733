import { randomBytes } from 'node:crypto';
import { rename, unlink } from 'node:fs/promises';

import { native, type NativeRules, type NativeScanResult } from './binding';
import { fromNativeError, YaraError, RuleCompileError } from './errors';
import type {
  CompileMessage,
  CompileOptions,
  ExternalValue,
  RuleSource,
  ScanOptions,
  ScanResult,
} from './types';

export * from './errors';
export type * from './types';

/** External variables declared by default: what the analyzer derives from each file's path. */
export const DEFAULT_EXTERNALS: Record<string, ExternalValue> = Object.freeze({
  filename: '',
  filepath: '',
  extension: '',
  filetype: '',
  owner: '',
});

/** The libyara version linked into the addon, e.g. "4.2.3". Compiled rules files are tied to it. */
export const libyaraVersion: string = native.version;

/** A compiled rule set. Scans run on the libuv thread pool; any number may run at once. */
export class CompiledRules {
  readonly #native: NativeRules;

  /** @internal Use compileRules or loadRules. */
  constructor(nativeRules: NativeRules) {
    this.#native = nativeRules;
  }

  get ruleCount(): number {
    return this.#native.ruleCount;
  }

  /** Writes the rules for loadRules; the file appears atomically (written aside, then renamed). */
  async save(path: string): Promise<void> {
    const temporary = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
    try {
      await this.#native.save(temporary);
      await rename(temporary, path);
    } catch (error) {
      await unlink(temporary).catch(() => undefined);
      const code = (error as { code?: unknown }).code;
      throw new YaraError(
        `cannot save compiled rules to ${path}: ${(error as Error).message}`,
        typeof code === 'string' ? code : 'ERROR_WRITING_FILE',
        { cause: error },
      );
    }
  }

  /** Scans a regular file; FIFOs, sockets, devices and directories are rejected (FileTypeError) without blocking. */
  async scanFile(path: string, options?: ScanOptions): Promise<ScanResult> {
    try {
      return toScanResult(await this.#native.scanFile(path, options));
    } catch (error) {
      throw fromNativeError(error, 'scan', path);
    }
  }

  /**
   * Scans the bytes of a Buffer. One of 64 KiB or more is read in place while the scan runs: leave
   * its bytes unchanged (and its ArrayBuffer untransferred) until the promise settles.
   */
  async scanBuffer(data: Buffer, options?: ScanOptions): Promise<ScanResult> {
    try {
      return toScanResult(await this.#native.scanBuffer(data, options));
    } catch (error) {
      throw fromNativeError(error, 'scan');
    }
  }
}

function toScanResult(raw: NativeScanResult): ScanResult {
  const result: ScanResult = { matches: raw.matches, size: raw.size };
  if (raw.sha256 !== undefined) result.sha256 = raw.sha256;
  if (raw.md5 !== undefined) result.md5 = raw.md5;
  if (raw.containers !== undefined) result.containers = raw.containers;
  if (raw.contentSignature !== undefined) result.contentSignature = raw.contentSignature;
  return result;
}

/** Compiles all sources into one rule set (async, off the event loop). Throws RuleCompileError listing every error. */
export async function compileRules(
  sources: RuleSource[],
  options: CompileOptions = {},
): Promise<{ rules: CompiledRules; warnings: CompileMessage[] }> {
  let result;
  try {
    result = await native.compile(
      sources.map(({ path, namespace }) => ({ path, namespace })),
      options.externals ?? DEFAULT_EXTERNALS,
    );
  } catch (error) {
    throw fromNativeError(error, 'compile');
  }
  if (result.errors.length > 0 || result.rules === undefined) {
    throw new RuleCompileError(result.errors, result.warnings);
  }
  return { rules: new CompiledRules(result.rules), warnings: result.warnings };
}

/** Loads a file written by CompiledRules.save. Throws RulesLoadError (missing, corrupt, wrong libyara version). */
export async function loadRules(path: string): Promise<CompiledRules> {
  try {
    return new CompiledRules(await native.load(path));
  } catch (error) {
    throw fromNativeError(error, 'load', path);
  }
}
