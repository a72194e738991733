import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { compileRules, type CompiledRules } from '@binaryalert/yara';
import { analyzeFile, DEFAULT_ARCHIVE_SETTINGS, externalsForPath } from './analysis';
import { localFileSummary } from './summary';

describe('externalsForPath', () => {
  it.each([
    ['C:/Windows/evil.EXE', { filename: 'evil.EXE', extension: '.EXE', filetype: 'EXE' }],
    ['/usr/bin/archive.tar.gz', { filename: 'archive.tar.gz', extension: '.gz', filetype: 'GZ' }],
    ['dir/README', { filename: 'README', extension: '', filetype: '' }],
    ['/home/user/.bashrc', { filename: '.bashrc', extension: '', filetype: 'BASHRC' }],
    ['', { filename: '', extension: '', filetype: '' }],
  ])('derives the externals of %p', (filepath, expected) => {
    expect(externalsForPath(filepath)).toEqual({ ...expected, filepath });
  });
});

describe('analyzeFile', () => {
  let dir: string;
  let rules: CompiledRules;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'core-analysis-'));
    const ruleFile = path.join(dir, 'test.yar');
    await writeFile(
      ruleFile,
      [
        'rule has_marker : tag1 { meta: author = "tests" strings: $m = "MARKER" condition: $m }',
        'rule named_exe { condition: filename == "evil.exe" and extension == ".exe" and filetype == "EXE" }',
      ].join('\n'),
    );
    ({ rules } = await compileRules([{ path: ruleFile, namespace: 'test.yar' }]));
  });

  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('returns the hashes, size and matches of a file', async () => {
    const content = Buffer.from('xxMARKERxx');
    const file = path.join(dir, 'sample.bin');
    await writeFile(file, content);

    const analysis = await analyzeFile(rules, file);

    expect(analysis).toMatchObject({
      sha256: createHash('sha256').update(content).digest('hex'),
      md5: createHash('md5').update(content).digest('hex'),
      size: content.length,
    });
    expect(analysis.matches.map((m) => m.rule)).toEqual(['has_marker']);
    expect(analysis.scanMs).toBeGreaterThanOrEqual(0);
  });

  it('computes the MD5 of a file nothing matched only when asked to always', async () => {
    const content = Buffer.from('nothing to see');
    const file = path.join(dir, 'clean.bin');
    await writeFile(file, content);

    const byDefault = await analyzeFile(rules, file);
    const always = await analyzeFile(rules, file, { md5: 'always' });

    expect(byDefault.sha256).toBe(createHash('sha256').update(content).digest('hex'));
    expect(byDefault).not.toHaveProperty('md5');
    expect(always.md5).toBe(createHash('md5').update(content).digest('hex'));
    expect(
      localFileSummary(byDefault, { path: 'x', lastModified: '' }).FileInfo,
    ).not.toHaveProperty('MD5');
  });

  it("computes no MD5 with md5 'never', even for a file a rule matched", async () => {
    const content = Buffer.from('xxMARKERxx');
    const file = path.join(dir, 'matched.bin');
    await writeFile(file, content);

    const analysis = await analyzeFile(rules, file, { md5: 'never' });

    expect(analysis.matches.map((m) => m.rule)).toEqual(['has_marker']);
    expect(analysis.sha256).toBe(createHash('sha256').update(content).digest('hex'));
    expect(analysis).not.toHaveProperty('md5');
  });

  it('passes externals derived from the original file path to the rules', async () => {
    const file = path.join(dir, 'plain.bin');
    await writeFile(file, 'nothing here');

    const withPath = await analyzeFile(rules, file, { filepath: 'C:\\x/evil.exe' });
    const withoutPath = await analyzeFile(rules, file);

    expect(withPath.matches.map((m) => m.rule)).toEqual(['named_exe']);
    expect(withoutPath.matches).toEqual([]);
  });

  it('hashes an empty file', async () => {
    const file = path.join(dir, 'empty.bin');
    await writeFile(file, '');

    const analysis = await analyzeFile(rules, file);

    expect(analysis.sha256).toBe(createHash('sha256').digest('hex'));
    expect(analysis.size).toBe(0);
  });

  it('scans the members of a tar.gz with the archive settings, naming the member from the label', async () => {
    const staging = await mkdtemp(path.join(dir, 'stage-'));
    await writeFile(path.join(staging, 'evil.exe'), 'xxMARKERxx');
    const archive = path.join(dir, 'sample.tgz');
    execFileSync('tar', ['-czf', archive, '-C', staging, 'evil.exe']);

    const opened = await analyzeFile(rules, archive, {
      filepath: 'uploads/sample.tgz',
      archives: DEFAULT_ARCHIVE_SETTINGS,
    });
    const outerOnly = await analyzeFile(rules, archive, { filepath: 'uploads/sample.tgz' });

    expect(opened.label).toBe('uploads/sample.tgz');
    expect(opened.matches.map((m) => [m.rule, m.member?.path])).toEqual([
      ['has_marker', 'uploads/sample.tgz!evil.exe'],
      ['named_exe', 'uploads/sample.tgz!evil.exe'],
    ]);
    expect(opened.matches[0]?.member?.sha256).toBe(
      createHash('sha256').update('xxMARKERxx').digest('hex'),
    );
    expect(opened.coverage).toBe('complete');
    expect(outerOnly.matches).toEqual([]);
    expect(outerOnly.members).toEqual([]);
  });

  it('analyzes bytes in memory as it does the file holding them, containers inside too', async () => {
    const staging = await mkdtemp(path.join(dir, 'stage-'));
    await writeFile(path.join(staging, 'evil.exe'), 'xxMARKERxx');
    const archive = path.join(dir, 'in-memory.tgz');
    execFileSync('tar', ['-czf', archive, '-C', staging, 'evil.exe']);
    const options = { filepath: 'uploads/in-memory.tgz', archives: DEFAULT_ARCHIVE_SETTINGS };

    const fromFile = await analyzeFile(rules, archive, options);
    const fromMemory = await analyzeFile(rules, await readFile(archive), options);

    expect({ ...fromMemory, scanMs: 0 }).toEqual({ ...fromFile, scanMs: 0 });
    expect(fromMemory.matches).toHaveLength(2);
  });

  it('calls the coverage partial when a bound stops extraction', async () => {
    const archive = path.join(dir, 'zeros.gz');
    await writeFile(archive, execFileSync('gzip', ['-c'], { input: Buffer.alloc(32 << 20) }));

    const analysis = await analyzeFile(rules, archive, {
      archives: { ...DEFAULT_ARCHIVE_SETTINGS, maxExpandedBytes: 1 << 20 },
    });

    expect(analysis.coverage).toBe('partial');
    expect(analysis.unscanned).toEqual([
      expect.objectContaining({ path: 'zeros.gz!zeros', reason: 'size-limit' }),
    ]);
  });

  it('rejects a missing file', async () => {
    await expect(analyzeFile(rules, path.join(dir, 'missing'))).rejects.toThrow();
  });
});
