/**
 * Issue #14's rows: the analysis per core against the original BinaryAlert's engine path (Python)
 * and `yara -p 1`, `manage.ts scan` on every core against `yara -p N` (start-up included), all on
 * ELF executables with a generated set of 5,000 rules (plus the project's own); the CLI's start-up;
 * `scan` memory on a generated tree of 200,000 files; parallel ranged GETs against one stream.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';

import { CreateBucketCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { downloadObject, privateTempDir } from '../../packages/analyzer/src/download';
import { startS3 } from '../../packages/testing/src';
import type { BenchContext } from './context';
import { copyElfCorpus } from './corpus';
import { interleave, MB, median, runTimed, type TimedRun } from './measure';
import type { Row, SectionResult, TargetCheck } from './report';
import { writeRulesDir } from './rules-section';

const SECTION = 'speed (#14)';
// Debian's interpreter, where python3-yara is installed (not a python3 earlier on PATH).
const PYTHON = '/usr/bin/python3';
const ORIGINAL_ENGINE = path.join(__dirname, 'original_engine.py');

/** The ELF corpus of a full run: the size of the one the issue measured. */
const ELF_CORPUS_MB = 828;

const seconds = (runs: TimedRun[]) => median(runs.map((r) => r.wallMs)) / 1000;
const matchCount = (stdout: string) => stdout.split('\n').filter((l) => l.trim() !== '').length;

/** Per core and on every core, on one corpus and one compiled rule set. */
async function engines(ctx: BenchContext, rules: string, dir: string, mb: number) {
  const manage = path.join(ctx.repoRoot, 'manage.ts');
  const pinned = (cores: string, command: string, args: string[]) => () =>
    runTimed('taskset', ['-c', cores, command, ...args], { okCodes: [0, 1] });
  const scanArgs = (concurrency: number) => [
    manage,
    'scan',
    '--no-archives', // the same work as the others: each file's own bytes
    '--jsonl',
    '--matches-only',
    '--concurrency',
    String(concurrency),
    '--rules',
    rules,
    dir,
  ];
  const all = `0-${ctx.cores - 1}`;
  const runs = await interleave<TimedRun>(
    [
      { name: 'yara1', run: pinned('0', 'yara', ['-N', '-C', '-r', '-p', '1', rules, dir]) },
      { name: 'python1', run: pinned('0', PYTHON, [ORIGINAL_ENGINE, rules, dir]) },
      { name: 'manage1', run: pinned('0', process.execPath, scanArgs(1)) },
      {
        name: 'yaraN',
        run: pinned(all, 'yara', ['-N', '-C', '-r', '-p', String(ctx.cores), rules, dir]),
      },
      // scan's default concurrency: one file per core, as `yara -p N` runs N threads.
      { name: 'manageN', run: pinned(all, process.execPath, scanArgs(ctx.cores)) },
    ],
    ctx.reps,
  );
  const get = (name: string) => runs.get(name) ?? [];
  const t = Object.fromEntries([...runs.keys()].map((k) => [k, seconds(get(k))]));
  const matches = {
    yara: matchCount(get('yara1')[0]?.stdout ?? ''),
    python: matchCount(get('python1')[0]?.stdout ?? ''),
    // One JSON line per matched file; count the rules in each.
    manage: (get('manage1')[0]?.stdout ?? '')
      .split('\n')
      .filter((l) => l.trim() !== '')
      .reduce((n, l) => n + (JSON.parse(l) as { NumMatchedRules: number }).NumMatchedRules, 0),
  };
  const row = (metric: string, name: string, note = ''): Row => ({
    section: SECTION,
    metric,
    value: mb / (t[name] ?? NaN),
    unit: 'MB/s',
    note: `wall ${(t[name] ?? NaN).toFixed(2)} s, CPU ${median(get(name).map((r) => r.cpuSeconds)).toFixed(2)} s${note}`,
  });
  const cpu = Object.fromEntries(
    [...runs.keys()].map((k) => [k, median(get(k).map((r) => r.cpuSeconds))]),
  );
  return {
    t: t as Record<'yara1' | 'python1' | 'manage1' | 'yaraN' | 'manageN', number>,
    cpu: cpu as Record<'yara1' | 'python1' | 'manage1' | 'yaraN' | 'manageN', number>,
    matches,
    rows: [
      row(
        '1 core: original engine (Python hashlib + yara-python)',
        'python1',
        `, ${matches.python} matches`,
      ),
      row('1 core: yara -p 1', 'yara1', `, ${matches.yara} matches`),
      row(
        '1 core: manage.ts scan --concurrency 1 (start-up included)',
        'manage1',
        `, ${matches.manage} matches`,
      ),
      row(`${ctx.cores} cores: yara -p ${ctx.cores}`, 'yaraN'),
      row(`${ctx.cores} cores: manage.ts scan --concurrency ${ctx.cores}`, 'manageN'),
    ],
  };
}

/** A tree of `files` small files, 1,000 per directory, EICAR in every 10,000th. */
async function writeTree(dir: string, files: number): Promise<void> {
  const eicar = 'X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*';
  for (let d = 0; d * 1000 < files; d++) {
    const sub = path.join(dir, `d${String(d).padStart(4, '0')}`);
    await fs.mkdir(sub, { recursive: true });
    const writes: Promise<void>[] = [];
    for (let f = d * 1000; f < Math.min(files, (d + 1) * 1000); f++) {
      writes.push(
        fs.writeFile(path.join(sub, `f${f}.txt`), f % 10_000 === 0 ? eicar : `file ${f}\n`),
      );
    }
    await Promise.all(writes);
  }
}

/** Peak RSS of `manage.ts scan` (table output, every row printed) on trees of two sizes. */
async function treeMemory(ctx: BenchContext, rules: string) {
  const sizes = ctx.quick ? [2_000, 20_000] : [20_000, 200_000];
  const out: { files: number; run: TimedRun }[] = [];
  for (const files of sizes) {
    const dir = path.join(ctx.workDir, `tree-${files}`);
    ctx.log(`speed: writing a ${files}-file tree`);
    await writeTree(dir, files);
    const run = await runTimed(
      process.execPath,
      [path.join(ctx.repoRoot, 'manage.ts'), 'scan', '--rules', rules, dir],
      { okCodes: [1] },
    );
    const summary = run.stdout.trimEnd().split('\n').at(-1) ?? '';
    if (!summary.startsWith(`scanned ${files} files`)) {
      throw new Error(
        `scan of the ${files}-file tree ended with: ${summary || run.stderr.slice(-300)}`,
      );
    }
    out.push({ files, run });
    await fs.rm(dir, { recursive: true, force: true });
  }
  return out;
}

/** One 64 MiB object from the local S3: parallel ranged GETs against one stream. */
async function rangedDownload(ctx: BenchContext) {
  const s3 = await startS3();
  try {
    const bucket = 'bench-ranged';
    await s3.client.send(new CreateBucketCommand({ Bucket: bucket }));
    const size = (ctx.quick ? 32 : 64) * MB;
    await s3.client.send(
      new PutObjectCommand({ Bucket: bucket, Key: 'big.bin', Body: Buffer.alloc(size, 7) }),
    );
    const fetch = (thresholdBytes: number) => async () => {
      const temp = await privateTempDir(ctx.workDir);
      const started = performance.now();
      try {
        const result = await downloadObject(
          s3.client,
          { bucket, key: 'big.bin', size },
          temp.dir,
          size,
          { thresholdBytes, partBytes: 8 * MB, partsInFlight: 4 },
        );
        if (result.kind !== 'downloaded') throw new Error(`download: ${result.kind}`);
        return performance.now() - started;
      } finally {
        await temp.remove();
      }
    };
    const runs = await interleave(
      [
        { name: 'ranged', run: fetch(16 * MB) },
        { name: 'single', run: fetch(Number.POSITIVE_INFINITY) },
      ],
      ctx.reps,
    );
    return {
      size,
      ranged: median(runs.get('ranged') ?? []) / 1000,
      single: median(runs.get('single') ?? []) / 1000,
    };
  } finally {
    await s3.stop();
  }
}

/** `manage.ts --help` and `scan` of one small file, interleaved with bare `node -e 0`. */
async function startUp(ctx: BenchContext, rules: string) {
  const manage = path.join(ctx.repoRoot, 'manage.ts');
  const small = path.join(ctx.workDir, 'small.txt');
  await fs.writeFile(small, 'a small clean file\n');
  const wall =
    (command: string, args: string[], okCodes = [0]) =>
    async () =>
      (await runTimed(command, args, { okCodes })).wallMs;
  const runs = await interleave(
    [
      { name: 'node', run: wall(process.execPath, ['-e', '0']) },
      { name: 'help', run: wall(process.execPath, [manage, '--help']) },
      { name: 'scan', run: wall(process.execPath, [manage, 'scan', '--rules', rules, small]) },
    ],
    Math.max(ctx.reps, 7),
  );
  const ms = (name: string) => median(runs.get(name) ?? []);
  return { node: ms('node'), help: ms('help'), scan: ms('scan') };
}

export async function benchSpeed(ctx: BenchContext): Promise<SectionResult> {
  const rulesDir = path.join(ctx.workDir, 'rules-speed');
  await writeRulesDir(rulesDir, ctx.repoRoot, ctx.seed, 5000);
  const rules = path.join(ctx.workDir, 'compiled-speed.bin');
  await runTimed(process.execPath, [
    path.join(ctx.repoRoot, 'manage.ts'),
    'compile-rules',
    '--rules-dir',
    rulesDir,
    '--output',
    rules,
  ]);
  // The issue measured 828 MB of executables; start-up and rule loading weigh less on that much.
  // A machine with fewer ELF files under /usr/bin and /usr/lib gives what it has (see the row).
  const corpus = await copyElfCorpus(path.join(ctx.workDir, 'elf-speed'), {
    roots: ['/usr/bin', '/usr/lib'],
    maxBytes: (ctx.quick ? 24 : ELF_CORPUS_MB) * MB,
  });
  const mb = corpus.totalBytes / MB;
  ctx.log(`speed: engines on ${corpus.files.length} ELF files (${mb.toFixed(0)} MB), 5,000 rules`);
  const engine = await engines(ctx, rules, corpus.dir, mb);
  ctx.log('speed: start-up');
  const start = await startUp(ctx, rules);
  ctx.log('speed: ranged download');
  const download = await rangedDownload(ctx);
  const tree = await treeMemory(ctx, rules);

  const { t, cpu } = engine;
  const vsOriginal = t.python1 / t.manage1;
  const vsYara1 = t.yara1 / t.manage1;
  const vsYaraN = t.yaraN / t.manageN;
  // The same ratios by CPU time, which other work on a shared machine disturbs less than walls.
  const cpuVsOriginal = cpu.python1 / cpu.manage1;
  const cpuVsYara1 = cpu.yara1 / cpu.manage1;
  const cpuVsYaraN = cpu.yaraN / cpu.manageN;
  const both = (wall: number, byCpu: number) =>
    `${wall.toFixed(2)}x (by CPU time ${byCpu.toFixed(2)}x)`;
  const rows: Row[] = [
    {
      section: SECTION,
      metric: 'ELF corpus, 5,000 generated + project rules',
      value: mb,
      unit: 'MB',
      note: `${corpus.files.length} files`,
    },
    ...engine.rows,
    {
      section: SECTION,
      metric: '1 core: analysis vs original engine',
      value: vsOriginal,
      unit: 'x',
      note: `by CPU time ${cpuVsOriginal.toFixed(3)}x`,
    },
    {
      section: SECTION,
      metric: '1 core: analysis vs yara -p 1',
      value: vsYara1,
      unit: 'x',
      note: `by CPU time ${cpuVsYara1.toFixed(3)}x`,
    },
    {
      section: SECTION,
      metric: `${ctx.cores} cores: manage.ts scan vs yara -p ${ctx.cores}`,
      value: vsYaraN,
      unit: 'x',
      note: `by CPU time ${cpuVsYaraN.toFixed(3)}x`,
    },
    { section: SECTION, metric: 'node -e 0', value: start.node, unit: 'ms' },
    {
      section: SECTION,
      metric: 'manage.ts --help',
      value: start.help,
      unit: 'ms',
      note: `${(start.help - start.node).toFixed(0)} ms over node`,
    },
    {
      section: SECTION,
      metric: 'manage.ts scan of one small file',
      value: start.scan,
      unit: 'ms',
      note: '5,000-rule compiled set loaded',
    },
    ...tree.map(({ files, run }) => ({
      section: SECTION,
      metric: `manage.ts scan, ${files.toLocaleString('en-US')}-file tree: peak RSS`,
      value: run.maxRssKb / 1024,
      unit: 'MB',
      note: `wall ${(run.wallMs / 1000).toFixed(1)} s, table output`,
    })),
    {
      section: SECTION,
      metric: `analyzer download of ${download.size / MB} MiB from the local S3: ranged GETs (8 MiB x 4)`,
      value: download.size / MB / download.ranged,
      unit: 'MB/s',
      note: `one stream: ${(download.size / MB / download.single).toFixed(0)} MB/s`,
    },
  ];
  const [smallTree, bigTree] = tree;
  const targets: TargetCheck[] = [
    {
      target: 'analysis per core >= 1.10x the original engine',
      actual: both(vsOriginal, cpuVsOriginal),
      met: vsOriginal >= 1.1,
    },
    {
      target: 'analysis per core >= 0.92x yara -p 1',
      actual: both(vsYara1, cpuVsYara1),
      met: vsYara1 >= 0.92,
    },
    {
      target: `manage.ts scan on ${ctx.cores} cores >= 0.90x yara -p ${ctx.cores}`,
      actual: both(vsYaraN, cpuVsYaraN),
      met: vsYaraN >= 0.9,
    },
    {
      target: 'manage.ts --help within 150 ms of node -e 0',
      actual: `${(start.help - start.node).toFixed(0)} ms over`,
      met: start.help - start.node <= 150,
    },
    {
      target: 'scan of one small file < 400 ms',
      actual: `${start.scan.toFixed(0)} ms`,
      met: start.scan < 400,
    },
    {
      target: 'scan memory flat in the number of files',
      actual:
        smallTree && bigTree
          ? `${(smallTree.run.maxRssKb / 1024).toFixed(0)} MB at ${smallTree.files}, ${(bigTree.run.maxRssKb / 1024).toFixed(0)} MB at ${bigTree.files} files`
          : 'not measured',
      met: smallTree && bigTree ? bigTree.run.maxRssKb < 1.25 * smallTree.run.maxRssKb : null,
    },
    {
      target: 'match lists agree (manage.ts scan, yara, original engine)',
      actual: `${engine.matches.manage} / ${engine.matches.yara} / ${engine.matches.python} matches`,
      met:
        engine.matches.manage === engine.matches.yara &&
        engine.matches.yara === engine.matches.python,
    },
  ];
  return {
    rows,
    targets,
    details: { times: t, cpuSeconds: cpu, matches: engine.matches, startUp: start, download },
  };
}
