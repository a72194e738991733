import { promises as fs } from 'node:fs';
import path from 'node:path';

import { findRuleFiles } from '../../packages/cli/src/rules/discover';
import { compileRules, loadRules } from '../../packages/yara/src';
import type { BenchContext } from './context';
import { interleave, median } from './measure';
import type { Row, SectionResult } from './report';
import { generateRules } from './rules';

const SECTION = 'rules';

/**
 * Lays out a rules directory as `manage.ts compile-rules` reads it: the project's own rules
 * (rules/binaryalert) plus `count` generated rules in bench/synthetic.yara.
 */
export async function writeRulesDir(
  dir: string,
  repoRoot: string,
  seed: string,
  count: number,
): Promise<ReturnType<typeof generateRules>> {
  const generated = generateRules(seed, count);
  await fs.mkdir(path.join(dir, 'bench'), { recursive: true });
  await fs.cp(path.join(repoRoot, 'rules', 'binaryalert'), path.join(dir, 'binaryalert'), {
    recursive: true,
  });
  await fs.writeFile(path.join(dir, 'bench', 'synthetic.yara'), generated.source);
  return generated;
}

/** In-process compile (all sources) against load of the saved file, for 500 and 5,000 rules. */
export async function benchRules(ctx: BenchContext): Promise<SectionResult> {
  const rows: Row[] = [];
  const details: Record<string, unknown> = {};
  let load5000 = NaN;
  for (const count of [500, 5000]) {
    const dir = count === 500 ? ctx.rulesDir : path.join(ctx.workDir, `rules-${count}`);
    if (count !== 500) await writeRulesDir(dir, ctx.repoRoot, ctx.seed, count);
    const sources = await findRuleFiles(dir);
    const saved = path.join(ctx.workDir, `rules-${count}.bin`);
    const first = await compileRules(sources);
    await first.rules.save(saved);
    const ruleCount = first.rules.ruleCount;
    const runs = await interleave<number>(
      [
        {
          name: 'compile',
          run: async () => {
            const started = performance.now();
            await compileRules(sources);
            return performance.now() - started;
          },
        },
        {
          name: 'load',
          run: async () => {
            const started = performance.now();
            await loadRules(saved);
            return performance.now() - started;
          },
        },
      ],
      ctx.reps,
    );
    const compileMs = median(runs.get('compile') ?? []);
    const loadMs = median(runs.get('load') ?? []);
    if (count === 5000) load5000 = loadMs;
    const size = (await fs.stat(saved)).size;
    rows.push(
      {
        section: SECTION,
        metric: `${count} synthetic + project rules: compile`,
        value: compileMs,
        unit: 'ms',
        note: `${ruleCount} rules, ${sources.length} files`,
      },
      {
        section: SECTION,
        metric: `${count} synthetic + project rules: load compiled`,
        value: loadMs,
        unit: 'ms',
        note: `${(size / 1024 / 1024).toFixed(1)} MB file, ${(compileMs / loadMs).toFixed(0)}x faster than compiling`,
      },
    );
    details[`rules-${count}`] = {
      ruleCount,
      compileMs: runs.get('compile'),
      loadMs: runs.get('load'),
      bytes: size,
    };
  }
  return {
    rows,
    targets: [
      {
        target: 'load 5,000 compiled rules < 300 ms',
        actual: `${load5000.toFixed(0)} ms`,
        met: load5000 < 300,
      },
    ],
    details,
  };
}
