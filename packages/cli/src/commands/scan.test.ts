import { execFileSync, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { createHash } from 'node:crypto';
import {
  mkdirSync,
  readFileSync,
  symlinkSync,
  truncateSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import type { LocalFileSummary } from '@binaryalert/core';
import { compileRules } from '@binaryalert/yara';
import { ArchiveKit } from '@binaryalert/testing';
import { runCaptured, spawnManage, temporaryDirectory } from '../rules/testing';
import { scanPaths, type ScanEntry } from './scan';

const EICAR = 'X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*';
const RULES = `
rule eicar_test_file {
  meta: description = "EICAR test file" author = "test" reference = "https://www.eicar.org/"
  strings: $eicar = "EICAR-STANDARD-ANTIVIRUS-TEST-FILE"
  condition: $eicar
}
rule double_extension {
  meta: description = "document.pdf.exe"
  condition: filename matches /\\.pdf\\.exe$/
}
`;

describe('manage.ts scan', () => {
  let tmp: ReturnType<typeof temporaryDirectory>;
  let rulesDir: string;
  let compiled: string;
  let data: string;

  beforeEach(async () => {
    tmp = temporaryDirectory('scan');
    rulesDir = path.join(tmp.dir, 'rules');
    mkdirSync(path.join(rulesDir, 'own'), { recursive: true });
    writeFileSync(path.join(rulesDir, 'own', 'test.yara'), RULES);
    compiled = path.join(tmp.dir, 'compiled.bin');
    const { rules } = await compileRules([
      { path: path.join(rulesDir, 'own', 'test.yara'), namespace: 'own/test.yara' },
    ]);
    await rules.save(compiled);
    data = path.join(tmp.dir, 'data');
    mkdirSync(path.join(data, 'sub'), { recursive: true });
    writeFileSync(path.join(data, 'clean.txt'), 'nothing to see here');
    writeFileSync(path.join(data, 'sub', 'eicar.com'), EICAR);
  });
  afterEach(() => tmp.remove());

  it('prints a table of the files under a directory and exits 1 when one matched', async () => {
    const run = await runCaptured(['scan', '--rules', compiled, data]);

    expect(run.code).toBe(1);
    const lines = run.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^STATUS\s+PATH\s+MATCHED RULES$/);
    // Rows come in the order files finish.
    expect(lines.slice(1, 3).sort()).toEqual([
      expect.stringMatching(
        new RegExp(`^MATCH\\s+${data}/sub/eicar\\.com\\s+own/test\\.yara:eicar_test_file$`),
      ),
      expect.stringMatching(new RegExp(`^clean\\s+${data}/clean\\.txt$`)),
    ]);
    expect(lines[3]).toMatch(/^scanned 2 files \(0\.0 MB\) in \d+\.\d s: 1 matched, 1 clean$/);
    expect(lines).toHaveLength(4);
    expect(run.stderr).toBe('');
  });

  it('exits 0 when every file is clean', async () => {
    const run = await runCaptured(['scan', '--rules', compiled, path.join(data, 'clean.txt')]);

    expect(run.code).toBe(0);
    expect(run.stdout).toContain('0 matched, 1 clean');
  });

  it('prints per-file summaries as JSON, with hashes and externals from the path', async () => {
    const renamed = path.join(data, 'invoice.pdf.exe');
    writeFileSync(renamed, EICAR);

    const run = await runCaptured([
      'scan',
      '--json',
      '--rules',
      compiled,
      renamed,
      path.join(data, 'clean.txt'),
    ]);

    expect(run.code).toBe(1);
    const summaries = JSON.parse(run.stdout) as LocalFileSummary[];
    expect(summaries).toHaveLength(2);
    const matched = summaries.find((s) => s.NumMatchedRules > 0) as LocalFileSummary;
    const clean = summaries.find((s) => s.NumMatchedRules === 0) as LocalFileSummary;
    expect(matched.FileInfo).toMatchObject({
      SHA256: createHash('sha256').update(EICAR).digest('hex'),
      Path: renamed,
      // Deprecated copies for scripts written against older versions.
      S3Location: renamed,
    });
    expect(matched.FileInfo).not.toHaveProperty('S3Metadata');
    expect(matched.FileInfo.LastModified).toMatch(/^\d{4}-\d\d-\d\dT/);
    expect(matched.FileInfo.S3LastModified).toBe(matched.FileInfo.LastModified);
    expect(matched.NumMatchedRules).toBe(2);
    expect(
      Object.values(matched.MatchedRules)
        .map((rule) => rule.RuleName)
        .sort(),
    ).toEqual(['double_extension', 'eicar_test_file']);
    expect(matched.MatchedRules.Rule1).toMatchObject({ RuleFile: 'own/test.yara' });
    expect(clean).toMatchObject({ NumMatchedRules: 0, MatchedRules: {} });
    // MD5 costs a second pass over every byte and only the output would use it: asked with --md5.
    expect(matched.FileInfo).not.toHaveProperty('MD5');
    expect(clean.FileInfo).not.toHaveProperty('MD5');
    expect(run.stderr).toMatch(/^scanned 2 files .*: 1 matched, 1 clean\n$/);
  });

  it("prints every file's MD5, matched or clean, with --md5", async () => {
    const clean = path.join(data, 'clean.txt');

    const run = await runCaptured(['scan', '--jsonl', '--md5', '--rules', compiled, data]);

    expect(run.code).toBe(1);
    const md5ByPath = Object.fromEntries(
      run.stdout
        .trimEnd()
        .split('\n')
        .map((line) => JSON.parse(line) as LocalFileSummary)
        .map((summary) => [summary.FileInfo.Path, summary.FileInfo.MD5]),
    );
    expect(md5ByPath).toEqual({
      [clean]: createHash('md5').update(readFileSync(clean)).digest('hex'),
      [path.join(data, 'sub', 'eicar.com')]: createHash('md5').update(EICAR).digest('hex'),
    });
  });

  it('prints JSON Lines with --jsonl and only matched files with --matches-only', async () => {
    const jsonl = await runCaptured(['scan', '--jsonl', '--rules', compiled, data]);
    const matchesOnly = await runCaptured(['scan', '--matches-only', '--rules', compiled, data]);
    const jsonMatches = await runCaptured([
      'scan',
      '--json',
      '--matches-only',
      '--rules',
      compiled,
      path.join(data, 'clean.txt'),
    ]);

    const lines = jsonl.stdout.trimEnd().split('\n');
    expect(lines).toHaveLength(2);
    expect(
      lines.map((line) => (JSON.parse(line) as LocalFileSummary).FileInfo.Path).sort(),
    ).toEqual([path.join(data, 'clean.txt'), path.join(data, 'sub', 'eicar.com')]);
    expect(jsonl.stderr).toMatch(/^scanned 2 files .*: 1 matched, 1 clean\n$/);
    expect(matchesOnly.stdout).not.toContain('clean.txt');
    expect(matchesOnly.stdout).toMatch(
      /^MATCH\s+\S+eicar\.com\s+own\/test\.yara:eicar_test_file$/m,
    );
    expect(matchesOnly.stdout).toMatch(/1 matched, 1 clean$/m);
    expect(JSON.parse(jsonMatches.stdout)).toEqual([]);
    expect(jsonMatches.code).toBe(0);
  });

  it('refuses --json together with --jsonl', async () => {
    const run = await runCaptured(['scan', '--json', '--jsonl', '--rules', compiled, data]);

    expect(run.code).toBe(2);
    expect(run.stderr).toContain('give either --json or --jsonl, not both');
  });

  it('reports each bad input by path and scans the rest without blocking', async () => {
    const bad = path.join(tmp.dir, 'bad');
    mkdirSync(bad);
    execFileSync('mkfifo', [path.join(bad, 'fifo')]);
    const socketPath = path.join(bad, 'socket');
    const server = net.createServer();
    await new Promise<void>((resolve) => server.listen(socketPath, resolve));
    symlinkSync(path.join(bad, 'loop-b'), path.join(bad, 'loop-a'));
    symlinkSync(path.join(bad, 'loop-a'), path.join(bad, 'loop-b'));
    symlinkSync(path.join(bad, 'missing-target'), path.join(bad, 'dangling'));
    symlinkSync(bad, path.join(bad, 'cycle')); // a directory link back to itself
    writeFileSync(path.join(bad, 'empty'), '');
    writeFileSync(path.join(bad, 'large'), Buffer.alloc(2 * 1024 * 1024, 'a'));
    writeFileSync(path.join(bad, 'z-eicar.txt'), EICAR);
    const missing = path.join(tmp.dir, 'does-not-exist');

    try {
      const run = await runCaptured([
        'scan',
        '--rules',
        compiled,
        '--max-size-mb',
        '1',
        missing,
        '/dev/null',
        bad,
      ]);

      expect(run.code).toBe(1);
      const errors = run.stderr.trimEnd().split('\n').sort();
      expect(errors).toEqual(
        [
          `error: ${missing}: no such file or directory`,
          'error: /dev/null: not a regular file (a character device)',
          `error: ${bad}/dangling: dangling symbolic link`,
          `error: ${bad}/fifo: not a regular file (a FIFO)`,
          `error: ${bad}/large: larger than the maximum of 1.0 MB (2.0 MB; see --max-size-mb)`,
          `error: ${bad}/loop-a: symbolic link loop`,
          `error: ${bad}/loop-b: symbolic link loop`,
          `error: ${bad}/socket: not a regular file (a socket)`,
          `skipped: ${bad}/cycle: directory already scanned (reached again through a symbolic link)`,
          `skipped: ${bad}/empty: empty file (0 bytes)`,
        ].sort(),
      );
      expect(run.stdout).toMatch(
        new RegExp(`^MATCH\\s+${bad}/z-eicar\\.txt\\s+own/test\\.yara:eicar_test_file$`, 'm'),
      );
      expect(run.stdout).toMatch(
        /scanned 1 files .* in .*: 1 matched, 0 clean, 8 could not be scanned, 2 skipped/,
      );
    } finally {
      server.close();
    }
  });

  it('prints names with line breaks and escape sequences escaped, so no name forges a row', async () => {
    const hostile = path.join(tmp.dir, 'hostile');
    mkdirSync(hostile);
    writeFileSync(path.join(hostile, 'a\nMATCH  forged.exe  eicar_test_file'), 'x');
    writeFileSync(path.join(hostile, 'b\x1b[2K\r.com'), EICAR);
    symlinkSync(path.join(hostile, 'gone'), path.join(hostile, 'c\nscanned 0 files'));

    const run = await runCaptured(['scan', '--rules', compiled, hostile]);

    expect(run.stdout.trimEnd().split('\n')).toEqual([
      'STATUS PATH  MATCHED RULES',
      `clean  ${hostile}/a\\x0aMATCH  forged.exe  eicar_test_file`,
      `MATCH  ${hostile}/b\\x1b[2K\\x0d.com  own/test.yara:eicar_test_file`,
      expect.stringMatching(/^scanned 2 files .*: 1 matched, 1 clean, 1 could not be scanned$/),
    ]);
    expect(run.stderr).toBe(`error: ${hostile}/c\\x0ascanned 0 files: dangling symbolic link\n`);
  });

  it('shows a progress line on a terminal only', async () => {
    const descriptor = Object.getOwnPropertyDescriptor(process.stderr, 'isTTY');
    Object.defineProperty(process.stderr, 'isTTY', { value: true, configurable: true });
    try {
      const run = await runCaptured(['scan', '--rules', compiled, data]);

      expect(run.stderr).toContain('\r\x1b[Kscanning: ');
      expect(run.stderr).toMatch(/scanning: [12] files?, \d+\.\d MB, [\d.]+ MB\/s, [01] matched/);
      expect(run.stderr.endsWith('\r\x1b[K')).toBe(true);
      expect(run.stdout).not.toContain('scanning:');
    } finally {
      if (descriptor) Object.defineProperty(process.stderr, 'isTTY', descriptor);
      else delete (process.stderr as { isTTY?: boolean }).isTTY;
    }
  });

  it('runs as the manage.ts child process on the bundled EICAR sample with the default rules', () => {
    const root = path.resolve(__dirname, '../../../..');
    const result = spawnSync(
      'pnpm',
      ['exec', 'tsx', 'manage.ts', 'scan', 'rules/samples/positive/eicar_test_file'],
      {
        cwd: root,
        encoding: 'utf8',
        timeout: 60_000,
      },
    );

    expect(result.status).toBe(1);
    expect(result.stdout).toMatch(
      /^MATCH\s+rules\/samples\/positive\/eicar_test_file\/eicar\.com\s+binaryalert\/eicar\.yara:eicar_test_file$/m,
    );
  });

  it('closes the --json array and says it was interrupted when Ctrl-C stops the scan', async () => {
    const tree = path.join(tmp.dir, 'many');
    for (let d = 0; d < 20; d++) {
      mkdirSync(path.join(tree, `dir-${d}`), { recursive: true });
      for (let f = 0; f < 200; f++)
        writeFileSync(path.join(tree, `dir-${d}`, `file-${f}`), Buffer.alloc(20_000, f));
    }
    const child = spawnManage(['scan', '--json', '--concurrency', '1', '--rules', compiled, tree]);
    let stdout = '';
    let stderr = '';
    let interrupted = false;
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      // Ctrl-C once the first files are out.
      stdout += chunk;
      if (!interrupted && stdout.includes('SHA256')) interrupted = child.kill('SIGINT');
    });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));

    const [code] = (await once(child, 'close')) as [number | null];

    expect(code).toBe(130);
    const files = JSON.parse(stdout) as LocalFileSummary[];
    expect(files.length).toBeGreaterThan(0);
    expect(files.length).toBeLessThan(4000);
    expect(stderr).toMatch(
      new RegExp(
        `^interrupted \\(Ctrl-C\\), the rest not scanned: scanned ${files.length} files `,
        'm',
      ),
    );
  }, 60_000);

  it('reports a file that shrinks while it is scanned as an error and goes on with the rest', async () => {
    // Sparse: a quarter of a gigabyte to hash and scan, no disk writes.
    const growing = path.join(tmp.dir, 'download.part');
    writeFileSync(growing, EICAR);
    truncateSync(growing, 256 * 1024 * 1024);
    const child = spawnManage(['scan', '--rules', compiled, growing, data]);
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    // Truncated as soon as the scan has it mapped (the scan then takes a while longer).
    const watch = setInterval(() => {
      const maps = readFileSync(`/proc/${child.pid}/maps`, 'utf8');
      if (maps.includes(growing)) {
        truncateSync(growing, 0);
        clearInterval(watch);
      }
    }, 2);

    const [code, signal] = (await once(child, 'close')) as [number | null, string | null];
    clearInterval(watch);

    expect({ code, signal }).toEqual({ code: 1, signal: null });
    expect(stderr).toBe(
      `error: ${growing}: the file shrank while it was scanned (${256 * 1024 * 1024} bytes when opened, 0 after)\n`,
    );
    expect(stdout).toMatch(
      new RegExp(`^MATCH\\s+${data}/sub/eicar\\.com\\s+own/test\\.yara:eicar_test_file$`, 'm'),
    );
    expect(stdout).toMatch(/scanned 2 files .*: 1 matched, 1 clean, 1 could not be scanned$/m);
  }, 60_000);

  it('compiles a rules directory for the scan with --rules-dir', async () => {
    const run = await runCaptured(['scan', '--rules-dir', rulesDir, path.join(data, 'sub')]);

    expect(run.code).toBe(1);
    expect(run.stdout).toMatch(/MATCH\s+\S+eicar\.com\s+own\/test\.yara:eicar_test_file/);
  });

  it('fails naming the file when the compiled rules are corrupt', async () => {
    const corrupt = path.join(tmp.dir, 'corrupt.bin');
    writeFileSync(corrupt, 'this is not a compiled YARA rules file');

    const run = await runCaptured(['scan', '--rules', corrupt, data]);

    expect(run.code).toBe(1);
    expect(run.stderr).toContain(`cannot load compiled rules from ${corrupt}`);
    expect(run.stdout).toBe('');
  });

  it.each([
    [['scan'], "missing required argument 'paths'"],
    [['scan', '--max-size-mb', 'lots', '.'], '--max-size-mb must be a positive number'],
    [['scan', '--concurrency', '0', '.'], '--concurrency must be a positive integer'],
    [
      ['scan', '--rules', '/nonexistent/compiled.bin', '.'],
      '--rules /nonexistent/compiled.bin: no such file',
    ],
    [['scan', '--rules', 'x', '--rules-dir', 'y', '.'], 'either --rules or --rules-dir'],
    [['scan', '--no-such-flag', '.'], "unknown option '--no-such-flag'"],
  ])('exits 2 on usage errors: %j', async (args, message) => {
    const run = await runCaptured(args);

    expect(run.code).toBe(2);
    expect(run.stderr).toContain(message);
  });
});

describe('manage.ts scan inside containers', () => {
  let tmp: ReturnType<typeof temporaryDirectory>;
  let compiled: string;
  let kit: ArchiveKit;

  beforeEach(async () => {
    tmp = temporaryDirectory('scan-archives');
    const ruleFile = path.join(tmp.dir, 'test.yara');
    writeFileSync(ruleFile, RULES);
    compiled = path.join(tmp.dir, 'compiled.bin');
    const { rules } = await compileRules([{ path: ruleFile, namespace: 'own/test.yara' }]);
    await rules.save(compiled);
    kit = new ArchiveKit(path.join(tmp.dir, 'samples'));
  });
  afterEach(() => tmp.remove());

  it('names the member that matched, in the table and in --json', async () => {
    const archive = kit.tar('drop.tar.gz', { 'bin/invoice.pdf.exe': EICAR }, '-z');

    const table = await runCaptured(['scan', '--rules', compiled, archive]);
    const json = await runCaptured(['scan', '--json', '--rules', compiled, archive]);

    expect(table.code).toBe(1);
    expect(table.stdout).toContain(
      `own/test.yara:eicar_test_file in ${archive}!bin/invoice.pdf.exe, ` +
        `own/test.yara:double_extension in ${archive}!bin/invoice.pdf.exe`,
    );
    const [summary] = JSON.parse(json.stdout) as LocalFileSummary[];
    expect(Object.values(summary!.MatchedRules)).toEqual([
      expect.objectContaining({
        RuleName: 'eicar_test_file',
        MemberPath: `${archive}!bin/invoice.pdf.exe`,
        MemberSHA256: createHash('sha256').update(EICAR).digest('hex'),
      }),
      expect.objectContaining({ RuleName: 'double_extension' }),
    ]);
    expect(summary).toMatchObject({ Coverage: 'complete', NumMembersScanned: 1, Unscanned: [] });
  });

  it('opens a zip encrypted with a password given by --password, and says when none fits', async () => {
    const archive = kit.zip('sample.zip', { 'eicar.com': EICAR }, 'S3cret!');

    const opened = await runCaptured([
      'scan',
      '--password',
      'S3cret!',
      '--rules',
      compiled,
      archive,
    ]);
    const locked = await runCaptured(['scan', '--json', '--rules', compiled, archive]);

    expect(opened.stdout).toContain(`eicar_test_file in ${archive}!eicar.com`);
    expect(JSON.parse(locked.stdout)).toEqual([
      expect.objectContaining({
        NumMatchedRules: 0,
        Coverage: 'partial',
        Unscanned: [expect.objectContaining({ Path: `${archive}!eicar.com`, Reason: 'encrypted' })],
      }),
    ]);
  });

  it('names the member of an encrypted 7z inside a tar.gz (7-Zip in its worker thread)', async () => {
    const locked = kit.sevenZip('locked.7z', { 'eicar.com': EICAR }, 'malware');
    const archive = kit.tar('drop.tar.gz', { 'x/locked.7z': readFileSync(locked) }, '-z');

    const json = await runCaptured(['scan', '--json', '--rules', compiled, archive]);

    const [summary] = JSON.parse(json.stdout) as LocalFileSummary[];
    expect(Object.values(summary!.MatchedRules)).toEqual([
      expect.objectContaining({
        RuleName: 'eicar_test_file',
        MemberPath: `${archive}!x/locked.7z!eicar.com`,
        MemberSHA256: createHash('sha256').update(EICAR).digest('hex'),
      }),
    ]);
    expect(summary).toMatchObject({ Coverage: 'complete', Unscanned: [] });
  });

  it('reports a zip bomb as partly scanned, and --no-archives leaves containers closed', async () => {
    const bomb = kit.zipBomb('bomb.zip');
    const archive = kit.tar('drop.tar.gz', { 'eicar.com': EICAR }, '-z');

    const run = await runCaptured(['scan', '--rules', compiled, bomb]);
    const closed = await runCaptured(['scan', '--no-archives', '--rules', compiled, archive]);

    expect(run.code).toBe(0);
    expect(run.stdout).toContain('(partial: 1 unscanned: ratio-limit)');
    expect(run.stdout).toMatch(/0 matched, 1 clean, 1 partly scanned$/m);
    expect(closed.code).toBe(0);
    expect(closed.stdout).toContain('0 matched, 1 clean');
  });
});

describe('scanPaths', () => {
  /** One rule compiled from `source` in `dir`. */
  async function oneRule(dir: string, source: string) {
    const rulesFile = path.join(dir, 'r.yara');
    writeFileSync(rulesFile, source);
    return (await compileRules([{ path: rulesFile, namespace: 'r.yara' }])).rules;
  }

  /** Every entry scanPaths reports for `inputs`, in order; `onEntry` sees each as it comes. */
  async function scanAll(
    inputs: string[],
    rules: Awaited<ReturnType<typeof oneRule>>,
    concurrency: number,
    onEntry: (entry: ScanEntry) => void = () => undefined,
  ): Promise<ScanEntry[]> {
    const entries: ScanEntry[] = [];
    await scanPaths(inputs, {
      rules,
      maxSizeBytes: 1024,
      timeoutSeconds: 10,
      concurrency,
      onEntry: (entry) => {
        entries.push(entry);
        onEntry(entry);
      },
    });
    return entries;
  }

  it("scans files whose names, or whose directories' names, are not UTF-8, showing those bytes as \\xNN", async () => {
    const tmp = temporaryDirectory('bytes');
    try {
      const rules = await oneRule(
        tmp.dir,
        'rule eicar { strings: $a = "EICAR-STANDARD" condition: $a }',
      );
      const root = Buffer.from(path.join(tmp.dir, 'data'));
      mkdirSync(root);
      const join = (...parts: (Buffer | string)[]): Buffer =>
        Buffer.concat(
          parts.flatMap((part, i) =>
            i ? [Buffer.from('/'), Buffer.from(part)] : [Buffer.from(part)],
          ),
        );
      writeFileSync(join(root, Buffer.from('bad\xff.exe', 'latin1')), EICAR);
      mkdirSync(join(root, Buffer.from('dir\xfe', 'latin1')));
      writeFileSync(join(root, Buffer.from('dir\xfe', 'latin1'), 'ü.com'), EICAR);

      const entries = await scanAll([root.toString()], rules, 1);

      expect(
        entries.map((entry) => [
          entry.path,
          entry.status,
          entry.status === 'scanned' ? entry.analysis.matches.map((m) => m.rule) : entry.message,
        ]),
      ).toEqual([
        [`${root.toString()}/bad\\xff.exe`, 'scanned', ['eicar']],
        [`${root.toString()}/dir\\xfe/ü.com`, 'scanned', ['eicar']],
      ]);
    } finally {
      tmp.remove();
    }
  });

  it('walks a tree 2,000 directories deep, as deep as PATH_MAX allows', async () => {
    const tmp = temporaryDirectory('deep');
    try {
      const rules = await oneRule(tmp.dir, 'rule any_x { strings: $x = "x" condition: $x }');
      const deepest = path.join(tmp.dir, 'tree', ...Array.from({ length: 2000 }, () => 'a'));
      expect(deepest.length).toBeLessThan(4096 - 'x.bin'.length);
      mkdirSync(deepest, { recursive: true });
      writeFileSync(path.join(tmp.dir, 'tree', 'top.bin'), 'x');
      writeFileSync(path.join(deepest, 'x.bin'), 'x');

      const entries = await scanAll([path.join(tmp.dir, 'tree')], rules, 2);

      expect(entries.map((entry) => [entry.path, entry.status]).sort()).toEqual([
        [path.join(deepest, 'x.bin'), 'scanned'],
        [path.join(tmp.dir, 'tree', 'top.bin'), 'scanned'],
      ]);
    } finally {
      // rmSync recurses too, and overflows the stack on this tree.
      execFileSync('rm', ['-rf', tmp.dir]);
    }
  });

  it('reports a file that vanished after it was listed and scans the others', async () => {
    const tmp = temporaryDirectory('vanish');
    try {
      const rules = await oneRule(tmp.dir, 'rule any_a { strings: $a = "a" condition: $a }');
      for (const name of ['1', '2', '3']) writeFileSync(path.join(tmp.dir, `file-${name}`), 'a');

      const entries = await scanAll(
        [path.join(tmp.dir, 'file-1'), path.join(tmp.dir, 'file-2'), path.join(tmp.dir, 'file-3')],
        rules,
        1,
        (entry) => {
          if (entry.path.endsWith('file-1')) unlinkSync(path.join(tmp.dir, 'file-2'));
        },
      );

      expect(entries.map((entry) => entry.status)).toEqual(['scanned', 'error', 'scanned']);
      expect(entries[1]).toMatchObject({
        path: path.join(tmp.dir, 'file-2'),
        // The walk reaches a path only when a worker is free, so it finds the file gone.
        message: 'no such file or directory',
      });
    } finally {
      tmp.remove();
    }
  });
});
