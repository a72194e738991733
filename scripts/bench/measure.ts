import { spawn } from 'node:child_process';
import { promises as fs, readdirSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/** One run of a child process under /usr/bin/time. */
export interface TimedRun {
  wallMs: number;
  /** User + system CPU seconds of the process and its children. */
  cpuSeconds: number;
  maxRssKb: number;
  exitCode: number;
  stdout: string;
  stderr: string;
}

export class ChildFailedError extends Error {
  override readonly name = 'ChildFailedError';
}

/**
 * Runs a command under `/usr/bin/time` (CPU seconds and peak RSS of the whole process tree that
 * was waited for) and measures its wall time here. Exit codes in `okCodes` count as success.
 */
export async function runTimed(
  command: string,
  args: string[],
  options: { cwd?: string; env?: NodeJS.ProcessEnv; okCodes?: number[] } = {},
): Promise<TimedRun> {
  const timeFile = path.join(
    os.tmpdir(),
    `bench-time-${process.pid}-${Math.random().toString(36).slice(2)}`,
  );
  // stdout goes to a file: a CLI that calls process.exit() right after a large write to a pipe
  // loses the unflushed rest (writes to files are synchronous).
  const stdoutFile = `${timeFile}.out`;
  const stdoutHandle = await fs.open(stdoutFile, 'w');
  const started = performance.now();
  const child = spawn('/usr/bin/time', ['-f', '%U %S %M', '-o', timeFile, command, ...args], {
    cwd: options.cwd,
    env: options.env ?? process.env,
    stdio: ['ignore', stdoutHandle.fd, 'pipe'],
  });
  const stderr: Buffer[] = [];
  child.stderr?.on('data', (chunk: Buffer) => stderr.push(chunk));
  const exitCode = await new Promise<number>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => resolve(code ?? -1));
  });
  const wallMs = performance.now() - started;
  await stdoutHandle.close();
  const stdout = await fs.readFile(stdoutFile, 'utf8');
  await fs.unlink(stdoutFile);
  const timeText = await fs.readFile(timeFile, 'utf8').catch(() => '');
  await fs.unlink(timeFile).catch(() => undefined);
  const last = timeText.trim().split('\n').pop() ?? '';
  const [user, system, rss] = last.split(' ').map(Number);
  const run: TimedRun = {
    wallMs,
    cpuSeconds: (user ?? NaN) + (system ?? NaN),
    maxRssKb: rss ?? NaN,
    exitCode,
    stdout,
    stderr: Buffer.concat(stderr).toString('utf8'),
  };
  if (!(options.okCodes ?? [0]).includes(exitCode)) {
    throw new ChildFailedError(
      `${command} ${args.join(' ')} exited with ${exitCode}: ${run.stderr.slice(-2000)}`,
    );
  }
  return run;
}

export function median(values: number[]): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2
    ? (sorted[mid] as number)
    : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

export function percentile(values: number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank] as number;
}

/**
 * Runs every variant `reps` times, interleaved (A B C, then B C A, ...), so that load from other
 * processes falls on all of them alike. Returns each variant's results in run order.
 */
export async function interleave<T>(
  variants: { name: string; run: () => Promise<T> }[],
  reps: number,
): Promise<Map<string, T[]>> {
  const results = new Map<string, T[]>(variants.map((v) => [v.name, []]));
  for (let rep = 0; rep < reps; rep++) {
    for (let k = 0; k < variants.length; k++) {
      const variant = variants[(k + rep) % variants.length] as (typeof variants)[number];
      (results.get(variant.name) as T[]).push(await variant.run());
    }
  }
  return results;
}

export const MB = 1024 * 1024;

/** The 1-minute load average divided by the core count (how busy the machine was). */
export function loadPerCore(): number {
  return (os.loadavg()[0] ?? 0) / os.availableParallelism();
}

/**
 * CPU seconds (user + system) used so far by this process and every live descendant (the local
 * stack's emulators and Lambda workers), from /proc; NaN where there is no /proc. Processes that
 * exited are not counted, so take it around work done by long-lived processes.
 */
export function processTreeCpuSeconds(): number {
  let entries: string[];
  try {
    entries = readdirSync('/proc').filter((name) => /^\d+$/.test(name));
  } catch {
    return NaN;
  }
  const ticksPerSecond = 100; // USER_HZ on Linux
  const parentOf = new Map<number, number>();
  const ticksOf = new Map<number, number>();
  for (const entry of entries) {
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      // Fields after the command name (which may hold spaces): state ppid ... utime(12) stime(13).
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      parentOf.set(Number(entry), Number(fields[1]));
      ticksOf.set(Number(entry), Number(fields[11]) + Number(fields[12]));
    } catch {
      // exited meanwhile
    }
  }
  let ticks = 0;
  for (const [pid, own] of ticksOf) {
    for (let p: number | undefined = pid, depth = 0; p !== undefined && depth < 32; depth++) {
      if (p === process.pid) {
        ticks += own;
        break;
      }
      p = parentOf.get(p);
    }
  }
  return ticks / ticksPerSecond;
}

/** User + system CPU seconds of a process so far (Linux /proc; clock ticks of 1/100 s). */
export function processCpuSeconds(pid: number | undefined): number {
  if (pid === undefined) return NaN;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return NaN;
  }
}

/** CPU seconds of each of `pids` so far, by pid; those gone (or never started) are left out. */
export function cpuByPid(pids: (number | undefined)[]): Map<number, number> {
  const cpu = new Map<number, number>();
  for (const pid of pids) {
    const seconds = processCpuSeconds(pid);
    if (pid !== undefined && !Number.isNaN(seconds)) cpu.set(pid, seconds);
  }
  return cpu;
}

/**
 * The CPU seconds the processes of `after` used since `before` was taken; one missing from
 * `before` started since, so all of its CPU counts. One that exited in between is not counted.
 */
export function cpuSince(before: Map<number, number>, after: Map<number, number>): number {
  let seconds = 0;
  for (const [pid, now] of after) seconds += now - (before.get(pid) ?? 0);
  return seconds;
}

/**
 * The guest kernel's free-page reporting (virtio-balloon), as the lowest order of free blocks it
 * hands back to the hypervisor; undefined when the kernel has none. Pages handed back cost the
 * hypervisor a fault to touch again: on the machine this bench was tuned on, writing 1 GB into
 * new page-cache pages took 6-10 s of system time instead of 0.2 s, so a bench run that grows the
 * page cache (the pipeline's S3 store) measures the host as much as the code. Reported with every
 * run, so figures from machines with and without it are not compared blindly.
 */
export function freePageReportingOrder(
  parameters = '/sys/module/page_reporting/parameters',
): number | undefined {
  try {
    const text = readFileSync(path.join(parameters, 'page_reporting_order'), 'utf8').trim();
    return /^\d+$/.test(text) ? Number(text) : undefined; // Number('') would be 0
  } catch {
    return undefined;
  }
}
