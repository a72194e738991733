/**
 * The archive rows: MB of expanded content scanned per second by `manage.ts scan` reading the
 * members of a zip, a tar.gz and a 7z of the same files, against extracting the same archives with
 * `7z x` into a tmpfs (/dev/shm) and running `yara -r` on the result. Both are pinned with taskset
 * to the same N cores and interleaved; the ratio is of walls in this run.
 * Two corpora: real ELF executables (what archives of samples hold; they compress about 3:1, so
 * decompression is real work) carry the target; the synthetic corpus (random bytes: incompressible,
 * the worst case for the object's own scan, which is then as large as its members') is reported
 * beside it.
 */
import { execFileSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';

import { analyzeFile, DEFAULT_ARCHIVE_SETTINGS } from '../../packages/core/src';
import { loadRules } from '../../packages/yara/src';
import type { BenchContext } from './context';
import { interleave, MB, median, runTimed, type TimedRun } from './measure';
import type { Row, SectionResult } from './report';
import { yaraMatches } from './scan';

const SECTION = 'archives';

interface Summary {
  MatchedRules: Record<string, { RuleName: string; MemberPath?: string }>;
}

/** `archive/inner path<TAB>rule` for every match inside a member that manage.ts scan reported. */
function memberMatches(stdout: string, archivesDir: string): string[] {
  return (JSON.parse(stdout) as Summary[]).flatMap((summary) =>
    Object.values(summary.MatchedRules).flatMap((rule) => {
      if (!rule.MemberPath) return [];
      const relative = path.relative(archivesDir, rule.MemberPath).replace('!', '/');
      return [`${relative}\t${rule.RuleName}`];
    }),
  );
}

/** The corpus files, in order, up to `bytes` (relative paths). */
async function corpusSubset(dir: string, bytes: number): Promise<string[]> {
  const out: string[] = [];
  let total = 0;
  const walk = async (sub: string): Promise<void> => {
    for (const entry of (await fs.readdir(path.join(dir, sub), { withFileTypes: true })).sort(
      (a, b) => a.name.localeCompare(b.name),
    )) {
      if (total >= bytes) return;
      const relative = path.join(sub, entry.name);
      if (entry.isDirectory()) await walk(relative);
      else if (entry.isFile()) {
        out.push(relative);
        total += (await fs.stat(path.join(dir, relative))).size;
      }
    }
  };
  await walk('');
  return out;
}

interface CorpusResult extends SectionResult {
  archivesDir: string;
  expandedMb: number;
}

export async function benchArchives(ctx: BenchContext): Promise<SectionResult> {
  const elf = await benchCorpus(ctx, 'elf', 'ELF executables', ctx.elf.dir, true);
  const random = await benchCorpus(ctx, 'random', 'random bytes', ctx.synthetic.dir, false);
  const rows = [...elf.rows, ...random.rows];
  const targets = [...elf.targets, ...random.targets];
  const details = { elf: elf.details, random: random.details };
  const { archivesDir, expandedMb } = elf;
  // Members never reach JS: the heap holds only their records, whatever the archive size.
  const rules = await loadRules(ctx.compiledRules);
  let heapPeak = process.memoryUsage().heapUsed;
  const sampler = setInterval(() => {
    heapPeak = Math.max(heapPeak, process.memoryUsage().heapUsed);
  }, 20);
  const heapBefore = process.memoryUsage().heapUsed;
  for (const name of ['corpus.zip', 'corpus.tar.gz', 'corpus.7z']) {
    await analyzeFile(rules, path.join(archivesDir, name), {
      archives: DEFAULT_ARCHIVE_SETTINGS,
      timeoutSeconds: 900,
      budgetMs: 900_000,
      tempDir: ctx.workDir,
    });
  }
  clearInterval(sampler);
  rows.push({
    section: SECTION,
    metric: 'JS heap peak, in-process analysis of the three archives of ELF executables',
    value: heapPeak / MB,
    unit: 'MB',
    note: `${(heapBefore / MB).toFixed(0)} MB before; members stay in the addon`,
  });
  targets.push({
    target: 'archives: JS heap < 150 MB',
    actual: `${(heapPeak / MB).toFixed(0)} MB peak over ${expandedMb.toFixed(0)} MB expanded`,
    met: heapPeak < 150 * MB,
  });
  return { rows, targets, details };
}

/** The rows of one corpus; `withTarget`: its ratio at N = all cores is the section's target. */
async function benchCorpus(
  ctx: BenchContext,
  name: string,
  label: string,
  source: string,
  withTarget: boolean,
): Promise<CorpusResult> {
  const files = await corpusSubset(source, ctx.quick ? 32 * MB : 256 * MB);
  let bytes = 0;
  for (const file of files) bytes += (await fs.stat(path.join(source, file))).size;
  const archivesDir = path.join(ctx.workDir, `archives-${name}`);
  await fs.mkdir(archivesDir, { recursive: true });
  const listFile = path.join(ctx.workDir, `archive-files-${name}.txt`);
  await fs.writeFile(listFile, `${files.join('\n')}\n`);
  ctx.log(
    `archives: building zip, tar.gz and 7z of ${files.length} ${label} (${(bytes / MB).toFixed(0)} MB)`,
  );
  const run = (command: string, args: string[], input = '') =>
    execFileSync(command, args, { cwd: source, input, stdio: ['pipe', 'ignore', 'inherit'] });
  run('zip', ['-q', '-X', path.join(archivesDir, 'corpus.zip'), '-@'], files.join('\n'));
  run('tar', ['-czf', path.join(archivesDir, 'corpus.tar.gz'), '-T', listFile]);
  run('7z', ['a', '-bd', '-mx=1', path.join(archivesDir, 'corpus.7z'), `@${listFile}`]);
  const expandedMb = (3 * bytes) / MB;
  let archiveBytes = 0;
  for (const name of ['corpus.zip', 'corpus.tar.gz', 'corpus.7z']) {
    archiveBytes += (await fs.stat(path.join(archivesDir, name))).size;
  }

  const rows: Row[] = [
    {
      section: SECTION,
      metric: `${label}: archives (zip, tar.gz, 7z of the same files)`,
      value: expandedMb,
      unit: 'MB expanded',
      note: `${files.length} files each, ${(archiveBytes / MB).toFixed(0)} MB of archives`,
    },
  ];
  const details: Record<string, unknown> = {};
  const targets: SectionResult['targets'] = [];
  const shm = '/dev/shm';
  for (const n of [...new Set([1, ctx.cores])]) {
    const cores = ['-c', n === 1 ? '0' : `0-${n - 1}`];
    const out = path.join(shm, `binaryalert-bench-extract-${process.pid}`);
    const binaryalert = () =>
      runTimed(
        'taskset',
        [
          ...cores,
          process.execPath,
          ctx.cliBundle,
          'scan',
          '--rules',
          ctx.compiledRules,
          '--json',
          '--concurrency',
          String(2 * n),
          // The default 60 s budget per archive is a production bound; here every member counts.
          '--timeout',
          '900',
          archivesDir,
        ],
        { okCodes: [0, 1] },
      );
    // 7z x each archive into the tmpfs (the tar.gz through a pipe), then yara -r on the result.
    const script = [
      `rm -rf '${out}' && mkdir -p '${out}/corpus.zip' '${out}/corpus.7z' '${out}/corpus.tar.gz'`,
      `7z x -bd -y -o'${out}/corpus.zip' '${archivesDir}/corpus.zip' >/dev/null`,
      `7z x -bd -y -o'${out}/corpus.7z' '${archivesDir}/corpus.7z' >/dev/null`,
      `7z x -bd -so '${archivesDir}/corpus.tar.gz' | 7z x -bd -y -si -ttar -o'${out}/corpus.tar.gz' >/dev/null`,
      `yara -N -C -r -p ${n} '${ctx.compiledRules}' '${out}'`,
    ].join(' && ');
    const extractThenYara = () =>
      runTimed('taskset', [...cores, 'sh', '-c', script], { okCodes: [0, 1] });
    const runs = await interleave<TimedRun>(
      [
        { name: 'binaryalert', run: binaryalert },
        { name: 'baseline', run: extractThenYara },
      ],
      ctx.reps,
    );
    await fs.rm(out, { recursive: true, force: true });
    const ba = runs.get('binaryalert') ?? [];
    const base = runs.get('baseline') ?? [];
    const baWall = median(ba.map((r) => r.wallMs)) / 1000;
    const baseWall = median(base.map((r) => r.wallMs)) / 1000;
    const ratio = baseWall / baWall;
    const baList = memberMatches(ba[0]?.stdout ?? '[]', archivesDir).sort();
    const yaraList = yaraMatches(base[0]?.stdout ?? '')
      .map((line) => line.replace(`${out}/`, ''))
      .sort();
    const agree = JSON.stringify(baList) === JSON.stringify(yaraList);
    rows.push(
      {
        section: SECTION,
        metric: `${label}: N=${n} cores: manage.ts scan of the archives`,
        value: expandedMb / baWall,
        unit: 'MB/s expanded',
        note: `wall ${baWall.toFixed(2)} s, CPU ${median(ba.map((r) => r.cpuSeconds)).toFixed(2)} s, peak RSS ${(median(ba.map((r) => r.maxRssKb)) / 1024).toFixed(0)} MB, ${baList.length} member matches`,
      },
      {
        section: SECTION,
        metric: `${label}: N=${n} cores: 7z x into tmpfs + yara -r -p ${n}`,
        value: expandedMb / baseWall,
        unit: 'MB/s expanded',
        note: `wall ${baseWall.toFixed(2)} s, CPU ${median(base.map((r) => r.cpuSeconds)).toFixed(2)} s, ${yaraList.length} matches`,
      },
      {
        section: SECTION,
        metric: `${label}: N=${n}: ratio`,
        value: ratio,
        unit: 'x extract+yara',
        note: agree ? 'match lists agree' : 'MATCHES DIFFER (see results.json)',
      },
    );
    details[`N${n}`] = {
      binaryalert: ba.map(({ wallMs, cpuSeconds, maxRssKb }) => ({ wallMs, cpuSeconds, maxRssKb })),
      baseline: base.map(({ wallMs, cpuSeconds, maxRssKb }) => ({ wallMs, cpuSeconds, maxRssKb })),
      onlyBinaryAlert: baList.filter((x) => !yaraList.includes(x)).slice(0, 20),
      onlyYara: yaraList.filter((x) => !baList.includes(x)).slice(0, 20),
    };
    if (n === ctx.cores && withTarget) {
      targets.push({
        target: `archives of ${label}: expanded MB/s >= 1.0x (7z x into tmpfs + yara -r), same cores`,
        actual: `${ratio.toFixed(2)}x at N=${n}`,
        met: ratio >= 1.0,
        ...(agree ? {} : { note: 'match lists differ' }),
      });
    }
  }
  return { rows, targets, details, archivesDir, expandedMb };
}
