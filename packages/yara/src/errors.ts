import { types } from 'node:util';

import type { CompileMessage } from './types';
import type { NativeError } from './binding';

/** Base of every error this package throws. `code` is the libyara ERROR_* name or a local code. */
export class YaraError extends Error {
  readonly code: string;

  constructor(message: string, code: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/** Compilation failed; `errors` lists every error of every source, `warnings` every warning. */
export class RuleCompileError extends YaraError {
  readonly errors: CompileMessage[];
  readonly warnings: CompileMessage[];

  constructor(errors: CompileMessage[], warnings: CompileMessage[], options?: { cause?: unknown }) {
    const lines = errors.map((e) => `${e.file}:${e.line}: ${e.message}`);
    super(
      `YARA compilation failed with ${errors.length} error(s):\n${lines.join('\n')}`,
      'ERROR_COMPILE_FAILED',
      options,
    );
    this.errors = errors;
    this.warnings = warnings;
  }
}

/** A compiled-rules file is missing, unreadable, corrupt or from another libyara version. */
export class RulesLoadError extends YaraError {}

/** A scan took longer than its timeout. */
export class ScanTimeoutError extends YaraError {}

/** The file to scan is missing or unreadable. */
export class FileOpenError extends YaraError {
  readonly path: string;

  constructor(message: string, code: string, path: string, options?: { cause?: unknown }) {
    super(message, code, options);
    this.path = path;
  }
}

/**
 * The file shrank while it was scanned (a log truncated, a download restarted): some of its pages
 * were gone when read, so nothing the scan found stands. Scanning it again once it is stable works.
 */
export class FileTruncatedError extends FileOpenError {}

/** The path is not a regular file (directory, FIFO, socket, device). */
export class FileTypeError extends YaraError {
  readonly path: string;

  constructor(message: string, code: string, path: string, options?: { cause?: unknown }) {
    super(message, code, options);
    this.path = path;
  }
}

/** Any other libyara failure during a scan. */
export class ScanError extends YaraError {}

/** Which operation failed; decides the error class for codes shared between operations. */
export type Operation = 'compile' | 'load' | 'save' | 'scan';

// util.types.isNativeError also recognises errors from another realm (e.g. a jest sandbox).
function isError(value: unknown): value is Error {
  return value instanceof Error || types.isNativeError(value);
}

function isNativeError(value: unknown): value is NativeError {
  return isError(value) && typeof (value as Partial<NativeError>).code === 'string';
}

// libyara codes that mean the scanned file itself could not be read.
const FILE_ACCESS_CODES = new Set([
  'ERROR_COULD_NOT_OPEN_FILE',
  'ERROR_COULD_NOT_MAP_FILE',
  'ERROR_COULD_NOT_READ_FILE',
]);

/** Turns an error rejected by the native binding into this package's typed error (the one mapping). */
export function fromNativeError(error: unknown, operation: Operation, path?: string): Error {
  if (!isNativeError(error)) return isError(error) ? error : new Error(String(error));
  const { code, message } = error;
  const where = error.path ?? path ?? '';
  const isSystemError = error.errno !== undefined;
  if (operation === 'load') {
    return new RulesLoadError(`cannot load compiled YARA rules: ${message}`, code, {
      cause: error,
    });
  }
  if (code === 'ERROR_SCAN_TIMEOUT') return new ScanTimeoutError(message, code, { cause: error });
  if (code === 'NOT_REGULAR_FILE') return new FileTypeError(message, code, where, { cause: error });
  if (code === 'FILE_TRUNCATED')
    return new FileTruncatedError(message, code, where, { cause: error });
  if (operation === 'scan' && (isSystemError || FILE_ACCESS_CODES.has(code))) {
    return new FileOpenError(message, code, where, { cause: error });
  }
  if (operation === 'scan') return new ScanError(message, code, { cause: error });
  return new YaraError(message, code, { cause: error });
}
