import { createHash, randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { compileRules, type CompiledRules } from '@binaryalert/yara';
import { analyzeFile, DEFAULT_ARCHIVE_SETTINGS, type FileAnalysis } from './analysis';

// Encrypted 7z archives made by Debian's 7z (p7zip-full), opened by the 7-Zip WebAssembly
// fallback because libarchive cannot decrypt 7z AES.
describe('analyzeFile on encrypted 7z', () => {
  let dir: string;
  let tempDir: string;
  let rules: CompiledRules;
  const payload = 'xxMARKERxx';
  const sha256 = (data: string | Buffer) => createHash('sha256').update(data).digest('hex');

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'core-7z-'));
    tempDir = path.join(dir, 'tmp');
    await writeFile(
      path.join(dir, 'test.yar'),
      'rule has_marker { strings: $m = "MARKER" condition: $m }',
    );
    ({ rules } = await compileRules([{ path: path.join(dir, 'test.yar'), namespace: 'test.yar' }]));
    await mkdir(tempDir);
  });

  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  afterEach(async () => {
    // Member files are gone whatever happened, and none was ever named after a member.
    expect(await readdir(tempDir)).toEqual([]);
  });

  /** Made by Debian's tools: `zip`, and `7z a -p<password>` (with `-mhe=on` when asked). */
  const kit = {
    stage(files: Record<string, string | Buffer>): string {
      const staging = mkdtempSync(path.join(dir, 'stage-'));
      for (const [name, content] of Object.entries(files)) {
        mkdirSync(path.dirname(path.join(staging, name)), { recursive: true });
        writeFileSync(path.join(staging, name), content);
      }
      return staging;
    },
    zip(name: string, files: Record<string, string | Buffer>): string {
      execFileSync('zip', ['-q', '-X', '-r', path.join(dir, name), ...Object.keys(files)], {
        cwd: this.stage(files),
      });
      return path.join(dir, name);
    },
    sevenZip(
      name: string,
      files: Record<string, string | Buffer>,
      password: string,
      options: { encryptHeaders?: boolean } = {},
    ): string {
      const args = [
        'a',
        '-bd',
        '-y',
        `-p${password}`,
        ...(options.encryptHeaders ? ['-mhe=on'] : []),
      ];
      execFileSync('7z', [...args, path.join(dir, name), ...Object.keys(files)], {
        cwd: this.stage(files),
        stdio: 'ignore',
      });
      return path.join(dir, name);
    },
  };
  const analyze = (file: string, settings = {}) =>
    analyzeFile(rules, file, {
      label: 'up/sample.7z',
      archives: { ...DEFAULT_ARCHIVE_SETTINGS, ...settings },
      tempDir,
    });
  const located = (analysis: FileAnalysis) =>
    analysis.matches.map((match) => [match.member?.path, match.member?.sha256]);

  it('opens an encrypted 7z given as bytes in memory as it does the file (7-Zip reads a copy in tempDir, removed after)', async () => {
    const archive = kit.sevenZip('in-memory.7z', { 'a.exe': payload }, 'infected');
    const bytes = readFileSync(archive);
    const options = {
      label: 'up/in-memory.7z',
      archives: { ...DEFAULT_ARCHIVE_SETTINGS, passwords: ['infected'] },
      tempDir,
    };

    const fromMemory = await analyzeFile(rules, bytes, options);
    const fromFile = await analyzeFile(rules, archive, options);

    expect(located(fromMemory)).toEqual([['up/in-memory.7z!a.exe', sha256(payload)]]);
    expect(fromMemory.coverage).toBe('complete');
    // The object's MD5 (stored and alerted with a match inside) is the bytes', as from the file.
    expect(fromMemory.md5).toBe(createHash('md5').update(bytes).digest('hex'));
    expect({ ...fromMemory, scanMs: 0 }).toEqual({ ...fromFile, scanMs: 0 });
  });

  it('leaves an encrypted 7z in memory `encrypted` when no password fits, never a silent skip', async () => {
    const archive = kit.sevenZip('in-memory-locked.7z', { 'a.exe': payload }, 'secret');

    const fromMemory = await analyzeFile(rules, readFileSync(archive), {
      label: 'up/in-memory-locked.7z',
      archives: { ...DEFAULT_ARCHIVE_SETTINGS, passwords: ['infected'] },
      tempDir,
    });

    expect(fromMemory.matches).toEqual([]);
    expect(fromMemory.coverage).toBe('partial');
    expect(fromMemory.unscanned.map((entry) => entry.reason)).toContain('encrypted');
  });

  it.each([
    ['7z -p (names readable)', false],
    ['7z -p -mhe=on (names encrypted too)', true],
  ])(
    'scans the members of %s with a password from the list, nested containers too',
    async (_name, encryptHeaders) => {
      const inner = kit.zip(`inner-${String(encryptHeaders)}.zip`, { 'deep/evil.exe': payload });
      const archive = kit.sevenZip(
        `locked-${String(encryptHeaders)}.7z`,
        { 'dir/evil.exe': payload, 'clean.txt': 'nothing', 'inner.zip': readFileSync(inner) },
        'virus',
        { encryptHeaders },
      );

      const analysis = await analyze(archive);

      expect(located(analysis).sort()).toEqual(
        [
          ['up/sample.7z!dir/evil.exe', sha256(payload)],
          // zip stores so small a file as is: the zip's own bytes match too.
          ['up/sample.7z!inner.zip', sha256(readFileSync(inner))],
          ['up/sample.7z!inner.zip!deep/evil.exe', sha256(payload)],
        ].sort(),
      );
      expect(analysis.members.map((m) => m.path).sort()).toEqual([
        'up/sample.7z!clean.txt',
        'up/sample.7z!dir/evil.exe',
        'up/sample.7z!inner.zip',
        'up/sample.7z!inner.zip!deep/evil.exe',
      ]);
      expect(analysis.unscanned).toEqual([]);
      expect(analysis.coverage).toBe('complete');
      // A match inside: the object's MD5 is there to be stored and alerted.
      expect(analysis.md5).toMatch(/^[0-9a-f]{32}$/);
    },
  );

  it('scans an encrypted member named like a plain member libarchive already scanned', async () => {
    // `7z a` a plain benign file, `7z a -p` the payload under another name, `7z rn` it to the
    // plain one's name: two entries `payload.exe`, only the plain one readable by libarchive.
    const staging = kit.stage({ 'payload.exe': 'benign', 'other.exe': payload });
    const archive = path.join(dir, 'same-name.7z');
    const sevenZip = (...args: string[]) =>
      execFileSync('7z', [...args], { cwd: staging, stdio: 'ignore' });
    sevenZip('a', '-bd', '-y', archive, 'payload.exe');
    sevenZip('a', '-bd', '-y', '-pinfected', archive, 'other.exe');
    sevenZip('rn', '-bd', '-y', '-pinfected', archive, 'other.exe', 'payload.exe');

    const analysis = await analyze(archive);

    expect(located(analysis)).toEqual([['up/sample.7z!payload.exe', sha256(payload)]]);
    expect(analysis.members.map((m) => [m.path, m.size])).toEqual([
      ['up/sample.7z!payload.exe', 'benign'.length],
      ['up/sample.7z!payload.exe', payload.length],
    ]);
    expect(analysis.unscanned).toEqual([]);
  });

  it("computes no MD5 for an encrypted 7z with a match inside when md5 is 'never'", async () => {
    const archive = kit.sevenZip('locked-no-md5.7z', { 'evil.exe': payload }, 'virus');

    const analysis = await analyzeFile(rules, archive, {
      label: 'up/sample.7z',
      archives: DEFAULT_ARCHIVE_SETTINGS,
      tempDir,
      md5: 'never',
    });

    expect(located(analysis)).toEqual([['up/sample.7z!evil.exe', sha256(payload)]]);
    expect(analysis).not.toHaveProperty('md5');
  });

  it.each([false, true])(
    'reports the members as encrypted when no password fits (-mhe=on: %s)',
    async (encryptHeaders) => {
      const archive = kit.sevenZip(
        `other-${String(encryptHeaders)}.7z`,
        { 'evil.exe': payload },
        'not-in-the-list',
        {
          encryptHeaders,
        },
      );

      const analysis = await analyze(archive);

      expect(analysis.matches).toEqual([]);
      expect(analysis.coverage).toBe('partial');
      expect(analysis.unscanned.map((u) => u.reason)).toEqual(['encrypted']);
    },
  );

  it('stops at the member limit and the size limit, listing the rest', async () => {
    const archive = kit.sevenZip(
      'many.7z',
      { 'a.bin': 'a'.repeat(1000), 'b.bin': 'b'.repeat(1000), 'c.exe': payload },
      'infected',
    );

    const exitCode = process.exitCode;
    const byMembers = await analyze(archive, { maxMembers: 1 });
    const bySize = await analyze(archive, { maxExpandedBytes: 1500 });

    expect(byMembers.members.map((m) => m.path)).toEqual(['up/sample.7z!a.bin']);
    expect(byMembers.unscanned.map((u) => [u.path, u.reason])).toEqual([
      ['up/sample.7z!b.bin', 'member-limit'],
      ['up/sample.7z!c.exe', 'member-limit'],
    ]);
    expect(bySize.members.map((m) => m.path)).toEqual(['up/sample.7z!a.bin']);
    expect(bySize.unscanned.map((u) => u.reason)).toEqual(['size-limit', 'size-limit']);
    expect(bySize.coverage).toBe('partial');
    // Stopping 7-Zip leaves the process's exit code alone (manage.ts scan's must stay its own).
    expect(process.exitCode).toBe(exitCode);
  });

  it('stops an encrypted bomb at the ratio ceiling and at the time budget', async () => {
    const archive = kit.sevenZip('bomb.7z', { 'zeros.bin': Buffer.alloc(64 << 20) }, 'malware');

    const analysis = await analyze(archive);
    // Time for the object's own scan (the budget cuts it too), not for 64 MiB out of 7-Zip.
    const late = await analyzeFile(rules, archive, {
      label: 'up/sample.7z',
      archives: { ...DEFAULT_ARCHIVE_SETTINGS, maxRatio: 0 },
      budgetMs: 300,
      tempDir,
    });

    expect(analysis.unscanned).toEqual([
      expect.objectContaining({ path: 'up/sample.7z!zeros.bin', reason: 'ratio-limit' }),
    ]);
    expect(analysis.expandedBytes).toBeLessThan(64 << 20);
    expect(late.unscanned.map((u) => u.reason)).toEqual(['time-limit']);
  });

  it('keeps a truncated encrypted 7z as its outer bytes, reported, never a crash', async () => {
    const archive = kit.sevenZip(
      'whole.7z',
      { 'evil.exe': payload, 'pad.bin': 'p'.repeat(5000) },
      'infected',
    );
    const bytes = readFileSync(archive);
    const truncated = path.join(dir, 'truncated.7z');
    await writeFile(truncated, bytes.subarray(0, bytes.length - 40));

    const analysis = await analyze(truncated);

    expect(analysis.sha256).toBe(
      createHash('sha256')
        .update(bytes.subarray(0, bytes.length - 40))
        .digest('hex'),
    );
    expect(analysis.coverage).toBe('partial');
    expect(analysis.unscanned.length).toBeGreaterThan(0);
  });

  describe('nested inside another container', () => {
    const sevenZipBytes = (
      name: string,
      files: Record<string, string | Buffer>,
      password: string,
      options: { encryptHeaders?: boolean } = {},
    ) => readFileSync(kit.sevenZip(name, files, password, options));
    const tarGz = (name: string, files: Record<string, string | Buffer>): string => {
      execFileSync('tar', ['-czf', path.join(dir, name), ...Object.keys(files)], {
        cwd: kit.stage(files),
      });
      return path.join(dir, name);
    };

    it.each([
      ['a zip', false, (files: Record<string, Buffer>) => kit.zip('outer-7z.zip', files)],
      ['a tar.gz', true, (files: Record<string, Buffer>) => tarGz('outer-7z.tar.gz', files)],
    ])(
      'opens an encrypted 7z inside %s (-mhe=on: %s) and names its members outer!inner.7z!member',
      async (_what, encryptHeaders, outer) => {
        const inner = sevenZipBytes(
          `nested-${String(encryptHeaders)}.7z`,
          { 'dir/evil.exe': payload, 'clean.txt': 'nothing' },
          'infected',
          { encryptHeaders },
        );
        const archive = outer({ 'sub/inner.7z': inner, 'readme.txt': Buffer.from('hello') });

        const analysis = await analyze(archive);

        expect(located(analysis)).toEqual([
          ['up/sample.7z!sub/inner.7z!dir/evil.exe', sha256(payload)],
        ]);
        expect(
          analysis.members
            .map((m) => [m.path, m.depth])
            .sort((a, b) => String(a[0]).localeCompare(String(b[0]))),
        ).toEqual([
          ['up/sample.7z!readme.txt', 1],
          ['up/sample.7z!sub/inner.7z', 1],
          ['up/sample.7z!sub/inner.7z!clean.txt', 2],
          ['up/sample.7z!sub/inner.7z!dir/evil.exe', 2],
        ]);
        expect(analysis.unscanned).toEqual([]);
        expect(analysis.coverage).toBe('complete');
        expect(analysis.md5).toMatch(/^[0-9a-f]{32}$/);
      },
    );

    it.each([false, true])(
      'keeps a nested 7z no password opens as encrypted (-mhe=on: %s), its copy removed',
      async (encryptHeaders) => {
        const inner = sevenZipBytes(
          `nested-wrong-${String(encryptHeaders)}.7z`,
          { 'evil.exe': payload },
          'not-in-the-list',
          { encryptHeaders },
        );
        const archive = kit.zip(`outer-wrong-${String(encryptHeaders)}.zip`, { 'inner.7z': inner });

        const analysis = await analyze(archive);

        expect(analysis.matches).toEqual([]);
        expect(analysis.unscanned).toEqual([
          expect.objectContaining({
            path: encryptHeaders ? 'up/sample.7z!inner.7z' : 'up/sample.7z!inner.7z!evil.exe',
            reason: 'encrypted',
          }),
        ]);
        expect(analysis.coverage).toBe('partial');
      },
    );

    it('honours the depth limit below and above a nested encrypted 7z', async () => {
      const deepest = kit.zip('deepest.zip', { 'deep.exe': payload });
      const inner = sevenZipBytes('depth.7z', { 'inner.zip': readFileSync(deepest) }, 'malware');
      const archive = kit.zip('depth-outer.zip', { 'inner.7z': inner });

      // The 7z is at depth 1, its zip at depth 2: with max depth 2 the zip is not opened.
      const limited = await analyze(archive, { maxDepth: 2 });
      // With max depth 1 the 7z itself is not opened (and never handed to 7-Zip).
      const shallow = await analyze(archive, { maxDepth: 1 });

      expect(limited.members.map((m) => m.path)).toEqual([
        'up/sample.7z!inner.7z',
        'up/sample.7z!inner.7z!inner.zip',
      ]);
      expect(limited.unscanned.map((u) => [u.path, u.reason])).toEqual([
        ['up/sample.7z!inner.7z!inner.zip', 'depth-limit'],
      ]);
      expect(shallow.unscanned.map((u) => [u.path, u.reason])).toEqual([
        ['up/sample.7z!inner.7z', 'depth-limit'],
      ]);
      expect(shallow.matches).toEqual([]);
    });

    it('treats hostile member names inside a nested 7z as labels, writing nothing they name', async () => {
      const stage = kit.stage({ 'sub/.keep': '' });
      const sub = path.join(stage, 'sub');
      writeFileSync(path.join(stage, 'escape.exe'), payload);
      const absolute = path.join(dir, `absolute-${process.pid}.exe`);
      writeFileSync(absolute, payload);
      const sevenZipFile = path.join(dir, 'hostile-names.7z');
      // -spf keeps `../escape.exe` and the absolute path as the stored names.
      execFileSync(
        '7z',
        ['a', '-bd', '-y', '-pvirus', '-spf', sevenZipFile, '../escape.exe', absolute],
        {
          cwd: sub,
          stdio: 'ignore',
        },
      );
      await rm(absolute);
      const archive = kit.zip('hostile-outer.zip', { 'x.7z': readFileSync(sevenZipFile) });

      const analysis = await analyze(archive);

      expect(
        located(analysis)
          .map(([p]) => p)
          .sort(),
      ).toEqual([`up/sample.7z!x.7z!${absolute}`, 'up/sample.7z!x.7z!../escape.exe'].sort());
      // Nothing was created where the names point.
      expect(await readdir(path.dirname(absolute))).not.toContain(path.basename(absolute));
      expect(await readdir(path.join(tempDir, '..'))).not.toContain('escape.exe');
    });

    it('reports a truncated or damaged 7z inside a zip and scans the rest, never a crash', async () => {
      const whole = sevenZipBytes(
        'to-cut.7z',
        { 'evil.exe': payload, 'pad.bin': randomBytesText(20_000) },
        'infected',
      );
      // Its packed data damaged, its headers intact: libarchive hands it over, 7-Zip's CRC fails.
      const damaged = Buffer.from(whole);
      damaged.fill(0x41, 64, 192);
      const archive = kit.zip('truncated-outer.zip', {
        'cut.7z': whole.subarray(0, whole.length - 64),
        'damaged.7z': damaged,
        'plain.exe': payload,
      });

      const analysis = await analyze(archive);

      // (zip stores so small a file as is: the zip's own bytes match too.)
      expect(located(analysis).filter(([where]) => where !== undefined)).toEqual([
        ['up/sample.7z!plain.exe', sha256(payload)],
      ]);
      expect(analysis.coverage).toBe('partial');
      // Truncated: its headers (at the end) are gone. Damaged: no password extracts it whole.
      expect(analysis.unscanned.map((u) => [u.path, u.reason]).sort()).toEqual([
        ['up/sample.7z!cut.7z', 'corrupt'],
        // (libarchive stops at the first encrypted entry of a solid block: the one it lists.)
        ['up/sample.7z!damaged.7z!evil.exe', 'encrypted'],
      ]);
    });

    it('stops an encrypted bomb nested in a zip at the ratio ceiling', async () => {
      const bomb = sevenZipBytes(
        'nested-bomb.7z',
        { 'zeros.bin': Buffer.alloc(64 << 20) },
        'virus',
      );
      const archive = kit.zip('bomb-outer.zip', { 'bomb.7z': bomb });

      const analysis = await analyze(archive);

      expect(analysis.unscanned).toEqual([
        expect.objectContaining({ path: 'up/sample.7z!bomb.7z!zeros.bin', reason: 'ratio-limit' }),
      ]);
      expect(analysis.expandedBytes).toBeLessThan(64 << 20);
    });
  });

  describe('in a worker thread', () => {
    const hostileWorker = async (name: string, source: string) => {
      const file = path.join(dir, name);
      await writeFile(file, source);
      return { file, execArgv: [] };
    };

    it('keeps the event loop running while 7-Zip extracts', async () => {
      const archive = kit.sevenZip('busy.7z', { 'zeros.bin': Buffer.alloc(64 << 20) }, 'infected');
      const ticks: number[] = [];
      const timer = setInterval(() => ticks.push(performance.now()), 10);
      const started = performance.now();

      const analysis = await analyze(archive, { maxRatio: 0 });
      const totalMs = performance.now() - started;
      clearInterval(timer);

      expect(analysis.members.map((m) => m.path)).toEqual(['up/sample.7z!zeros.bin']);
      // Extracting 64 MiB is most of the analysis; on the event loop it would be one long gap.
      const marks = [started, ...ticks, started + totalMs];
      const gaps = marks.slice(1).map((at, i) => at - marks[i]!);
      expect(Math.max(...gaps)).toBeLessThan(totalMs / 2);
      expect(ticks.length).toBeGreaterThan(5);
    });

    it.each([
      ['throws', 'throw new Error("boom")', 'corrupt', /worker died: boom/],
      ['exits', 'process.exit(7)', 'corrupt', /exited \(code 7\)/],
      ['spins past the deadline', 'for (;;) {}', 'time-limit', /was stopped/],
    ])(
      'reports the 7z as unscanned when its worker %s, never a crash',
      async (_what, source, reason, detail) => {
        const archive = kit.sevenZip(
          `hostile-worker-${reason}.7z`,
          { 'evil.exe': payload },
          'infected',
        );
        const script = await hostileWorker(`worker-${_what.replace(/\W/g, '-')}.js`, source);

        const analysis = await analyzeFile(rules, archive, {
          label: 'up/sample.7z',
          archives: DEFAULT_ARCHIVE_SETTINGS,
          budgetMs: 1500,
          tempDir,
          sevenZipWorker: script,
        });

        expect(analysis.unscanned).toEqual([
          expect.objectContaining({
            path: 'up/sample.7z!evil.exe',
            reason,
            detail: expect.stringMatching(detail),
          }),
        ]);
        expect(analysis.coverage).toBe('partial');
      },
    );
  });
});

/** Text that does not compress (so a truncated archive loses real data). */
function randomBytesText(length: number): string {
  return randomBytes(length).toString('base64').slice(0, length);
}
