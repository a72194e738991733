import { promises as fs, type Stats } from 'node:fs';
import path from 'node:path';
import { errorText } from '@binaryalert/core';

/** A path found below the inputs that may be scanned (its type and size checked by the caller). */
export interface FoundFile {
  /** As displayed: the argument as given, joined with the names found below it. */
  path: string;
  stats: Stats;
}

/** A path that will not be scanned, and why. */
export interface Unscannable {
  path: string;
  status: 'error' | 'skipped';
  message: string;
}

/**
 * Walks files and directories depth-first, following symbolic links, one directory listing at a
 * time, so memory grows with the depth of the tree and the size of one directory, never with the
 * number of files. A directory reached a second time (a symbolic link back into the tree, or two
 * links to one place) is reported as skipped instead of being walked again; what cannot be read
 * (missing, dangling link, link loop, permission denied) is reported as an error.
 */
export async function* walkPaths(inputs: string[]): AsyncGenerator<FoundFile | Unscannable> {
  // Device and inode of every directory walked: per directory, not per file.
  const walkedDirs = new Set<string>();
  for (const input of inputs) yield* walk(input, walkedDirs);
}

async function* walk(
  target: string,
  walkedDirs: Set<string>,
): AsyncGenerator<FoundFile | Unscannable> {
  let stats: Stats;
  try {
    stats = await fs.stat(target);
  } catch (error) {
    yield { path: target, status: 'error', message: await describeStatError(target, error) };
    return;
  }
  if (!stats.isDirectory()) {
    yield { path: target, stats };
    return;
  }
  const key = `${stats.dev}:${stats.ino}`;
  if (walkedDirs.has(key)) {
    yield {
      path: target,
      status: 'skipped',
      message: 'directory already scanned (reached again through a symbolic link)',
    };
    return;
  }
  walkedDirs.add(key);
  let names: string[];
  try {
    names = (await fs.readdir(target)).sort();
  } catch (error) {
    yield { path: target, status: 'error', message: `cannot list directory: ${errorText(error)}` };
    return;
  }
  for (const name of names) yield* walk(path.join(target, name), walkedDirs);
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
