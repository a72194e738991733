import { promises as fs, type Stats } from 'node:fs';
import path from 'node:path';
import { errorText } from '@binaryalert/core';

/** A path found below the inputs that may be scanned (its type and size checked by the caller). */
export interface FoundFile {
  /** As displayed: the argument as given, joined with the names found below it. */
  path: string;
  /**
   * The exact path to open when a name on the way is not valid UTF-8 (as bytes: a string would
   * name another file); `path` then shows those bytes as \xNN.
   */
  bytes?: Buffer;
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
  for (const input of inputs) yield* walk(input, input, walkedDirs);
}

async function* walk(
  target: string | Buffer,
  shown: string,
  walkedDirs: Set<string>,
): AsyncGenerator<FoundFile | Unscannable> {
  let stats: Stats;
  try {
    stats = await fs.stat(target);
  } catch (error) {
    yield { path: shown, status: 'error', message: await describeStatError(target, error) };
    return;
  }
  if (!stats.isDirectory()) {
    yield { path: shown, ...(typeof target === 'string' ? {} : { bytes: target }), stats };
    return;
  }
  const key = `${stats.dev}:${stats.ino}`;
  if (walkedDirs.has(key)) {
    yield {
      path: shown,
      status: 'skipped',
      message: 'directory already scanned (reached again through a symbolic link)',
    };
    return;
  }
  walkedDirs.add(key);
  let names: Buffer[];
  try {
    // As bytes: decoded, a name that is not UTF-8 would come back as U+FFFD and name nothing.
    names = (await fs.readdir(target, { encoding: 'buffer' })).sort((a, b) => Buffer.compare(a, b));
  } catch (error) {
    yield { path: shown, status: 'error', message: `cannot list directory: ${errorText(error)}` };
    return;
  }
  for (const name of names) {
    const text = name.toString('utf8');
    if (typeof target === 'string' && Buffer.from(text).equals(name)) {
      yield* walk(path.join(target, text), path.join(shown, text), walkedDirs);
    } else {
      const parent = typeof target === 'string' ? Buffer.from(target) : target;
      const child = Buffer.concat([parent, Buffer.from(path.sep), name]);
      yield* walk(child, path.join(shown, escapedName(name)), walkedDirs);
    }
  }
}

/** A file name's bytes as text: valid UTF-8 as it is, every other byte as \xNN. */
function escapedName(name: Buffer): string {
  let text = '';
  let start = 0;
  while (start < name.length) {
    const lead = name[start] as number;
    const length = lead < 0x80 ? 1 : lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : lead >= 0xc2 ? 2 : 0;
    const sequence = length > 0 ? name.subarray(start, start + length) : undefined;
    const decoded = sequence?.toString('utf8');
    if (
      sequence?.length === length &&
      decoded !== undefined &&
      Buffer.from(decoded).equals(sequence)
    ) {
      text += decoded;
      start += length;
    } else {
      text += `\\x${lead.toString(16).padStart(2, '0')}`;
      start += 1;
    }
  }
  return text;
}

async function describeStatError(target: string | Buffer, error: unknown): Promise<string> {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === 'ELOOP') return 'symbolic link loop';
  if (code === 'ENOENT') {
    const link = await fs.lstat(target).catch(() => undefined);
    return link?.isSymbolicLink() ? 'dangling symbolic link' : 'no such file or directory';
  }
  if (code === 'EACCES' || code === 'EPERM') return 'permission denied';
  return errorText(error);
}
