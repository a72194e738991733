import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { compileRules, type CompiledRules } from '@binaryalert/yara';
import { analyzeFile, DEFAULT_ARCHIVE_SETTINGS } from './analysis';
import {
  ContentRequirementSchema,
  excludedByPrefilter,
  mayMeetRequirement,
  readContentSignature,
  type ContentSignature,
} from './content-signature';

const literal = (text: string, nocase = false) => ({
  bytes: Buffer.from(text, 'latin1').toString('hex'),
  ...(nocase ? { nocase: true as const } : {}),
});

describe('content signatures (addon) read by the prefilter', () => {
  let dir: string;
  let rules: CompiledRules;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'core-signature-'));
    const file = path.join(dir, 'r.yar');
    await writeFile(file, 'rule never_matches { condition: false }\n');
    ({ rules } = await compileRules([{ path: file, namespace: 'r.yar' }]));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  const signatureOf = async (bytes: Buffer): Promise<ContentSignature> => {
    const { contentSignature } = await rules.scanBuffer(bytes, { contentSignature: true });
    const signature = readContentSignature(contentSignature);
    if (!signature) throw new Error('no signature');
    return signature;
  };

  it('holds every trigram of the scanned bytes, whatever their size', async () => {
    for (const size of [3, 100, 5_000, 300_000]) {
      const bytes = randomBytes(size);
      const signature = await signatureOf(bytes);
      for (let i = 0; i + 3 <= size; i += Math.max(1, Math.floor(size / 2000))) {
        const piece = bytes.subarray(i, i + 3 + (i % 7)).toString('hex');
        expect(mayMeetRequirement(signature, { bytes: piece })).toBe(true);
      }
    }
  });

  it('rules out literals that are absent, and sizes the bitmap by what was scanned', async () => {
    const text = Buffer.from('The quick brown fox jumps over the lazy dog. '.repeat(50));
    const signature = await signatureOf(text);
    expect(signature.bitmap.length).toBe(512); // few distinct trigrams: the smallest bitmap
    expect(mayMeetRequirement(signature, literal('lazy dog'))).toBe(true);
    expect(mayMeetRequirement(signature, literal('LAZY DOG'))).toBe(false);
    expect(mayMeetRequirement(signature, literal('LAZY DOG', true))).toBe(true);
    expect(mayMeetRequirement(signature, literal('EVIL_MARKER_1234'))).toBe(false);
    expect(mayMeetRequirement(signature, { any: [literal('EVIL'), literal('fox')] })).toBe(true);
    expect(mayMeetRequirement(signature, { all: [literal('EVIL'), literal('fox')] })).toBe(false);
    // Shorter than a trigram: nothing can be ruled out.
    expect(mayMeetRequirement(signature, literal('QZ'))).toBe(true);
    const large = await signatureOf(randomBytes(200_000));
    expect(large.bitmap.length).toBeGreaterThan(signature.bitmap.length);
    expect(large.bitmap.length).toBeLessThanOrEqual(64 * 1024);
  });

  it('keeps the largest bitmap for a large, varied binary: most bits set, still proving absences', async () => {
    // 1 MiB of pseudo-random bytes (a fixed seed): about a million distinct trigrams, as in an
    // 8-10 MB executable, set about 85% of the 2^19 bits.
    const bytes = Buffer.alloc(1024 * 1024);
    let state = 0x2545f491;
    for (let i = 0; i < bytes.length; i++) {
      state ^= state << 13;
      state ^= state >>> 17;
      state ^= state << 5;
      bytes[i] = state & 0xff;
    }
    const signature = await signatureOf(bytes);
    expect(signature.bitmap.length).toBe(64 * 1024);
    let ones = 0;
    for (const byte of signature.bitmap) for (let bit = byte; bit; bit &= bit - 1) ones++;
    expect(ones / (signature.bitmap.length * 8)).toBeGreaterThan(0.8);
    expect(
      mayMeetRequirement(signature, { bytes: bytes.subarray(5000, 5028).toString('hex') }),
    ).toBe(true);
    expect(mayMeetRequirement(signature, literal('BENCH_ADDED_RULE_MARKER_7f3a'))).toBe(false);
  });

  it('gives no signature where the bitmap would be mostly ones (prove too little)', async () => {
    const { contentSignature } = await rules.scanBuffer(randomBytes(4 * 1024 * 1024), {
      contentSignature: true,
    });
    expect(contentSignature).toBeUndefined();
  });

  it('costs nothing unless asked: no signature without the option', async () => {
    const result = await rules.scanBuffer(Buffer.from('abcdef'));
    expect(result.contentSignature).toBeUndefined();
  });

  it('covers the members of containers (the delta scan scans them too)', async () => {
    const work = await mkdtemp(path.join(dir, 'zip-'));
    await writeFile(path.join(work, 'inner.txt'), 'MEMBER_ONLY_MARKER_5150');
    execFileSync('zip', ['-q', '-9', 'outer.zip', 'inner.txt'], { cwd: work });
    const analysis = await analyzeFile(rules, path.join(work, 'outer.zip'), {
      archives: DEFAULT_ARCHIVE_SETTINGS,
      contentSignature: true,
    });
    const signature = readContentSignature(analysis.contentSignature)!;
    expect(analysis.members.length).toBe(1);
    expect(mayMeetRequirement(signature, literal('MEMBER_ONLY_MARKER_5150'))).toBe(true);
    expect(mayMeetRequirement(signature, literal('NOT_ANYWHERE_MARKER'))).toBe(false);
  });

  it('gives no signature when content inside was not scanned', async () => {
    const work = await mkdtemp(path.join(dir, 'depth-'));
    await writeFile(path.join(work, 'inner.txt'), 'DEEP_MARKER_77');
    execFileSync('zip', ['-q', 'a.zip', 'inner.txt'], { cwd: work });
    execFileSync('zip', ['-q', 'b.zip', 'a.zip'], { cwd: work });
    const analysis = await analyzeFile(rules, path.join(work, 'b.zip'), {
      archives: { ...DEFAULT_ARCHIVE_SETTINGS, maxDepth: 1 },
      contentSignature: true,
    });
    expect(analysis.unscanned.length).toBeGreaterThan(0);
    expect(analysis.contentSignature).toBeUndefined();
  });

  it('never rules anything out with an absent, foreign or damaged signature', async () => {
    const good = (await rules.scanBuffer(Buffer.from('hello world'), { contentSignature: true }))
      .contentSignature!;
    const absent = literal('ABSENT_MARKER');
    expect(excludedByPrefilter(good, absent)).toBe(true);
    expect(excludedByPrefilter(good, undefined)).toBe(false);
    const damaged = [
      undefined,
      new Uint8Array(0),
      good.subarray(0, 300), // truncated
      Buffer.concat([Buffer.from([1]), good.subarray(1)]), // format 1: made by an older addon
      Buffer.concat([Buffer.from([3]), good.subarray(1)]), // another format
      Buffer.concat([good, Buffer.from([0])]), // not a power of two
      Buffer.concat([Buffer.from([2]), Buffer.alloc(128 * 1024)]), // oversized
      Buffer.from([1, 2, 3]),
    ];
    for (const value of damaged) {
      expect(readContentSignature(value)).toBeUndefined();
      expect(excludedByPrefilter(value, absent)).toBe(false);
    }
  });

  it('accepts only well-formed requirements in a manifest', () => {
    expect(ContentRequirementSchema.safeParse({ any: [literal('abc')] }).success).toBe(true);
    expect(ContentRequirementSchema.safeParse({ any: [] }).success).toBe(false);
    expect(ContentRequirementSchema.safeParse({ all: [] }).success).toBe(false);
    expect(ContentRequirementSchema.safeParse({ bytes: 'xyz' }).success).toBe(false);
    expect(ContentRequirementSchema.safeParse({ bytes: 'abc' }).success).toBe(false);
  });
});
