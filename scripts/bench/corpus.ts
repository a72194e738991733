import { constants, createWriteStream, promises as fs } from 'node:fs';
import path from 'node:path';
import { once } from 'node:events';

import { Prng } from './prng';
import type { Plant } from './rules';

/** The EICAR test string (harmless; every scanner flags it). */
export const EICAR = 'X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*';

export interface SyntheticCorpusOptions {
  seed: string;
  /** Stop adding files once this many bytes are written. */
  totalBytes: number;
  minFileBytes?: number;
  maxFileBytes?: number;
  /** Planted matches for the generated rules. */
  plants: Plant[];
  /** Share of files with the EICAR string somewhere inside (default 0.02). */
  eicarShare?: number;
  /** Share of files with planted rule matches (default 0.3). */
  plantShare?: number;
}

export interface CorpusFile {
  path: string;
  size: number;
}

export interface Corpus {
  dir: string;
  files: CorpusFile[];
  totalBytes: number;
  /** Files with the EICAR string planted. */
  eicarFiles: number;
  /** Files with at least one planted rule match. */
  plantedFiles: number;
}

interface FilePlan {
  size: number;
  header?: 'MZ' | 'ELF';
  inserts: { offset: number; bytes: Buffer }[];
}

const HEADERS = { MZ: Buffer.from('MZ', 'latin1'), ELF: Buffer.from('7f454c46', 'hex') };

/** Decides each file's size, header and planted strings (pure: only the PRNG). */
export function planSyntheticCorpus(options: SyntheticCorpusOptions): FilePlan[] {
  const prng = new Prng(`corpus:${options.seed}`);
  const minBytes = options.minFileBytes ?? 1024;
  const maxBytes = options.maxFileBytes ?? 4 * 1024 * 1024;
  const plans: FilePlan[] = [];
  let total = 0;
  while (total < options.totalBytes) {
    const size = prng.logUniform(minBytes, maxBytes);
    const roll = prng.next();
    const header = roll < 0.05 ? 'MZ' : roll < 0.1 ? 'ELF' : undefined;
    const inserts: FilePlan['inserts'] = [];
    const start = header ? 64 : 0;
    const place = (bytes: Buffer) => {
      if (bytes.length + start >= size) return;
      inserts.push({ offset: prng.int(start, size - bytes.length), bytes });
    };
    if (prng.chance(options.eicarShare ?? 0.02)) place(Buffer.from(EICAR, 'latin1'));
    if (options.plants.length > 0 && prng.chance(options.plantShare ?? 0.3)) {
      for (let k = prng.int(1, 3); k > 0; k--) {
        const plant = prng.pick(options.plants);
        if (plant.header !== undefined && plant.header !== header) continue;
        if (plant.maxFileSize !== undefined && size >= plant.maxFileSize) continue;
        if (plant.minFileSize !== undefined && size <= plant.minFileSize) continue;
        place(plant.bytes);
      }
    }
    // Later inserts may overwrite earlier ones; keep them apart by sorting and dropping overlaps.
    inserts.sort((a, b) => a.offset - b.offset);
    const kept = inserts.filter(
      (insert, index) =>
        index === 0 ||
        insert.offset >=
          (inserts[index - 1] as (typeof inserts)[number]).offset +
            (inserts[index - 1] as (typeof inserts)[number]).bytes.length,
    );
    plans.push({ size, ...(header ? { header } : {}), inserts: kept });
    total += size;
  }
  return plans;
}

/** The bytes of one planned file (random content from the seed, header, planted strings). */
export function renderFile(seed: string, index: number, plan: FilePlan): Buffer {
  const data = new Prng(`file:${seed}:${index}`).byteStream('content').read(plan.size);
  if (plan.header) HEADERS[plan.header].copy(data, 0);
  for (const insert of plan.inserts) insert.bytes.copy(data, insert.offset);
  return data;
}

/**
 * Writes the synthetic corpus into `dir` (files of log-uniform size, 100 per subdirectory) and
 * returns what it wrote. The same options give the same bytes.
 */
export async function writeSyntheticCorpus(
  dir: string,
  options: SyntheticCorpusOptions,
): Promise<Corpus> {
  const plans = planSyntheticCorpus(options);
  const files: CorpusFile[] = [];
  let totalBytes = 0;
  for (const [index, plan] of plans.entries()) {
    const sub = path.join(
      dir,
      `d${Math.floor(index / 100)
        .toString()
        .padStart(3, '0')}`,
    );
    if (index % 100 === 0) await fs.mkdir(sub, { recursive: true });
    const file = path.join(sub, `f${index.toString().padStart(5, '0')}.bin`);
    await fs.writeFile(file, renderFile(options.seed, index, plan));
    files.push({ path: file, size: plan.size });
    totalBytes += plan.size;
  }
  return {
    dir,
    files,
    totalBytes,
    eicarFiles: plans.filter((p) => p.inserts.some((i) => i.bytes.toString('latin1') === EICAR))
      .length,
    plantedFiles: plans.filter((p) => p.inserts.some((i) => i.bytes.toString('latin1') !== EICAR))
      .length,
  };
}

const ELF_MAGIC = Buffer.from('7f454c46', 'hex');

async function isElf(file: string): Promise<boolean> {
  const handle = await fs
    .open(file, constants.O_RDONLY | constants.O_NONBLOCK)
    .catch(() => undefined);
  if (!handle) return false;
  try {
    const head = Buffer.alloc(4);
    const { bytesRead } = await handle.read(head, 0, 4, 0);
    return bytesRead === 4 && head.equals(ELF_MAGIC);
  } catch {
    return false;
  } finally {
    await handle.close();
  }
}

export interface ElfCorpusOptions {
  roots: string[];
  maxFiles?: number;
  maxBytes?: number;
  /** Skip single files larger than this (default 64 MB). */
  maxFileBytes?: number;
}

/**
 * Copies the machine's ELF files under `roots` (regular files only, symbolic links skipped, in
 * sorted path order) into `dir`, up to the given caps.
 */
export async function copyElfCorpus(dir: string, options: ElfCorpusOptions): Promise<Corpus> {
  const maxFiles = options.maxFiles ?? Infinity;
  const maxBytes = options.maxBytes ?? Infinity;
  const maxFileBytes = options.maxFileBytes ?? 64 * 1024 * 1024;
  const files: CorpusFile[] = [];
  let totalBytes = 0;
  await fs.mkdir(dir, { recursive: true });

  async function walk(current: string): Promise<void> {
    let entries;
    try {
      entries = await fs.readdir(current, { withFileTypes: true });
    } catch {
      return;
    }
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const entry of entries) {
      // Stop near the cap rather than walking everything for the one file that still fits.
      if (files.length >= maxFiles || totalBytes >= maxBytes * 0.95) return;
      const full = path.join(current, entry.name);
      if (entry.isDirectory()) await walk(full);
      else if (entry.isFile()) {
        const stats = await fs.stat(full).catch(() => undefined);
        if (!stats || stats.size === 0 || stats.size > maxFileBytes) continue;
        if (totalBytes + stats.size > maxBytes) continue;
        if (!(await isElf(full))) continue;
        const target = path.join(dir, `e${files.length.toString().padStart(5, '0')}-${entry.name}`);
        await fs.copyFile(full, target);
        files.push({ path: target, size: stats.size });
        totalBytes += stats.size;
      }
    }
  }
  for (const root of options.roots) await walk(root);
  return { dir, files, totalBytes, eicarFiles: 0, plantedFiles: 0 };
}

/** Writes one file of `size` bytes of deterministic content, in chunks (never whole in memory). */
export async function writeLargeFile(file: string, size: number, seed: string): Promise<void> {
  const stream = new Prng(`large:${seed}`).byteStream('content');
  const out = createWriteStream(file);
  const chunk = 8 * 1024 * 1024;
  for (let written = 0; written < size; written += chunk) {
    if (!out.write(stream.read(Math.min(chunk, size - written)))) await once(out, 'drain');
  }
  out.end();
  await once(out, 'finish');
}
