import { createWriteStream } from 'node:fs';
import { mkdir, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { ZipFile } from 'yazl';

export interface ZipEntry {
  /** Path inside the archive (forward slashes). */
  name: string;
  data: Buffer;
}

// A fixed local-time DOS timestamp encodes the same fields in every time zone.
const FIXED_MTIME = new Date(1980, 0, 1, 0, 0, 0);
const FILE_MODE = 0o100644;

/**
 * Writes a reproducible zip: entries sorted by name, one fixed timestamp (DOS field only, no
 * extended timestamp), fixed permissions and compression level, so the same inputs always give
 * byte-identical archives. Written to a temp file and renamed, so readers never see half a zip.
 */
export async function writeReproducibleZip(file: string, entries: ZipEntry[]): Promise<void> {
  const names = new Set<string>();
  for (const entry of entries) {
    if (names.has(entry.name)) throw new Error(`duplicate zip entry ${entry.name}`);
    names.add(entry.name);
  }
  const zip = new ZipFile();
  for (const entry of [...entries].sort((a, b) =>
    a.name < b.name ? -1 : a.name > b.name ? 1 : 0,
  )) {
    zip.addBuffer(entry.data, entry.name, {
      mtime: FIXED_MTIME,
      mode: FILE_MODE,
      compress: true,
      compressionLevel: 9,
      forceDosTimestamp: true,
    });
  }
  zip.end();
  await mkdir(path.dirname(file), { recursive: true });
  const partial = `${file}.${process.pid}.partial`;
  try {
    await pipeline(zip.outputStream, createWriteStream(partial));
    await rename(partial, file);
  } catch (error) {
    await rm(partial, { force: true });
    throw error;
  }
}
