import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { symlinkSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';

import {
  FileOpenError,
  FileTypeError,
  ScanError,
  ScanTimeoutError,
  type CompiledRules,
  type RuleMatch,
} from './index';
import { compileTexts, makeTempDir, SLOW_RULE, type TempDir } from './testing';

const EICAR = 'X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*';

const EICAR_RULE = `
rule eicar_test_file : test malware {
  meta:
    description = "EICAR test file"
    severity = 3
    confirmed = true
    disabled = false
  strings:
    $eicar = "EICAR-STANDARD-ANTIVIRUS-TEST-FILE"
    $prefix = "X5O!P%@AP"
    $private = "STANDARD" private
  condition:
    $eicar and $prefix and $private
}`;

function ruleNames(matches: RuleMatch[]): string[] {
  return matches.map((m) => `${m.namespace}:${m.rule}`).sort();
}

describe('CompiledRules scans', () => {
  let dir: TempDir;
  beforeEach(() => {
    dir = makeTempDir();
  });
  afterEach(() => dir.remove());

  it('reports rule, namespace, tags, meta and matched strings with offsets', async () => {
    const rules = await compileTexts(dir, { 'public/eicar.yar': EICAR_RULE });

    const result = await rules.scanBuffer(Buffer.from(`padding${EICAR}`));

    expect(result.size).toBe(7 + EICAR.length);
    expect(result.matches).toEqual([
      {
        rule: 'eicar_test_file',
        namespace: 'public/eicar.yar',
        tags: ['test', 'malware'],
        meta: { description: 'EICAR test file', severity: 3, confirmed: true, disabled: false },
        // private strings are not reported
        strings: [
          { identifier: '$eicar', offsets: [7 + EICAR.indexOf('EICAR-STANDARD')] },
          { identifier: '$prefix', offsets: [7] },
        ],
      },
    ]);
  });

  it('keeps rules with the same name apart by namespace', async () => {
    const rules = await compileTexts(dir, {
      'vendor_a/rules.yar': 'rule same_name { strings: $a = "needle" condition: $a }',
      'vendor_b/rules.yar': 'rule same_name { strings: $b = "needle" condition: $b }',
      'vendor_c/rules.yar': 'rule same_name { strings: $c = "other" condition: $c }',
    });

    const { matches } = await rules.scanBuffer(Buffer.from('a needle in a haystack'));

    expect(ruleNames(matches)).toEqual([
      'vendor_a/rules.yar:same_name',
      'vendor_b/rules.yar:same_name',
    ]);
  });

  it('supports the modules third-party rules import (magic, hash, pe, elf, math)', async () => {
    const rules = await compileTexts(dir, {
      modules: `
        import "magic"
        import "hash"
        import "pe"
        import "elf"
        import "math"
        rule plain_text { condition: magic.mime_type() == "text/plain" }
        rule hello_md5 { condition: hash.md5(0, filesize) == "5d41402abc4b2a76b9719d911017c592" }
        rule not_pe { condition: not pe.is_pe and not defined elf.type and math.entropy(0, filesize) > 0 }`,
    });

    const { matches } = await rules.scanBuffer(Buffer.from('hello'));

    expect(matches.map((m) => m.rule).sort()).toEqual(['hello_md5', 'not_pe', 'plain_text']);
  });

  it('returns no matches for clean data', async () => {
    const rules = await compileTexts(dir, { eicar: EICAR_RULE });

    const result = await rules.scanBuffer(Buffer.from('nothing to see here'));

    expect(result.matches).toEqual([]);
  });

  it('scans a file path with the same results as its bytes in a Buffer', async () => {
    const rules = await compileTexts(dir, { eicar: EICAR_RULE });
    const content = Buffer.from(`header\n${EICAR}\ntrailer`);
    const file = dir.write('sample.com', content);

    const fromFile = await rules.scanFile(file);
    const fromBuffer = await rules.scanBuffer(content);

    expect(fromFile.matches).toHaveLength(1);
    expect(fromFile).toEqual(fromBuffer);
    expect(fromFile.size).toBe(content.length);
  });

  it('scans a large Buffer in place: only the bytes of a subarray, at their own offsets, as from a file', async () => {
    const rules = await compileTexts(dir, { eicar: EICAR_RULE });
    const whole = Buffer.alloc(3 << 20, 0x41);
    const at = 2 << 20;
    whole.write(EICAR, at, 'latin1');
    const before = whole.subarray(0, at); // 2 MiB, the EICAR string just past its end
    const from = whole.subarray(1 << 20); // 2 MiB, the EICAR string 1 MiB in
    const file = dir.write('from.bin', from);

    const [cut, inside, fromFile] = await Promise.all([
      rules.scanBuffer(before, { sha256: true }),
      rules.scanBuffer(from, { sha256: true }),
      rules.scanFile(file, { sha256: true }),
    ]);

    expect(cut.matches).toEqual([]);
    expect(cut).toMatchObject({
      size: before.length,
      sha256: createHash('sha256').update(before).digest('hex'),
    });
    expect(inside.matches).toHaveLength(1);
    expect(inside.matches[0]!.strings[0]!.offsets).toEqual([
      at - (1 << 20) + EICAR.indexOf('EICAR-STANDARD'),
    ]);
    expect(inside).toEqual(fromFile);
  });

  it('computes SHA-256 and MD5 equal to node:crypto for files and buffers', async () => {
    const rules = await compileTexts(dir, { eicar: EICAR_RULE });
    const content = Buffer.alloc(300_000);
    for (let i = 0; i < content.length; i++) content[i] = (i * 7919) & 0xff;
    const file = dir.write('data.bin', content);
    const sha256 = createHash('sha256').update(content).digest('hex');
    const md5 = createHash('md5').update(content).digest('hex');

    const fromFile = await rules.scanFile(file, { sha256: true, md5: 'always' });
    const fromBuffer = await rules.scanBuffer(content, { sha256: true, md5: 'always' });
    const withoutHashes = await rules.scanFile(file);

    expect(fromFile).toMatchObject({ sha256, md5, size: content.length });
    expect(fromBuffer).toMatchObject({ sha256, md5 });
    expect(withoutHashes.sha256).toBeUndefined();
    expect(withoutHashes.md5).toBeUndefined();
  });

  it("computes MD5 with 'if-matched' only for data a rule matched", async () => {
    const rules = await compileTexts(dir, { eicar: EICAR_RULE });
    const infected = Buffer.from(`header\n${EICAR}\n`);
    const clean = Buffer.from('nothing to see here');
    const options = { sha256: true, md5: 'if-matched' } as const;

    const matched = await rules.scanFile(dir.write('infected.com', infected), options);
    const unmatched = await rules.scanFile(dir.write('clean.txt', clean), options);

    expect(matched).toMatchObject({
      sha256: createHash('sha256').update(infected).digest('hex'),
      md5: createHash('md5').update(infected).digest('hex'),
    });
    expect(matched.matches).toHaveLength(1);
    expect(unmatched.sha256).toBe(createHash('sha256').update(clean).digest('hex'));
    expect(unmatched).not.toHaveProperty('md5');
  });

  it('rejects an unknown md5 mode before scanning', async () => {
    const rules = await compileTexts(dir, { eicar: EICAR_RULE });

    await expect(
      rules.scanBuffer(Buffer.from('x'), { md5: 'sometimes' as unknown as 'always' }),
    ).rejects.toThrow(/md5 must be 'always' or 'if-matched'/);
  });

  it('scans a 0-byte file as empty data', async () => {
    const rules = await compileTexts(dir, {
      empty: 'rule empty_file { condition: filesize == 0 }',
    });
    const file = dir.write('empty', '');

    const result = await rules.scanFile(file, { sha256: true, md5: 'always' });

    expect(result).toEqual({
      size: 0,
      matches: [expect.objectContaining({ rule: 'empty_file' })],
      sha256: createHash('sha256').digest('hex'),
      md5: createHash('md5').digest('hex'),
    });
  });

  it('bounds the offsets reported per string', async () => {
    const rules = await compileTexts(dir, {
      many: 'rule many { strings: $a = "abc" condition: #a > 20 }',
    });
    const data = Buffer.from('abc-'.repeat(50));

    const defaults = await rules.scanBuffer(data);
    const three = await rules.scanBuffer(data, { maxOffsetsPerString: 3 });
    const all = await rules.scanBuffer(data, { maxOffsetsPerString: 1000 });

    expect(defaults.matches[0]?.strings[0]?.offsets).toHaveLength(10);
    expect(three.matches[0]?.strings[0]).toEqual({ identifier: '$a', offsets: [0, 4, 8] });
    expect(all.matches[0]?.strings[0]?.offsets).toHaveLength(50);
  });

  it('stops looking for more occurrences in fast mode', async () => {
    const rules = await compileTexts(dir, { fast: 'rule f { strings: $a = "abc" condition: $a }' });
    const data = Buffer.from('abc'.repeat(50));

    const normal = await rules.scanBuffer(data, { maxOffsetsPerString: 100 });
    const fast = await rules.scanBuffer(data, { maxOffsetsPerString: 100, fastMode: true });

    expect(normal.matches[0]?.strings[0]?.offsets).toHaveLength(50);
    expect(fast.matches[0]?.strings[0]?.offsets).toEqual([0]);
  });

  describe('externals', () => {
    let rules: CompiledRules;
    beforeEach(async () => {
      rules = await compileTexts(
        dir,
        {
          ext: `
            rule exe_name { condition: filename matches /\\.exe$/ and extension == ".exe" }
            rule big_limit { condition: limit > 100 }
            rule flagged { condition: flag }
            rule ratio_high { condition: ratio > 0.5 }`,
        },
        { externals: { filename: '', extension: '', limit: 0, flag: false, ratio: 0.25 } },
      );
    });

    it('uses the declared defaults when a scan sets nothing', async () => {
      const { matches } = await rules.scanBuffer(Buffer.from('x'));

      expect(matches).toEqual([]);
    });

    it('sets string, integer, boolean and float values per scan', async () => {
      const { matches } = await rules.scanBuffer(Buffer.from('x'), {
        externals: {
          filename: 'setup.exe',
          extension: '.exe',
          limit: 101,
          flag: true,
          ratio: 0.75,
        },
      });

      expect(matches.map((m) => m.rule).sort()).toEqual([
        'big_limit',
        'exe_name',
        'flagged',
        'ratio_high',
      ]);
    });

    it('accepts a whole number for a float external', async () => {
      const { matches } = await rules.scanBuffer(Buffer.from('x'), { externals: { ratio: 1 } });

      expect(matches.map((m) => m.rule)).toEqual(['ratio_high']);
    });

    it('gives each of many concurrent scans of the same rules its own values', async () => {
      const names = Array.from({ length: 24 }, (_, i) =>
        i % 2 === 0 ? `file${i}.exe` : `file${i}.txt`,
      );

      const results = await Promise.all(
        names.map((filename) =>
          rules.scanBuffer(Buffer.from('x'), {
            externals: { filename, extension: filename.slice(filename.lastIndexOf('.')) },
          }),
        ),
      );

      results.forEach((result, i) => {
        expect(result.matches.map((m) => m.rule)).toEqual(i % 2 === 0 ? ['exe_name'] : []);
      });
    });

    it('resets externals a previous scan set when the next scan leaves them out', async () => {
      // Scans borrow pooled scanners: values must not leak from one scan into the next.
      for (let round = 0; round < 8; round++) {
        const set = await rules.scanBuffer(Buffer.from('x'), {
          externals: { filename: 'a.exe', extension: '.exe', limit: 500, flag: true, ratio: 0.9 },
        });
        const unset = await rules.scanBuffer(Buffer.from('x'));

        expect(set.matches).toHaveLength(4);
        expect(unset.matches).toEqual([]);
      }
    });

    it('rejects a value for an external that was not declared', async () => {
      const error = await rules
        .scanBuffer(Buffer.from('x'), { externals: { undeclared: 'x' } })
        .catch((e: unknown) => e);

      expect(error).toBeInstanceOf(ScanError);
      expect(error).toMatchObject({
        code: 'ERROR_INVALID_ARGUMENT',
        message: expect.stringContaining("'undeclared' was not declared"),
      });
    });

    it('rejects a value of the wrong type', async () => {
      const error = await rules
        .scanBuffer(Buffer.from('x'), { externals: { flag: 'yes' } })
        .catch((e: unknown) => e);

      expect(error).toBeInstanceOf(ScanError);
      expect(error).toMatchObject({ code: 'ERROR_INVALID_EXTERNAL_VARIABLE_TYPE' });
    });
  });

  it('rejects with ScanTimeoutError when a scan exceeds its timeout', async () => {
    const rules = await compileTexts(dir, { slow: SLOW_RULE });

    const started = Date.now();
    const error = await rules
      .scanBuffer(Buffer.alloc(1 << 16), { timeoutSeconds: 1 })
      .catch((e: unknown) => e);

    expect(error).toBeInstanceOf(ScanTimeoutError);
    expect(error).toMatchObject({ code: 'ERROR_SCAN_TIMEOUT' });
    // Without the timeout this scan would run for hours.
    expect(Date.now() - started).toBeLessThan(20_000);
  });

  it('scans normally with the same rules after a scan timed out', async () => {
    const rules = await compileTexts(dir, {
      slow: SLOW_RULE,
      eicar: EICAR_RULE,
    });
    await rules.scanBuffer(Buffer.alloc(1 << 16), { timeoutSeconds: 1 }).catch(() => undefined);

    const { matches } = await rules.scanBuffer(Buffer.from(EICAR), { timeoutSeconds: 1 });

    expect(matches.map((m) => m.rule)).toEqual(['eicar_test_file']);
  });

  describe('bad paths', () => {
    let rules: CompiledRules;
    beforeEach(async () => {
      rules = await compileTexts(dir, { always: 'rule always { condition: true }' });
    });

    it('rejects a missing file with FileOpenError naming the path', async () => {
      const path = join(dir.path, 'vanished.bin');

      const error = await rules.scanFile(path).catch((e: unknown) => e);

      expect(error).toBeInstanceOf(FileOpenError);
      expect(error).toMatchObject({ code: 'ENOENT', path, message: expect.stringContaining(path) });
    });

    it('rejects a symlink loop with FileOpenError', async () => {
      const a = join(dir.path, 'loop-a');
      symlinkSync(join(dir.path, 'loop-b'), a);
      symlinkSync(a, join(dir.path, 'loop-b'));

      const error = await rules.scanFile(a).catch((e: unknown) => e);

      expect(error).toBeInstanceOf(FileOpenError);
      expect(error).toMatchObject({ code: 'ELOOP', path: a });
    });

    it('rejects a directory with FileTypeError', async () => {
      const error = await rules.scanFile(dir.path).catch((e: unknown) => e);

      expect(error).toBeInstanceOf(FileTypeError);
      expect(error).toMatchObject({
        path: dir.path,
        message: expect.stringContaining('directory'),
      });
    });

    it('rejects a FIFO with FileTypeError without blocking on it', async () => {
      const fifo = join(dir.path, 'fifo');
      execFileSync('mkfifo', [fifo]);

      const error = await rules.scanFile(fifo).catch((e: unknown) => e);

      expect(error).toBeInstanceOf(FileTypeError);
      expect(error).toMatchObject({ path: fifo, message: expect.stringContaining('FIFO') });
    });

    it('rejects a socket and a device with FileTypeError', async () => {
      const socketPath = join(dir.path, 'sock');
      const server: Server = createServer();
      await new Promise<void>((resolve) => server.listen(socketPath, resolve));
      try {
        await expect(rules.scanFile(socketPath)).rejects.toBeInstanceOf(FileTypeError);
        await expect(rules.scanFile('/dev/zero')).rejects.toBeInstanceOf(FileTypeError);
      } finally {
        await new Promise((resolve) => server.close(resolve));
      }
    });

    it('follows a symlink to a regular file', async () => {
      const target = dir.write('target.bin', 'data');
      const link = join(dir.path, 'link.bin');
      symlinkSync(target, link);

      const result = await rules.scanFile(link);

      expect(result).toMatchObject({
        size: 4,
        matches: [expect.objectContaining({ rule: 'always' })],
      });
    });
  });
});
