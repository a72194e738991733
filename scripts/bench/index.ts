/**
 * `pnpm bench [--quick]`: measures BinaryAlert against the yara CLI on generated, deterministic
 * corpora and rules; prints a table and writes bench/results.json. Every figure that is compared
 * is a ratio of two things measured in this run, interleaved, median of the repetitions.
 */
import { execFileSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { libyaraVersion } from '../../packages/yara/src';
import { cliBundle as buildCliBundle } from '../../packages/cli/launcher.cjs';
import { REPO_ROOT } from './bundle';
import type { BenchContext } from './context';
import { copyElfCorpus, writeSyntheticCorpus } from './corpus';
import { freePageReportingOrder, loadPerCore, MB, runTimed } from './measure';
import {
  formatTable,
  formatTargets,
  notMeasured,
  type Row,
  type SectionResult,
  type TargetCheck,
} from './report';
import { benchRules, writeRulesDir } from './rules-section';
import { benchS3Store } from './s3-store';
import { benchArchiveBounds } from './archive-bounds';
import { benchArchives } from './archives';
import { benchDelta } from './delta';
import { benchMemory } from './memory';
import { benchPackaging } from './packaging';
import { benchPipeline } from './pipeline';
import { benchRetro } from './retro';
import { benchScan } from './scan';
import { benchSpeed } from './speed';

interface Options {
  quick: boolean;
  reps: number;
  sections: string[] | undefined;
  keep: boolean;
  seed: string;
  output: string;
}

const SECTIONS: Record<string, (ctx: BenchContext) => Promise<SectionResult>> = {
  scan: benchScan,
  rules: benchRules,
  packaging: benchPackaging,
  memory: benchMemory,
  pipeline: benchPipeline,
  s3: benchS3Store,
  retro: benchRetro,
  delta: benchDelta,
  archives: benchArchives,
  'archive-bounds': benchArchiveBounds,
  speed: benchSpeed,
};

function parseArgs(argv: string[]): Options {
  const options: Options = {
    quick: false,
    reps: 3,
    sections: undefined,
    keep: false,
    seed: 'binaryalert-bench-1',
    output: path.join(REPO_ROOT, 'bench', 'results.json'),
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const value = () => {
      const next = argv[++i];
      if (next === undefined) throw new Error(`${arg} needs a value`);
      return next;
    };
    if (arg === '--') continue;
    else if (arg === '--quick') options.quick = true;
    else if (arg === '--reps') options.reps = Math.max(3, Number.parseInt(value(), 10));
    else if (arg === '--only') options.sections = value().split(',');
    else if (arg === '--keep') options.keep = true;
    else if (arg === '--seed') options.seed = value();
    else if (arg === '--output') options.output = path.resolve(value());
    else if (arg === '--help' || arg === '-h') {
      process.stdout.write(
        'usage: pnpm bench [--quick] [--reps N>=3] [--only scan,rules,...] [--seed TEXT] [--output FILE] [--keep]\n' +
          `sections: ${Object.keys(SECTIONS).join(', ')}\n`,
      );
      process.exit(0);
    } else throw new Error(`unknown argument ${arg} (try --help)`);
  }
  if (options.sections) {
    const unknown = options.sections.filter((s) => !(s in SECTIONS));
    if (unknown.length > 0) throw new Error(`unknown sections: ${unknown.join(', ')}`);
  }
  return options;
}

function machineInfo(): Record<string, unknown> {
  let yaraCli = 'not installed';
  try {
    yaraCli = execFileSync('yara', ['-v'], { encoding: 'utf8' }).trim();
  } catch {
    // reported as not installed
  }
  return {
    cpuModel: os.cpus()[0]?.model ?? 'unknown',
    cores: os.availableParallelism(),
    memoryGiB: Number((os.totalmem() / 1024 ** 3).toFixed(1)),
    platform: `${os.type()} ${os.release()} ${os.arch()}`,
    node: process.version,
    libyaraAddon: libyaraVersion,
    yaraCli,
    freePageReportingOrder: freePageReportingOrder() ?? 'none',
  };
}

async function main(): Promise<void> {
  const options = parseArgs(process.argv.slice(2));
  const log = (line: string) =>
    process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${line}\n`);
  const started = performance.now();
  const loadAtStart = loadPerCore();
  const workDir = await fs.mkdtemp(path.join(os.tmpdir(), 'binaryalert-bench-'));
  const rows: Row[] = [];
  const targets: TargetCheck[] = [];
  const details: Record<string, unknown> = {};
  const cleanups: (() => Promise<void>)[] = [];
  const sectionSeconds: Record<string, number> = {};
  try {
    log(`work directory ${workDir}${options.quick ? ' (quick mode)' : ''}`);
    // What a user runs: `node manage.ts` (its launcher starts the CLI's esbuild bundle). Built now
    // so the first measured run does not include the build.
    await buildCliBundle();
    const cliBundle = path.join(REPO_ROOT, 'manage.ts');

    const rulesDir = path.join(workDir, 'rules-500');
    const generated = await writeRulesDir(rulesDir, REPO_ROOT, options.seed, 500);
    const compiledRules = path.join(workDir, 'compiled-500.bin');
    await runTimed(process.execPath, [
      cliBundle,
      'compile-rules',
      '--rules-dir',
      rulesDir,
      '--output',
      compiledRules,
    ]);

    const syntheticBytes = options.quick ? 32 * MB : 1024 * MB;
    log(`writing the synthetic corpus (${syntheticBytes / MB} MB)`);
    const synthetic = await writeSyntheticCorpus(path.join(workDir, 'synthetic'), {
      seed: options.seed,
      totalBytes: syntheticBytes,
      plants: generated.plants,
    });
    const wanted = (name: string) => !options.sections || options.sections.includes(name);
    log('copying ELF files from /usr/bin and /usr/lib');
    const elf = await copyElfCorpus(path.join(workDir, 'elf'), {
      roots: ['/usr/bin', '/usr/lib'],
      // The scan and archive sections use them.
      maxBytes: wanted('scan') || wanted('archives') ? (options.quick ? 32 * MB : 1024 * MB) : 0,
    });

    const ctx: BenchContext = {
      quick: options.quick,
      reps: options.reps,
      cores: os.availableParallelism(),
      workDir,
      repoRoot: REPO_ROOT,
      cliBundle,
      compiledRules,
      rulesDir,
      synthetic,
      elf,
      seed: options.seed,
      log,
      cleanups,
    };
    details.corpora = {
      synthetic: {
        files: synthetic.files.length,
        bytes: synthetic.totalBytes,
        eicarFiles: synthetic.eicarFiles,
        plantedFiles: synthetic.plantedFiles,
      },
      elf: { files: elf.files.length, bytes: elf.totalBytes },
    };
    for (const [name, run] of Object.entries(SECTIONS)) {
      if (!wanted(name)) continue;
      log(`section ${name}`);
      const sectionStarted = performance.now();
      try {
        const result = await run(ctx);
        sectionSeconds[name] = Math.round((performance.now() - sectionStarted) / 100) / 10;
        rows.push(...result.rows);
        targets.push(...result.targets);
        if (result.details) details[name] = result.details;
      } catch (error) {
        const reason =
          error instanceof Error ? (error.message.split('\n')[0] ?? '') : String(error);
        log(
          `section ${name} failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`,
        );
        rows.push(notMeasured(name, 'all', `failed: ${reason}`));
      }
    }
  } finally {
    for (const cleanup of cleanups.reverse()) {
      await cleanup().catch((error: unknown) => log(`cleanup failed: ${String(error)}`));
    }
    if (!options.keep) await fs.rm(workDir, { recursive: true, force: true });
    else log(`kept ${workDir}`);
  }
  const loadAtEnd = loadPerCore();
  const machine = machineInfo();
  const results = {
    date: new Date().toISOString(),
    command: `pnpm bench${options.quick ? ' --quick' : ''}`,
    mode: options.quick ? 'quick' : 'full',
    reps: options.reps,
    seed: options.seed,
    seconds: Math.round((performance.now() - started) / 1000),
    machine: { ...machine, loadPerCoreAtStart: loadAtStart, loadPerCoreAtEnd: loadAtEnd },
    sectionSeconds,
    rows,
    targets,
    details,
  };
  await fs.mkdir(path.dirname(options.output), { recursive: true });
  await fs.writeFile(options.output, `${JSON.stringify(results, null, 2)}\n`);
  process.stdout.write(
    `\nBinaryAlert benchmark (${results.mode}, median of ${options.reps}, ${results.seconds} s)\n` +
      `machine: ${String(machine.cpuModel)}, ${String(machine.cores)} cores, ${String(machine.memoryGiB)} GiB, ` +
      `Node ${process.version}, libyara ${libyaraVersion} (addon), yara CLI ${String(machine.yaraCli)}; ` +
      `load per core ${loadAtStart.toFixed(2)} at start, ${loadAtEnd.toFixed(2)} at end; ` +
      `free-page reporting order ${String(machine.freePageReportingOrder)}\n\n` +
      `${formatTable(rows)}\n\nTargets\n${formatTargets(targets)}\n\nwritten to ${path.relative(process.cwd(), options.output) || options.output}\n`,
  );
}

main().catch((error: unknown) => {
  process.stderr.write(
    `bench failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
  );
  process.exitCode = 1;
});
