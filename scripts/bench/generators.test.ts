import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { compileRules } from '../../packages/yara/src';
import { EICAR, planSyntheticCorpus, renderFile, writeSyntheticCorpus } from './corpus';
import { Prng } from './prng';
import { generateRules } from './rules';

const digest = (data: Buffer | string) => createHash('sha256').update(data).digest('hex');

describe('benchmark generators', () => {
  it('gives the same numbers and bytes for the same seed, and different ones for another', () => {
    const a = new Prng('seed-1');
    const b = new Prng('seed-1');
    const c = new Prng('seed-2');
    const seqA = Array.from({ length: 64 }, () => a.nextUint32());
    const seqB = Array.from({ length: 64 }, () => b.nextUint32());
    const seqC = Array.from({ length: 64 }, () => c.nextUint32());

    expect(seqA).toEqual(seqB);
    expect(seqA).not.toEqual(seqC);
    expect(new Prng('x').byteStream('l').read(4096)).toEqual(
      new Prng('x').byteStream('l').read(4096),
    );
  });

  it('writes byte-identical synthetic corpora for the same seed, sizes log-uniform within bounds', async () => {
    const { plants } = generateRules('corpus-test', 50);
    const options = { seed: 'corpus-test', totalBytes: 3 * 1024 * 1024, plants, eicarShare: 0.5 };
    const dirs = await Promise.all(
      [0, 1].map(() => fs.mkdtemp(path.join(os.tmpdir(), 'bench-corpus-test-'))),
    );
    try {
      const [first, second] = await Promise.all(
        dirs.map((dir) => writeSyntheticCorpus(dir, options)),
      );
      const hashes = async (files: { path: string }[]) =>
        Promise.all(files.map(async (file) => digest(await fs.readFile(file.path))));

      expect(first?.files.map((f) => f.size)).toEqual(second?.files.map((f) => f.size));
      expect(await hashes(first?.files ?? [])).toEqual(await hashes(second?.files ?? []));
      expect(first?.files.every((f) => f.size >= 1024 && f.size <= 4 * 1024 * 1024)).toBe(true);
      expect(first?.eicarFiles).toBeGreaterThan(0);
    } finally {
      await Promise.all(dirs.map((dir) => fs.rm(dir, { recursive: true, force: true })));
    }
  });

  it('plants the EICAR string where the plan says', () => {
    const plans = planSyntheticCorpus({
      seed: 'eicar',
      totalBytes: 2 * 1024 * 1024,
      plants: [],
      eicarShare: 1,
    });
    const index = plans.findIndex((plan) => plan.inserts.length > 0);
    const plan = plans[index];
    if (!plan) throw new Error('no file with EICAR planned');

    const data = renderFile('eicar', index, plan);

    expect(data.length).toBe(plan.size);
    expect(data.includes(Buffer.from(EICAR, 'latin1'))).toBe(true);
  });

  it('generates the same rules for the same seed, and they compile with libyara', async () => {
    const first = generateRules('rules-test', 500);
    const again = generateRules('rules-test', 500);
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'bench-rules-test-'));
    try {
      const file = path.join(dir, 'synthetic.yara');
      await fs.writeFile(file, first.source);

      const { rules, warnings } = await compileRules([{ path: file, namespace: 'bench' }]);

      expect(digest(again.source)).toBe(digest(first.source));
      expect(rules.ruleCount).toBe(500);
      expect(warnings).toEqual([]);
      expect(first.source).toMatch(/nocase/);
      expect(first.source).toMatch(/wide/);
      expect(first.source).toMatch(/\[\d+-\d+\]/); // hex jumps
      expect(first.source).toMatch(/\( [0-9A-F ]+ \| [0-9A-F ]+ \)/); // hex alternatives
      expect(first.source).toMatch(/= \/[a-z0-9]+\[0-9a-f\]/); // regular expressions
      expect(first.source).toMatch(/uint16\(0\) == 0x5A4D/);
      expect(first.source).toMatch(/filesize </);
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  });

  it('plants bytes that make their rule match', async () => {
    const generated = generateRules('plant-test', 300);
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'bench-plant-test-'));
    try {
      const file = path.join(dir, 'synthetic.yara');
      await fs.writeFile(file, generated.source);
      const { rules } = await compileRules([{ path: file, namespace: 'bench' }]);
      const filler = new Prng('filler').byteStream('f').read(4096);
      const headers = { MZ: Buffer.from('MZ'), ELF: Buffer.from('7f454c46', 'hex') };

      for (const plant of generated.plants) {
        const padding = Buffer.alloc(Math.max(0, (plant.minFileSize ?? 0) + 1 - 2 * filler.length));
        const data = Buffer.concat([filler, plant.bytes, filler, padding]);
        if (plant.header) headers[plant.header].copy(data, 0);
        const result = await rules.scanBuffer(data);

        expect(result.matches.map((m) => m.rule)).toContain(plant.rule);
      }
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  });

  it('matches clean executables only through the header rules meant to, and few of them', async () => {
    const generated = generateRules('binaryalert-bench-1', 5000);
    // The rules meant to match ordinary ELF files (large ones with three common strings).
    const meantToMatch = new Set(
      [...generated.source.matchAll(/rule (\w+)\n\{[^}]*?\(all of \(\$e\*\) or \$x0\)/g)].map(
        (m) => m[1],
      ),
    );
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'bench-clean-test-'));
    try {
      const file = path.join(dir, 'synthetic.yara');
      await fs.writeFile(file, generated.source);
      const { rules } = await compileRules([{ path: file, namespace: 'bench' }]);
      const elf = Buffer.from('7f454c46', 'hex');
      const executables: string[] = [];
      for (const name of (await fs.readdir('/usr/bin')).sort()) {
        const target = path.join('/usr/bin', name);
        const head = await readHead(target, 4);
        if (head?.equals(elf)) executables.push(target);
        if (executables.length === 150) break;
      }

      const matched = await Promise.all(
        executables.map(async (target) =>
          (await rules.scanFile(target)).matches.map((m) => m.rule),
        ),
      );

      expect(executables.length).toBeGreaterThanOrEqual(50);
      expect(meantToMatch.size).toBeGreaterThan(0);
      expect(matched.flat().filter((rule) => !meantToMatch.has(rule))).toEqual([]);
      expect(matched.filter((rules) => rules.length > 0).length).toBeLessThan(
        executables.length * 0.1,
      );
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
    // 5,000 rules over 150 executables: about 20 s alone, more beside other test files.
  }, 120_000);
});

/** The first `length` bytes of a file, or undefined when it cannot be read. */
async function readHead(file: string, length: number): Promise<Buffer | undefined> {
  try {
    const handle = await fs.open(file);
    try {
      const { buffer, bytesRead } = await handle.read(Buffer.alloc(length), 0, length, 0);
      return buffer.subarray(0, bytesRead);
    } finally {
      await handle.close();
    }
  } catch {
    return undefined;
  }
}
