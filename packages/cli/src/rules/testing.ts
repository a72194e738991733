// Test helpers for the rules commands (not a test file itself; used by *.test.ts beside it).
import { execFileSync, spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { runCli } from '../program';

export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

/** The repository's root, where manage.ts is. */
export const REPO_ROOT = path.resolve(__dirname, '../../../..');

/** Starts manage.ts as a child process (a real process: signals, SIGBUS, exit codes). */
export function spawnManage(args: string[]): ChildProcessWithoutNullStreams {
  return spawn(process.execPath, [path.join(REPO_ROOT, 'manage.ts'), ...args], { cwd: REPO_ROOT });
}

/** Runs manage.ts in-process with stdout/stderr captured; leaves process.exitCode as it found it. */
export async function runCaptured(args: string[]): Promise<CliRun> {
  let stdout = '';
  let stderr = '';
  const outSpy = jest
    .spyOn(process.stdout, 'write')
    .mockImplementation((chunk: string | Uint8Array) => {
      stdout += chunk.toString();
      return true;
    });
  const errSpy = jest
    .spyOn(process.stderr, 'write')
    .mockImplementation((chunk: string | Uint8Array) => {
      stderr += chunk.toString();
      return true;
    });
  const previous = process.exitCode;
  process.exitCode = undefined;
  try {
    const code = await runCli(args);
    return { code, stdout, stderr };
  } finally {
    process.exitCode = previous;
    outSpy.mockRestore();
    errSpy.mockRestore();
  }
}

/** A fresh temporary directory, removed by the returned cleanup. */
export function temporaryDirectory(prefix: string): { dir: string; remove: () => void } {
  const dir = mkdtempSync(path.join(os.tmpdir(), `binaryalert-${prefix}-`));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Runs git with a fixed identity (tests create real repositories). */
export function git(cwd: string, ...args: string[]): string {
  return execFileSync(
    'git',
    [
      '-c',
      'user.name=BinaryAlert test',
      '-c',
      'user.email=test@example.com',
      '-c',
      'init.defaultBranch=main',
      ...args,
    ],
    { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] },
  );
}
