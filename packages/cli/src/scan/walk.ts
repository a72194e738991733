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
  for (const input of inputs) yield* walkTree(input, walkedDirs);
}

/** A directory being walked: its sorted names and the next one to visit. */
interface OpenDirectory {
  target: string | Buffer;
  shown: string;
  names: Buffer[];
  next: number;
}

/**
 * One tree, depth-first in name order. The open directories are kept on a stack of their own: as
 * nested generators, a tree 2,000 directories deep (as deep as PATH_MAX allows) overflowed the
 * call stack and ended the whole scan.
 */
async function* walkTree(
  root: string,
  walkedDirs: Set<string>,
): AsyncGenerator<FoundFile | Unscannable> {
  const open: OpenDirectory[] = [];
  let next: { target: string | Buffer; shown: string } | undefined = { target: root, shown: root };
  for (;;) {
    if (next) {
      const found = await visit(next.target, next.shown, walkedDirs);
      if ('names' in found) open.push(found);
      else yield found;
      next = undefined;
    }
    const directory = open.at(-1);
    if (!directory) return;
    const name = directory.names[directory.next++];
    if (name === undefined) open.pop();
    else next = child(directory, name);
  }
}

/** What a path is: a file, a directory to walk (its names listed), or why it is not walked. */
async function visit(
  target: string | Buffer,
  shown: string,
  walkedDirs: Set<string>,
): Promise<FoundFile | Unscannable | OpenDirectory> {
  let stats: Stats;
  try {
    stats = await fs.stat(target);
  } catch (error) {
    return { path: shown, status: 'error', message: await describeStatError(target, error) };
  }
  if (!stats.isDirectory()) {
    return { path: shown, ...(typeof target === 'string' ? {} : { bytes: target }), stats };
  }
  const key = `${stats.dev}:${stats.ino}`;
  if (walkedDirs.has(key)) {
    return {
      path: shown,
      status: 'skipped',
      message: 'directory already scanned (reached again through a symbolic link)',
    };
  }
  walkedDirs.add(key);
  try {
    // As bytes: decoded, a name that is not UTF-8 would come back as U+FFFD and name nothing.
    const names = await fs.readdir(target, { encoding: 'buffer' });
    return { target, shown, names: names.sort((a, b) => Buffer.compare(a, b)), next: 0 };
  } catch (error) {
    return { path: shown, status: 'error', message: `cannot list directory: ${errorText(error)}` };
  }
}

/** The path of `name` in a directory: a string while every name is UTF-8, else bytes. */
function child(directory: OpenDirectory, name: Buffer): { target: string | Buffer; shown: string } {
  const { target, shown } = directory;
  const text = name.toString('utf8');
  if (typeof target === 'string' && Buffer.from(text).equals(name)) {
    return { target: path.join(target, text), shown: path.join(shown, text) };
  }
  const parent = typeof target === 'string' ? Buffer.from(target) : target;
  return {
    target: Buffer.concat([parent, Buffer.from(path.sep), name]),
    shown: path.join(shown, escapedName(name)),
  };
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
