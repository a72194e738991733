// Runs in the 7-Zip worker thread (sevenzip-worker.ts): 7-Zip in WebAssembly is synchronous.
import { randomBytes } from 'node:crypto';
import { closeSync, openSync, rmSync, writeSync } from 'node:fs';
import path from 'node:path';
import type { UnscannedContent } from '@binaryalert/yara';
import SevenZip from '7z-wasm';

import { monotonicMs } from './clock';

/** Past this many bytes expanded, the ratio ceiling applies (the native walker's rule). */
const RATIO_FLOOR_BYTES = 8 * 1024 * 1024;
/** Where the archive's directory is mounted inside the 7-Zip module (read through, never written). */
const MOUNT = '/archive';

/** A member of the archive, extracted whole into a temp file of a generated name. */
export interface ExtractedMember {
  /** The member's name as 7-Zip lists it (control characters already replaced by `_`). */
  name: string;
  size: number;
  /** The temp file holding its bytes; the caller removes it. */
  file: string;
}

export interface SevenZipLimits {
  passwords: readonly string[];
  /** Members that may still be extracted. */
  maxMembers: number;
  /** Bytes that may still be extracted. */
  maxExpandedBytes: number;
  /** Expanded/compressed ceiling past 8 MiB expanded (0: off). */
  maxRatio: number;
  /** `monotonicMs()` after which extraction stops. */
  deadline: number;
  /** Where the member files go: a directory of this extraction's own. */
  tempDir: string;
  /** Plain members not to keep (already scanned): their bytes pass by unwritten. */
  skip?: readonly string[];
}

export interface SevenZipExtraction {
  /** The password that opened the archive; undefined when none did. */
  password?: string;
  /** Set when the time budget ran out before a password opened it. */
  outOfTime?: boolean;
  members: ExtractedMember[];
  /** Members that were not extracted (a bound was hit), as `name` + reason. */
  unscanned: (Omit<UnscannedContent, 'path'> & { name: string })[];
  expandedBytes: number;
}

interface ListedEntry {
  name: string;
  size: number;
  encrypted: boolean;
}

class StopExtraction extends Error {
  constructor(readonly reason: UnscannedContent['reason']) {
    super(reason);
  }
}

/** A fresh 7-Zip module (no state shared between archives), its stdout handed to `sink`. */
async function sevenZip(archive: string): Promise<{
  run: (args: string[], sink: (bytes: Uint8Array) => void) => number;
}> {
  const module = await SevenZip({
    print: () => undefined,
    printErr: () => undefined,
    stdout: () => undefined,
    stderr: () => undefined,
    quit: () => undefined,
  });
  module.FS.mkdir(MOUNT);
  module.FS.mount(module.NODEFS, { root: path.dirname(archive) }, MOUNT);
  const target = `${MOUNT}/${path.basename(archive)}`;
  return {
    run(args, sink) {
      // stdout in chunks, not the TTY's one call per byte.
      const stdout = (
        module.FS as unknown as {
          getStream(fd: number): { stream_ops: Record<string, unknown> };
        }
      ).getStream(1);
      stdout.stream_ops = {
        ...stdout.stream_ops,
        write: (_stream: unknown, buffer: Uint8Array, offset: number, length: number) => {
          sink(buffer.subarray(offset, offset + length));
          return length;
        },
      };
      // Emscripten's runtime sets process.exitCode when 7-Zip exits or is stopped: keep ours.
      const exitCode = process.exitCode;
      try {
        return module.callMain([
          ...args,
          '-bso0',
          '-bsp0',
          '-sccUTF-8',
          target,
        ]) as unknown as number;
      } finally {
        process.exitCode = exitCode;
      }
    },
  };
}

/** Parses `7z l -slt`: one block of `Name = value` lines per entry after the `----------` line. */
function parseListing(text: string): ListedEntry[] | undefined {
  const start = text.indexOf('\n----------\n');
  if (start === -1) return undefined;
  const entries: ListedEntry[] = [];
  for (const block of text.slice(start + 12).split(/\n\s*\n/)) {
    const fields = new Map<string, string>();
    for (const line of block.split('\n')) {
      const eq = line.indexOf(' = ');
      if (eq > 0) fields.set(line.slice(0, eq), line.slice(eq + 3));
    }
    const name = fields.get('Path');
    if (name === undefined) continue;
    const isDir = fields.get('Folder') === '+' || (fields.get('Attributes') ?? '').startsWith('D');
    if (isDir) continue;
    entries.push({
      name,
      size: Number(fields.get('Size') ?? '0'),
      encrypted: fields.get('Encrypted') === '+',
    });
  }
  return entries;
}

/**
 * Opens an encrypted 7z archive (which libarchive cannot decrypt) with 7-Zip compiled to
 * WebAssembly, trying each password. Members are streamed (`7z e -so`: no file is created from a
 * member name; their bytes come in archive order, cut by the listed sizes) into temp files of
 * generated names, within the member, size, ratio and time bounds. A password counts only when
 * 7-Zip extracted everything without an error (CRC checked); what a wrong one produced is dropped.
 * Returns undefined when the archive holds nothing encrypted; no `password` when none opened it.
 */
export async function extractEncryptedSevenZip(
  archive: string,
  archiveBytes: number,
  limits: SevenZipLimits,
): Promise<SevenZipExtraction | undefined> {
  const tempDir = limits.tempDir;
  for (const password of limits.passwords) {
    if (monotonicMs() > limits.deadline) {
      return { members: [], unscanned: [], expandedBytes: 0, outOfTime: true };
    }
    const listing: Buffer[] = [];
    const code = (await sevenZip(archive)).run(['l', '-slt', `-p${password}`], (bytes) =>
      listing.push(Buffer.from(bytes)),
    );
    // Encrypted headers (-mhe=on): a wrong password cannot even list.
    const listed = code === 0 ? parseListing(Buffer.concat(listing).toString('utf8')) : undefined;
    if (!listed) continue;
    if (!listed.some((entry) => entry.encrypted)) return undefined;
    const attempt = await extractWith(archive, archiveBytes, password, listed, limits, tempDir);
    if (attempt) return { password, ...attempt };
  }
  return { members: [], unscanned: [], expandedBytes: 0 };
}

async function extractWith(
  archive: string,
  archiveBytes: number,
  password: string,
  listed: ListedEntry[],
  limits: SevenZipLimits,
  tempDir: string,
): Promise<Omit<SevenZipExtraction, 'password'> | undefined> {
  const tool = await sevenZip(archive);
  const skip = new Set(limits.skip);
  const withBytes = listed.filter((entry) => entry.size > 0);
  const members: ExtractedMember[] = [];
  let index = 0;
  let written = 0; // of the current member
  let expanded = 0;
  let fd: number | undefined;
  /** The member file being written, until it is complete. */
  let current: string | undefined;
  let kept = 0;
  let stopped: StopExtraction | undefined;
  const closeMember = (): void => {
    if (fd !== undefined) closeSync(fd);
    fd = undefined;
  };
  const sink = (bytes: Uint8Array): void => {
    let offset = 0;
    while (offset < bytes.length) {
      const entry = withBytes[index];
      if (!entry) throw new StopExtraction('corrupt'); // more bytes than listed
      // libarchive reads no encrypted 7z member: one named like a plain one it read is still unread.
      const keep = entry.encrypted || !skip.has(entry.name);
      if (written === 0 && keep) {
        if (kept >= limits.maxMembers) throw new StopExtraction('member-limit');
        current = path.join(tempDir, `7z-member-${randomBytes(8).toString('hex')}`);
        fd = openSync(current, 'wx', 0o600);
        kept += 1;
      }
      const take = Math.min(entry.size - written, bytes.length - offset);
      if (expanded + take > limits.maxExpandedBytes) throw new StopExtraction('size-limit');
      if (monotonicMs() > limits.deadline) throw new StopExtraction('time-limit');
      if (
        limits.maxRatio > 0 &&
        expanded + take > RATIO_FLOOR_BYTES &&
        (expanded + take) / Math.max(1, archiveBytes) > limits.maxRatio
      ) {
        throw new StopExtraction('ratio-limit');
      }
      if (fd !== undefined) writeSync(fd, bytes, offset, take);
      offset += take;
      written += take;
      expanded += take;
      if (written === entry.size) {
        closeMember();
        if (current !== undefined)
          members.push({ name: entry.name, size: entry.size, file: current });
        current = undefined;
        index += 1;
        written = 0;
      }
    }
  };
  let code: number;
  try {
    code = tool.run(['e', '-so', `-p${password}`], sink);
  } catch (error) {
    if (!(error instanceof StopExtraction)) throw error;
    stopped = error;
    code = 0;
  } finally {
    closeMember();
  }
  if (current !== undefined) rmSync(current, { force: true });
  if (code !== 0 || (!stopped && index !== withBytes.length)) {
    // Wrong password or damaged data: nothing it produced is trusted.
    for (const member of members) rmSync(member.file, { force: true });
    return undefined;
  }
  const unscanned = stopped
    ? withBytes.slice(index).map((entry) => ({
        name: entry.name,
        reason: stopped.reason,
        detail: `7z member not extracted: ${stopped.reason}`,
      }))
    : [];
  return { members, unscanned, expandedBytes: expanded };
}
