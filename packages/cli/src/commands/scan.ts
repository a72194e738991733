import { promises as fs, type Stats } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Command } from 'commander';
import {
  analyzeFile,
  DEFAULT_ARCHIVE_SETTINGS,
  summarize,
  ruleId,
  type ArchiveSettings,
  type FileAnalysis,
  type FileSummary,
} from '@binaryalert/core';
import {
  FileOpenError,
  FileTypeError,
  loadRules,
  RuleCompileError,
  ScanTimeoutError,
  type CompiledRules,
} from '@binaryalert/yara';
import { UsageError, type CommandRegistrar } from '../usage';
import { compileRuleSet } from '../rules/compile';
import { findRuleFiles } from '../rules/discover';
import { DEFAULT_COMPILED_RULES, DEFAULT_RULES_DIR, displayPath } from '../rules/paths';
import { formatCompileMessage } from './compile-rules';

/** One input file's outcome, in the order the files were found. */
export type ScanEntry =
  | { path: string; status: 'scanned'; analysis: FileAnalysis; summary: FileSummary }
  | { path: string; status: 'error'; message: string }
  | { path: string; status: 'skipped'; message: string };

interface Candidate {
  /** As displayed: the argument as given, joined with the names found below it. */
  path: string;
  stats: Stats;
}

export interface ScanPathsOptions {
  rules: CompiledRules;
  maxSizeBytes: number;
  timeoutSeconds: number;
  concurrency: number;
  /** How containers inside the files are opened (absent: only the files' own bytes). */
  archives?: ArchiveSettings;
  /** Called once per file as soon as its outcome is known (in completion order). */
  onEntry?: (entry: ScanEntry, done: number, total: number) => void;
}

/**
 * Scans files and directories (recursively, following symbolic links without looping) with the
 * analyzer's own per-file analysis. A path that cannot be scanned (missing, unreadable, a FIFO,
 * socket or device, a symbolic link loop, too large) becomes an 'error' entry naming why, an
 * empty file a 'skipped' one; the rest go on. Special files are never opened, so nothing blocks.
 */
export async function scanPaths(inputs: string[], options: ScanPathsOptions): Promise<ScanEntry[]> {
  const found: (Candidate | ScanEntry)[] = [];
  const visitedDirs = new Set<string>();
  for (const input of inputs) await collect(input, found, visitedDirs);

  const entries: (ScanEntry | undefined)[] = found.map((item) =>
    'status' in item ? item : precheck(item, options.maxSizeBytes),
  );
  const total = found.length;
  let done = 0;
  const report = (entry: ScanEntry) => options.onEntry?.(entry, ++done, total);
  entries.forEach((entry) => entry && report(entry));

  let next = 0;
  async function worker(): Promise<void> {
    while (next < found.length) {
      const index = next++;
      if (entries[index] !== undefined) continue;
      const candidate = found[index] as Candidate;
      const entry = await scanOne(candidate, options);
      entries[index] = entry;
      report(entry);
    }
  }
  const workers = Math.max(1, Math.min(options.concurrency, found.length));
  await Promise.all(Array.from({ length: workers }, () => worker()));
  return entries as ScanEntry[];
}

async function collect(
  target: string,
  found: (Candidate | ScanEntry)[],
  visitedDirs: Set<string>,
): Promise<void> {
  let stats: Stats;
  try {
    stats = await fs.stat(target);
  } catch (error) {
    found.push({ path: target, status: 'error', message: await describeStatError(target, error) });
    return;
  }
  if (!stats.isDirectory()) {
    found.push({ path: target, stats });
    return;
  }
  const key = `${stats.dev}:${stats.ino}`;
  if (visitedDirs.has(key)) return; // a symbolic link back into a directory already scanned
  visitedDirs.add(key);
  let names: string[];
  try {
    names = (await fs.readdir(target)).sort();
  } catch (error) {
    found.push({
      path: target,
      status: 'error',
      message: `cannot list directory: ${errorText(error)}`,
    });
    return;
  }
  for (const name of names) await collect(path.join(target, name), found, visitedDirs);
}

async function describeStatError(target: string, error: unknown): Promise<string> {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === 'ELOOP') return 'symbolic link loop';
  if (code === 'ENOENT') {
    const link = await fs.lstat(target).catch(() => undefined);
    return link?.isSymbolicLink() ? 'dangling symbolic link' : 'no such file or directory';
  }
  if (code === 'EACCES' || code === 'EPERM') return 'permission denied';
  return errorText(error);
}

function precheck(candidate: Candidate, maxSizeBytes: number): ScanEntry | undefined {
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

async function scanOne(candidate: Candidate, options: ScanPathsOptions): Promise<ScanEntry> {
  try {
    const analysis = await analyzeFile(options.rules, candidate.path, {
      filepath: path.resolve(candidate.path),
      // Member paths start from the path as given: `samples/a.zip!payload.exe`.
      label: candidate.path,
      timeoutSeconds: options.timeoutSeconds,
      ...(options.archives
        ? { archives: options.archives, budgetMs: options.timeoutSeconds * 1000 }
        : {}),
    });
    const summary = summarize(analysis, {
      S3Location: candidate.path,
      S3LastModified: candidate.stats.mtime.toISOString(),
    });
    return { path: candidate.path, status: 'scanned', analysis, summary };
  } catch (error) {
    let message: string;
    if (error instanceof ScanTimeoutError)
      message = `scan timed out after ${options.timeoutSeconds} s`;
    else if (error instanceof FileTypeError) message = `not a regular file: ${error.message}`;
    else if (error instanceof FileOpenError) message = `cannot read: ${error.message}`;
    else message = `scan failed: ${errorText(error)}`;
    return { path: candidate.path, status: 'error', message };
  }
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function formatMb(bytes: number): string {
  const mb = bytes / (1024 * 1024);
  return `${mb >= 10 ? mb.toFixed(0) : mb.toFixed(1)} MB`;
}

/** The readable report: one row per scanned file, then a summary line. */
export function formatTable(entries: ScanEntry[], elapsedMs: number): string {
  const scanned = entries.filter((e) => e.status === 'scanned');
  const rows = scanned.map((entry) => {
    const { matches, unscanned } = entry.analysis;
    const rules = matches.map((match) =>
      match.member ? `${ruleId(match)} in ${match.member.path}` : ruleId(match),
    );
    const reasons = [...new Set(unscanned.map((item) => item.reason))].join(', ');
    if (unscanned.length > 0) rules.push(`(partial: ${unscanned.length} unscanned: ${reasons})`);
    return [matches.length ? 'MATCH' : 'clean', entry.path, rules.join(', ')] as const;
  });
  const lines: string[] = [];
  if (rows.length > 0) {
    const width = Math.min(80, Math.max(4, ...rows.map((row) => row[1].length)));
    const line = (a: string, b: string, c: string) =>
      `${a.padEnd(6)} ${b.padEnd(width)}  ${c}`.trimEnd();
    lines.push(line('STATUS', 'PATH', 'MATCHED RULES'));
    rows.forEach((row) => lines.push(line(...row)));
  }
  const matched = rows.filter((row) => row[0] === 'MATCH').length;
  const errors = entries.filter((e) => e.status === 'error').length;
  const skipped = entries.filter((e) => e.status === 'skipped').length;
  const partial = scanned.filter((e) => e.analysis.coverage === 'partial').length;
  lines.push(
    `scanned ${scanned.length} files in ${(elapsedMs / 1000).toFixed(1)} s: ` +
      `${matched} matched, ${scanned.length - matched} clean` +
      `${partial ? `, ${partial} partly scanned` : ''}` +
      `${errors ? `, ${errors} could not be scanned` : ''}${skipped ? `, ${skipped} skipped` : ''}`,
  );
  return `${lines.join('\n')}\n`;
}

interface ScanFlags {
  rules?: string;
  rulesDir?: string;
  json?: boolean;
  maxSizeMb: string;
  timeout: string;
  concurrency: string;
  /** --password values, in order. */
  password: string[];
  /** false with --no-archives. */
  archives: boolean;
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

/** A single updating status line on a terminal; nothing when stderr is not a TTY. */
function progressLine(enabled: boolean) {
  let shown = false;
  let last = 0;
  return {
    update(text: string, force = false) {
      if (!enabled) return;
      const now = Date.now();
      if (!force && now - last < 100) return;
      last = now;
      process.stderr.write(`\r\x1b[K${text}`);
      shown = true;
    },
    clear() {
      if (shown) process.stderr.write('\r\x1b[K');
      shown = false;
    },
  };
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
    .option('--json', 'print a JSON array of per-file summaries instead of the table')
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
    .option(
      '--concurrency <n>',
      'files scanned at once (two per core keeps every core busy)',
      String(2 * os.availableParallelism()),
    )
    .action(async (inputs: string[], flags: ScanFlags) => {
      const maxSizeMb = positiveNumber(flags.maxSizeMb, '--max-size-mb');
      const timeoutSeconds = positiveNumber(flags.timeout, '--timeout');
      const concurrency = positiveNumber(flags.concurrency, '--concurrency', true);
      const rules = await rulesForScan(flags);
      const archives = archiveSettingsForScan(flags);
      const started = performance.now();
      const progress = progressLine(process.stderr.isTTY === true);
      let matchedSoFar = 0;
      const entries = await scanPaths(inputs, {
        rules,
        maxSizeBytes: maxSizeMb * 1024 * 1024,
        timeoutSeconds,
        concurrency,
        ...(archives ? { archives } : {}),
        onEntry: (entry, done, total) => {
          if (entry.status === 'scanned' && entry.summary.NumMatchedRules > 0) matchedSoFar++;
          if (entry.status !== 'scanned') {
            progress.clear();
            const label = entry.status === 'error' ? 'error' : 'skipped';
            process.stderr.write(`${label}: ${entry.path}: ${entry.message}\n`);
          }
          progress.update(
            `scanning: ${done}/${total} files, ${matchedSoFar} matched`,
            done === total,
          );
        },
      });
      progress.clear();
      const scanned = entries.filter((entry) => entry.status === 'scanned');
      if (flags.json) {
        process.stdout.write(
          `${JSON.stringify(
            scanned.map((entry) => entry.summary),
            null,
            2,
          )}\n`,
        );
      } else {
        process.stdout.write(formatTable(entries, performance.now() - started));
      }
      const matched = scanned.some((entry) => entry.summary.NumMatchedRules > 0);
      const failed = entries.some((entry) => entry.status === 'error');
      if (matched || failed) process.exitCode = 1;
    });
};
