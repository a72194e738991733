import { promises as fs } from 'node:fs';
import path from 'node:path';
import { compileRules } from '@binaryalert/yara';
import { runRuleTests, testRuleSamples } from '../rules/samples';
import { runCaptured, temporaryDirectory } from '../rules/testing';
import { newRule } from './new-rule';

describe('new-rule and the rule tests', () => {
  let dir: string;
  let remove: () => void;
  beforeEach(() => {
    ({ dir, remove } = temporaryDirectory('new-rule'));
  });
  afterEach(() => remove());

  it('scaffolds a rule that compiles and its two sample folders', async () => {
    const created = await newRule('ux_marker', dir);

    expect(created.map((file) => path.relative(dir, file))).toEqual([
      'custom/ux_marker.yara',
      'samples/positive/ux_marker',
      'samples/negative/ux_marker',
    ]);
    const { rules } = await compileRules([
      { path: created[0]!, namespace: 'custom/ux_marker.yara' },
    ]);
    expect(rules.ruleCount).toBe(1);
  });

  it.each(['../escape', '1abc', 'a b', 'x'.repeat(129), ''])(
    'refuses the name %p without writing anything',
    async (name) => {
      await expect(newRule(name, dir)).rejects.toThrow(/not a YARA rule name/);
      expect(await fs.readdir(dir)).toEqual([]);
    },
  );

  it('never overwrites an existing rule', async () => {
    await newRule('mine', dir);
    await fs.writeFile(path.join(dir, 'custom', 'mine.yara'), 'rule mine { condition: true }');

    await expect(newRule('mine', dir)).rejects.toThrow(/exists already/);
    expect(await fs.readFile(path.join(dir, 'custom', 'mine.yara'), 'utf8')).toBe(
      'rule mine { condition: true }',
    );
  });

  it('warns about a rule without samples and fails on a sample that does not match', async () => {
    await fs.mkdir(path.join(dir, 'own'));
    await fs.writeFile(
      path.join(dir, 'own', 'r.yar'),
      'rule tested { strings: $a = "NEEDLE" condition: $a }\nrule untested { condition: false }',
    );
    await fs.mkdir(path.join(dir, 'samples', 'positive', 'tested'), { recursive: true });
    await fs.mkdir(path.join(dir, 'samples', 'negative', 'tested'), { recursive: true });
    await fs.writeFile(path.join(dir, 'samples', 'positive', 'tested', 'hit'), 'a NEEDLE b');
    await fs.writeFile(path.join(dir, 'samples', 'negative', 'tested', 'miss'), 'hay');

    const report = await runRuleTests(dir);
    expect(report).toEqual({ tested: 2, failures: [], untested: ['untested'] });

    await fs.writeFile(path.join(dir, 'samples', 'negative', 'tested', 'bad'), 'NEEDLE');
    await expect(runRuleTests(dir)).rejects.toThrow(/matches this negative sample/);
  });

  it('compile-rules --test reports failures with exit 1 and missing samples as a warning', async () => {
    await fs.mkdir(path.join(dir, 'own'));
    await fs.writeFile(path.join(dir, 'own', 'r.yar'), 'rule lonely { condition: true }');

    const run = await runCaptured([
      'compile-rules',
      '--rules-dir',
      dir,
      '-o',
      path.join(dir, 'out', 'c.bin'),
      '--test',
    ]);

    expect(run.code).toBe(0);
    expect(run.stdout).toContain('tested 0 samples: 0 failed');
    expect(run.stderr).toMatch(/warning: 1 rule\(s\) have no samples to test them with: lonely/);
  });

  it('tests a rule by its name whatever file defines it', async () => {
    const file = path.join(dir, 'x.yar');
    await fs.writeFile(file, 'rule any_name { strings: $a = "Z" condition: $a }');
    const { rules } = await compileRules([{ path: file, namespace: 'x.yar' }]);
    await fs.mkdir(path.join(dir, 'samples', 'positive', 'any_name'), { recursive: true });
    await fs.writeFile(path.join(dir, 'samples', 'positive', 'any_name', 's'), 'no match here');

    const report = await testRuleSamples(rules, ['x.yar:any_name'], path.join(dir, 'samples'));

    expect(report.failures).toEqual([
      expect.stringMatching(/rule any_name does not match this positive sample$/),
    ]);
  });
});
