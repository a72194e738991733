import { constants as fsConstants, promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Command } from 'commander';
import {
  analyzeFile,
  DEFAULT_ARCHIVE_SETTINGS,
  errorText,
  forEachConcurrent,
  type ArchiveSettings,
} from '@binaryalert/core';
import {
  FileOpenError,
  FileTruncatedError,
  FileTypeError,
  loadRules,
  RuleCompileError,
  ScanTimeoutError,
  type CompiledRules,
} from '@binaryalert/yara';
import { abortOnInterrupt } from '../interrupt';
import { sizeThreadPool } from '../thread-pool';
import { UsageError, type CommandRegistrar } from '../usage';
import { compileRuleSet } from '../rules/compile';
import { findRuleFiles } from '../rules/discover';
import { DEFAULT_COMPILED_RULES, DEFAULT_RULES_DIR, displayPath } from '../rules/paths';
import { formatMb, ScanReport, type ScanEntry } from '../scan/report';
import { walkPaths, type FoundFile } from '../scan/walk';
import { formatCompileMessage } from './compile-rules';

export type { ScanEntry };

export interface ScanPathsOptions {
  rules: CompiledRules;
  maxSizeBytes: number;
  timeoutSeconds: number;
  concurrency: number;
  /** How containers inside the files are opened (absent: only the files' own bytes). */
  archives?: ArchiveSettings;
  /** Compute every file's MD5 (`--md5`); otherwise none: only the output would use it. */
  md5?: boolean;
  /**
   * Receives each file's outcome as soon as it is known (completion order); the scan waits for the
   * promise it returns, so a slow consumer slows the scan instead of piling results up.
   */
  onEntry: (entry: ScanEntry) => void | Promise<void>;
  /** Once aborted (Ctrl-C), no further file is started; the scans under way finish. */
  signal?: AbortSignal;
}

/**
 * Scans files and directories (recursively, following symbolic links without looping) with the
 * analyzer's own per-file analysis, streaming: the tree is walked while files are scanned and no
 * outcome is kept after onEntry got it, so memory stays flat in the number of files. A path that
 * cannot be scanned (missing, unreadable, a FIFO, socket or device, a symbolic link loop, too
 * large) becomes an 'error' entry naming why, an empty file or a directory reached twice a
 * 'skipped' one; the rest go on. Special files are never opened, so nothing blocks. Returns
 * whether `signal` stopped the walk before its end.
 */
export async function scanPaths(
  inputs: string[],
  options: ScanPathsOptions,
): Promise<{ stoppedEarly: boolean }> {
  const stop = { stoppedEarly: false };
  // The pool pulls the walk as scans finish, so the tree is never read far ahead.
  await forEachConcurrent(
    untilAborted(walkPaths(inputs), options.signal, stop),
    options.concurrency,
    async (item) => {
      const entry =
        'status' in item
          ? item
          : (precheck(item, options.maxSizeBytes) ?? (await scanOne(item, options)));
      await options.onEntry(entry);
    },
  );
  return stop;
}

/** The items until `signal` aborts; `stop.stoppedEarly` tells whether any were left out. */
async function* untilAborted<T>(
  items: AsyncIterable<T>,
  signal: AbortSignal | undefined,
  stop: { stoppedEarly: boolean },
): AsyncGenerator<T> {
  for await (const item of items) {
    if (signal?.aborted) {
      stop.stoppedEarly = true;
      return;
    }
    yield item;
  }
}

function precheck(candidate: FoundFile, maxSizeBytes: number): ScanEntry | undefined {
  const { stats } = candidate;
  const special = stats.isFIFO()
    ? 'a FIFO'
    : stats.isSocket()
      ? 'a socket'
      : stats.isCharacterDevice()
        ? 'a character device'
        : stats.isBlockDevice()
          ? 'a block device'
          : stats.isFile()
            ? undefined
            : 'a special file';
  if (special)
    return { path: candidate.path, status: 'error', message: `not a regular file (${special})` };
  if (stats.size === 0)
    return { path: candidate.path, status: 'skipped', message: 'empty file (0 bytes)' };
  if (stats.size > maxSizeBytes) {
    return {
      path: candidate.path,
      status: 'error',
      message: `larger than the maximum of ${formatMb(maxSizeBytes)} (${formatMb(stats.size)}; see --max-size-mb)`,
    };
  }
  return undefined;
}

async function scanOne(candidate: FoundFile, options: ScanPathsOptions): Promise<ScanEntry> {
  // A path that is not UTF-8 cannot travel as a string: the scan opens the file through its descriptor.
  let opened: fs.FileHandle | undefined;
  try {
    if (candidate.bytes) {
      opened = await fs.open(candidate.bytes, fsConstants.O_RDONLY | fsConstants.O_NONBLOCK);
    }
    const source = opened ? `/dev/fd/${opened.fd}` : candidate.path;
    const analysis = await analyzeFile(options.rules, source, {
      filepath: path.resolve(candidate.path),
      // Member paths start from the path as given: `samples/a.zip!payload.exe`.
      label: candidate.path,
      timeoutSeconds: options.timeoutSeconds,
      md5: options.md5 ? 'always' : 'never',
      ...(options.archives
        ? { archives: options.archives, budgetMs: options.timeoutSeconds * 1000 }
        : {}),
    });
    const lastModified = candidate.stats.mtime.toISOString();
    return { path: candidate.path, status: 'scanned', analysis, lastModified };
  } catch (error) {
    let message: string;
    if (error instanceof ScanTimeoutError)
      message = `scan timed out after ${options.timeoutSeconds} s`;
    else if (error instanceof FileTypeError) message = `not a regular file: ${error.message}`;
    // The addon's message names the path it opened (the line already starts with the path).
    else if (error instanceof FileTruncatedError)
      message = error.message.slice(
        error.message.startsWith(`${error.path}: `) ? error.path.length + 2 : 0,
      );
    else if (error instanceof FileOpenError) message = `cannot read: ${error.message}`;
    else if (opened === undefined && candidate.bytes) message = `cannot read: ${errorText(error)}`;
    else message = `scan failed: ${errorText(error)}`;
    return { path: candidate.path, status: 'error', message };
  } finally {
    await opened?.close();
  }
}

interface ScanFlags {
  rules?: string;
  rulesDir?: string;
  json?: boolean;
  jsonl?: boolean;
  matchesOnly?: boolean;
  maxSizeMb: string;
  timeout: string;
  concurrency: string;
  /** --password values, in order. */
  password: string[];
  /** false with --no-archives. */
  archives: boolean;
  md5?: boolean;
}

/** The archive settings for a scan: terraform.tfvars' defaults, plus any --password given. */
export function archiveSettingsForScan(flags: Pick<ScanFlags, 'password' | 'archives'>) {
  if (!flags.archives) return undefined;
  const passwords = [...new Set([...flags.password, ...DEFAULT_ARCHIVE_SETTINGS.passwords])];
  return { ...DEFAULT_ARCHIVE_SETTINGS, passwords };
}

function positiveNumber(value: string, flag: string, integer = false): number {
  const number = Number(value);
  if (!Number.isFinite(number) || number <= 0 || (integer && !Number.isInteger(number))) {
    throw new UsageError(
      `${flag} must be a positive ${integer ? 'integer' : 'number'}, got ${JSON.stringify(value)}`,
    );
  }
  return number;
}

/**
 * The rules for a scan: `--rules FILE`, else `--rules-dir DIR` compiled in memory, else the
 * default compiled file, else (when it was never built) rules/ compiled in memory with a note.
 */
async function rulesForScan(flags: ScanFlags): Promise<CompiledRules> {
  const note = (line: string) => process.stderr.write(`${line}\n`);
  if (flags.rules !== undefined && flags.rulesDir !== undefined) {
    throw new UsageError('give either --rules or --rules-dir, not both');
  }
  if (flags.rulesDir !== undefined) return compileForScan(path.resolve(flags.rulesDir));
  const file = path.resolve(flags.rules ?? DEFAULT_COMPILED_RULES);
  const stats = await fs.stat(file).catch(() => undefined);
  if (!stats) {
    if (flags.rules !== undefined) throw new UsageError(`--rules ${flags.rules}: no such file`);
    note(
      `note: ${displayPath(file)} not found, compiling ${displayPath(DEFAULT_RULES_DIR)}/ for this scan ` +
        '(run manage.ts compile-rules to save the step)',
    );
    return compileForScan(DEFAULT_RULES_DIR);
  }
  if (flags.rules === undefined) {
    const sources = await findRuleFiles(DEFAULT_RULES_DIR).catch(() => []);
    const newer = await Promise.all(
      sources.map(async (source) =>
        (await fs.stat(source.path)).mtimeMs > stats.mtimeMs ? source : undefined,
      ),
    );
    const changed = newer.filter((source) => source !== undefined);
    if (changed.length > 0) {
      note(
        `warning: ${changed.length} rule files changed after ${displayPath(file)} was compiled ` +
          `(e.g. ${displayPath(changed[0]?.path ?? '')}); run manage.ts compile-rules`,
      );
    }
  }
  try {
    return await loadRules(file);
  } catch (error) {
    throw new Error(`cannot load compiled rules from ${displayPath(file)}: ${errorText(error)}`, {
      cause: error,
    });
  }
}

async function compileForScan(rulesDir: string): Promise<CompiledRules> {
  const stats = await fs.stat(rulesDir).catch(() => undefined);
  if (!stats?.isDirectory()) throw new UsageError(`rules directory ${rulesDir} does not exist`);
  try {
    return (await compileRuleSet({ rulesDir })).rules;
  } catch (error) {
    if (!(error instanceof RuleCompileError)) throw error;
    error.errors.forEach((e) => process.stderr.write(`${formatCompileMessage(e)}\n`));
    throw new Error(
      `the rules in ${displayPath(rulesDir)} do not compile; fix them or run ` +
        'manage.ts compile-rules --skip-broken and scan with its output',
      { cause: error },
    );
  }
}

export const registerScan: CommandRegistrar = (program: Command) => {
  program
    .command('scan')
    .description('scan files and directories with the YARA rules')
    .argument('<paths...>', 'files and directories (scanned recursively)')
    .option(
      '--rules <file>',
      `compiled rules (default ${displayPath(DEFAULT_COMPILED_RULES)}; compiled from rules/ when missing)`,
    )
    .option('--rules-dir <dir>', 'compile the rules in this directory for this scan instead')
    .option('--json', 'print a JSON array of per-file summaries (written as files finish)')
    .option('--jsonl', 'print one JSON per-file summary per line (JSON Lines)')
    .option('--matches-only', 'print only files a rule matched (errors still go to stderr)')
    .option('--max-size-mb <mb>', 'skip files larger than this, with an error', '1024')
    .option(
      '--timeout <seconds>',
      'per-file scan timeout, also the time budget for scanning inside its containers',
      '60',
    )
    .option(
      '--password <password>',
      'also try this password on encrypted zip members (repeatable; infected, malware, virus are always tried)',
      (value: string, previous: string[]) => [...previous, value],
      [] as string[],
    )
    .option('--no-archives', "scan only the files' own bytes, not the members of containers")
    .option('--md5', "also compute each file's MD5 (in the JSON output; SHA-256 is always there)")
    .option(
      '--concurrency <n>',
      'files scanned at once, each on a thread of its own (default: one per core)',
      String(os.availableParallelism()),
    )
    .action(async (inputs: string[], flags: ScanFlags) => {
      const maxSizeMb = positiveNumber(flags.maxSizeMb, '--max-size-mb');
      const timeoutSeconds = positiveNumber(flags.timeout, '--timeout');
      const concurrency = positiveNumber(flags.concurrency, '--concurrency', true);
      if (flags.json && flags.jsonl)
        throw new UsageError('give either --json or --jsonl, not both');
      // As many pool threads as scans at once: libyara's per-scan match buffers then land on the
      // few threads' warm heaps. With spare threads, consecutive scans rotate over them and fault
      // fresh pages in every time (with --concurrency 1: 488,000 page faults for 852 files on 4
      // threads, 220,000 on one, as many as the yara CLI; 4% of the CPU time).
      sizeThreadPool(concurrency);
      const rules = await rulesForScan(flags);
      const archives = archiveSettingsForScan(flags);
      const report = new ScanReport(flags.json ? 'json' : flags.jsonl ? 'jsonl' : 'table', {
        matchesOnly: flags.matchesOnly === true,
        stdout: process.stdout,
        stderr: process.stderr,
      });
      await report.start();
      // Ctrl-C stops starting files but still closes the output: `--json > file` stays JSON.
      const { stoppedEarly } = await abortOnInterrupt((signal) =>
        scanPaths(inputs, {
          rules,
          maxSizeBytes: maxSizeMb * 1024 * 1024,
          timeoutSeconds,
          concurrency,
          ...(archives ? { archives } : {}),
          md5: flags.md5 === true,
          onEntry: (entry) => report.add(entry),
          signal,
        }),
      );
      await report.finish(stoppedEarly);
      const { matched, errors } = report.totals;
      if (stoppedEarly) process.exitCode = 130;
      else if (matched > 0 || errors > 0) process.exitCode = 1;
    });
};
