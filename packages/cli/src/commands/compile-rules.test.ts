import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { loadRules } from '@binaryalert/yara';
import { runCaptured, temporaryDirectory } from '../rules/testing';

const GOOD = 'rule good { strings: $a = "needle" condition: $a }\n';
const BROKEN = 'rule broken {\n  condition:\n    undefined_thing\n}\n';

describe('manage.ts compile-rules', () => {
  let tmp: ReturnType<typeof temporaryDirectory>;
  let rulesDir: string;
  let output: string;
  beforeEach(() => {
    tmp = temporaryDirectory('compile-cmd');
    rulesDir = path.join(tmp.dir, 'rules');
    output = path.join(tmp.dir, 'out', 'compiled_yara_rules.bin');
    mkdirSync(path.join(rulesDir, 'own'), { recursive: true });
    writeFileSync(path.join(rulesDir, 'own', 'good.yara'), GOOD);
  });
  afterEach(() => tmp.remove());

  it('prints rule and file counts and writes the compiled file', async () => {
    const run = await runCaptured(['compile-rules', '--rules-dir', rulesDir, '--output', output]);

    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(
      /^compiled 1 rules from 1 files into .*compiled_yara_rules\.bin \(libyara 4\.\d+\.\d+\)\n$/,
    );
    expect((await loadRules(output)).ruleCount).toBe(1);
  });

  it('fails with file:line: message for each error and exit code 1', async () => {
    const broken = path.join(rulesDir, 'own', 'broken.yar');
    writeFileSync(broken, BROKEN);

    const run = await runCaptured(['compile-rules', '--rules-dir', rulesDir, '--output', output]);

    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(
      new RegExp(`^${broken.replace(/[.]/g, '\\.')}:3: .*undefined_thing`, 'm'),
    );
    expect(run.stderr).toContain('--skip-broken');
    expect(existsSync(output)).toBe(false);
  });

  it('with --skip-broken compiles the rest and lists what it left out', async () => {
    writeFileSync(path.join(rulesDir, 'own', 'broken.yar'), BROKEN);

    const run = await runCaptured([
      'compile-rules',
      '--rules-dir',
      rulesDir,
      '--output',
      output,
      '--skip-broken',
    ]);

    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/compiled 1 rules from 1 files/);
    expect(run.stderr).toMatch(
      /left out 1 rule files that do not compile:\n\s+\S*broken\.yar\n\s+\S*broken\.yar:3: /,
    );
    expect((await loadRules(output)).ruleCount).toBe(1);
  });

  it('is a usage error (exit 2) when the rules directory does not exist', async () => {
    const run = await runCaptured([
      'compile-rules',
      '--rules-dir',
      path.join(tmp.dir, 'nope'),
      '--output',
      output,
    ]);

    expect(run.code).toBe(2);
    expect(run.stderr).toContain('nope is not a directory');
  });
});
