import { createHash } from 'node:crypto';
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
    const late = await analyzeFile(rules, archive, {
      label: 'up/sample.7z',
      archives: { ...DEFAULT_ARCHIVE_SETTINGS, maxRatio: 0 },
      budgetMs: 1,
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
});
