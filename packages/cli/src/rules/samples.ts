import { promises as fs } from 'node:fs';
import path from 'node:path';
import { analyzeFile } from '@binaryalert/core';
import os from 'node:os';
import { loadRules, type CompiledRules } from '@binaryalert/yara';
import { compileRulesDirectory } from './compile';
import { SAMPLES_DIR_NAME } from './paths';

/**
 * Sample files are how rules are tested, not a gate: `samples/positive/<rule>/*` must match the
 * rule, `samples/negative/<rule>/*` must not. A rule without positive samples is reported as
 * untested (a warning), never as a failure.
 */
export interface SampleReport {
  /** Samples checked. */
  tested: number;
  /** One sentence per sample that did not do what its folder says. */
  failures: string[];
  /** Rules with no positive sample (`rules/samples/positive/<rule>/`). */
  untested: string[];
}

async function filesIn(dir: string): Promise<string[]> {
  const entries = await fs.readdir(dir, { withFileTypes: true }).catch(() => []);
  return entries
    .filter((entry) => entry.isFile() && !entry.name.startsWith('.'))
    .map((entry) => path.join(dir, entry.name))
    .sort();
}

/** Tests each rule (`namespace:rule` ids) against its samples under `samplesDir`. */
export async function testRuleSamples(
  rules: CompiledRules,
  ruleIds: string[],
  samplesDir: string,
): Promise<SampleReport> {
  const report: SampleReport = { tested: 0, failures: [], untested: [] };
  const names = [...new Set(ruleIds.map((id) => id.slice(id.lastIndexOf(':') + 1)))].sort();
  for (const name of names) {
    const positives = await filesIn(path.join(samplesDir, 'positive', name));
    const negatives = await filesIn(path.join(samplesDir, 'negative', name));
    if (positives.length === 0) report.untested.push(name);
    for (const [sample, expected] of [
      ...positives.map((file) => [file, true] as const),
      ...negatives.map((file) => [file, false] as const),
    ]) {
      const { matches } = await analyzeFile(rules, sample, { filepath: sample });
      const matched = matches.some((match) => match.rule === name);
      report.tested++;
      if (matched !== expected) {
        report.failures.push(
          `${sample}: rule ${name} ${expected ? 'does not match this positive sample' : 'matches this negative sample'}`,
        );
      }
    }
  }
  return report;
}

/** A sample failed its rule: the release or deploy stops. */
export class RuleSampleError extends Error {
  override readonly name = 'RuleSampleError';
  constructor(readonly failures: string[]) {
    super(`${failures.length} rule sample(s) failed:\n  ${failures.join('\n  ')}`);
  }
}

/** One warning line for rules without samples (empty when every rule has some). */
export function untestedWarning(report: Pick<SampleReport, 'untested'>): string | undefined {
  if (report.untested.length === 0) return undefined;
  const shown = report.untested.slice(0, 10).join(', ');
  const more = report.untested.length > 10 ? ` and ${report.untested.length - 10} more` : '';
  return `warning: ${report.untested.length} rule(s) have no samples to test them with: ${shown}${more} (manage.ts new-rule NAME creates rules/samples/{positive,negative}/NAME/)`;
}

/**
 * The rule tests `deploy` runs: compiles `rulesDir` (into a scratch file) and tests every rule
 * against its samples. Throws RuleCompileError or RuleSampleError; returns the report.
 */
export async function runRuleTests(rulesDir: string): Promise<SampleReport> {
  const scratch = await fs.mkdtemp(path.join(os.tmpdir(), 'binaryalert-rule-tests-'));
  try {
    const compiled = await compileRulesDirectory({
      rulesDir,
      output: path.join(scratch, 'compiled_yara_rules.bin'),
    });
    const report = await testRuleSamples(
      await loadRules(compiled.output),
      Object.keys(compiled.manifest.fingerprints.rules),
      path.join(rulesDir, SAMPLES_DIR_NAME),
    );
    if (report.failures.length > 0) throw new RuleSampleError(report.failures);
    return report;
  } finally {
    await fs.rm(scratch, { recursive: true, force: true });
  }
}
