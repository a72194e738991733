import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { loadRules, RuleCompileError } from '@binaryalert/yara';
import { compileRuleSet, compileRulesDirectory, NoRuleFilesError } from './compile';
import { temporaryDirectory } from './testing';

const GOOD = `rule good_rule { meta: description = "d" strings: $a = "needle-in-haystack" condition: $a }\n`;
const ALSO_GOOD = `rule good_rule { strings: $a = "second-needle" condition: $a }\nrule third { condition: false }\n`;
// Two errors on lines 2 and 4: an undefined identifier and an unknown module.
const BROKEN = `rule broken_one {\n  condition: no_such_identifier\n}\nimport "no_such_module"\n`;

function writeRules(dir: string, files: Record<string, string>): void {
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(dir, name)), { recursive: true });
    writeFileSync(path.join(dir, name), text);
  }
}

describe('compileRulesDirectory', () => {
  let tmp: ReturnType<typeof temporaryDirectory>;
  beforeEach(() => {
    tmp = temporaryDirectory('compile');
  });
  afterEach(() => tmp.remove());

  it('compiles every rule file into one saved set, each in its own namespace', async () => {
    const rulesDir = path.join(tmp.dir, 'rules');
    writeRules(rulesDir, {
      'own/a.yara': GOOD,
      'github.com/x/y/b.yar': ALSO_GOOD, // same rule name as a.yara: fine in another namespace
      'samples/positive/not-a-rule.yar': BROKEN,
    });
    const output = path.join(tmp.dir, 'dist', 'compiled.bin');

    const result = await compileRulesDirectory({ rulesDir, output });

    expect(result).toMatchObject({ ruleCount: 3, fileCount: 2, skipped: [], output });
    const rules = await loadRules(output);
    const scan = await rules.scanBuffer(Buffer.from('xx needle-in-haystack second-needle'));
    expect(scan.matches.map((m) => `${m.namespace}:${m.rule}`).sort()).toEqual([
      'github.com/x/y/b.yar:good_rule',
      'own/a.yara:good_rule',
    ]);
  });

  it('fails listing every error of every broken file and leaves the previous output alone', async () => {
    const rulesDir = path.join(tmp.dir, 'rules');
    writeRules(rulesDir, { 'a.yara': GOOD, 'b-broken.yar': BROKEN, 'c-broken.yar': BROKEN });
    const output = path.join(tmp.dir, 'compiled.bin');
    writeFileSync(output, 'previous');

    const failure = await compileRulesDirectory({ rulesDir, output }).catch((e: unknown) => e);

    expect(failure).toBeInstanceOf(RuleCompileError);
    const errors = (failure as RuleCompileError).errors;
    const files = new Set(errors.map((e) => path.basename(e.file)));
    expect(files).toEqual(new Set(['b-broken.yar', 'c-broken.yar']));
    expect(errors.every((e) => e.line > 0 && e.message.length > 0)).toBe(true);
    expect(readFileSync(output, 'utf8')).toBe('previous');
  });

  it('with skipBroken compiles the rest and reports what it left out', async () => {
    const rulesDir = path.join(tmp.dir, 'rules');
    writeRules(rulesDir, { 'a.yara': GOOD, 'b-broken.yar': BROKEN, 'z/c.yar': ALSO_GOOD });
    const output = path.join(tmp.dir, 'compiled.bin');

    const result = await compileRulesDirectory({ rulesDir, output, skipBroken: true });

    expect(result.ruleCount).toBe(3);
    expect(result.fileCount).toBe(2);
    expect(result.skipped.map((s) => s.namespace)).toEqual(['b-broken.yar']);
    expect(result.skipped[0]?.errors.length).toBeGreaterThan(0);
    expect((await loadRules(output)).ruleCount).toBe(3);
  });

  it('with skipBroken finds a file that is broken only through what it includes', async () => {
    const rulesDir = path.join(tmp.dir, 'rules');
    writeRules(rulesDir, {
      'a.yara': GOOD,
      'includer.yar': 'include "../fragments/bad.inc"\nrule after_include { condition: true }\n',
    });
    writeRules(tmp.dir, {
      'fragments/bad.inc': 'rule inner {\n condition: $undefined_string\n}\n',
    });

    const result = await compileRuleSet({ rulesDir, skipBroken: true });

    expect(result.skipped.map((s) => s.namespace)).toEqual(['includer.yar']);
    expect(result.ruleCount).toBe(1);
  });

  it('refuses an empty rules directory', async () => {
    const output = path.join(tmp.dir, 'compiled.bin');
    await expect(compileRulesDirectory({ rulesDir: tmp.dir, output })).rejects.toBeInstanceOf(
      NoRuleFilesError,
    );
    expect(existsSync(output)).toBe(false);
  });
});
