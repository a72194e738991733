import { compileRules, DEFAULT_EXTERNALS, libyaraVersion, RuleCompileError } from './index';
import { makeTempDir, type TempDir } from './testing';

describe('compileRules', () => {
  let dir: TempDir;
  beforeEach(() => {
    dir = makeTempDir();
  });
  afterEach(() => dir.remove());

  it('reports the linked libyara version', () => {
    expect(libyaraVersion).toMatch(/^4\.\d+\.\d+$/);
  });

  it('compiles several files into one rule set and counts the rules', async () => {
    const a = dir.write('a.yar', 'rule one { condition: true }\nrule two { condition: false }');
    const b = dir.write('b.yar', 'rule three { condition: true }');

    const { rules, warnings } = await compileRules([
      { path: a, namespace: 'a.yar' },
      { path: b, namespace: 'sub/b.yar' },
    ]);

    expect(rules.ruleCount).toBe(3);
    expect(warnings).toEqual([]);
  });

  it('compiles an empty list of sources into an empty rule set', async () => {
    const { rules } = await compileRules([]);

    expect(rules.ruleCount).toBe(0);
    expect((await rules.scanBuffer(Buffer.from('x'))).matches).toEqual([]);
  });

  it('lists every error of every file with file and line, not only the first', async () => {
    const good = dir.write('good.yar', 'rule fine { condition: true }');
    const undefinedIds = dir.write(
      'undefined.yar',
      [
        'rule ok { condition: true }',
        '',
        'rule broken {',
        '  condition: undefined_thing',
        '}',
        'rule broken2 { condition: also_missing }',
      ].join('\n'),
    );
    const syntax = dir.write(
      'syntax.yar',
      ['rule x {', '  strings:', '    $a = "xyz"', '  condition', '    $a', '}'].join('\n'),
    );
    const missing = `${dir.path}/missing.yar`;

    const error = await compileRules([
      { path: good, namespace: 'good' },
      { path: undefinedIds, namespace: 'undefined' },
      { path: syntax, namespace: 'syntax' },
      { path: missing, namespace: 'missing' },
    ]).catch((e: unknown) => e);

    expect(error).toBeInstanceOf(RuleCompileError);
    const { errors } = error as RuleCompileError;
    expect(errors).toEqual([
      { file: undefinedIds, line: 4, message: 'undefined identifier "undefined_thing"' },
      { file: undefinedIds, line: 6, message: 'undefined identifier "also_missing"' },
      { file: syntax, line: 5, message: expect.stringContaining('syntax error') },
      { file: missing, line: 0, message: expect.stringContaining('No such file or directory') },
    ]);
    expect((error as RuleCompileError).message).toContain(
      `${undefinedIds}:4: undefined identifier`,
    );
  });

  it('returns warnings with file and line when compilation succeeds', async () => {
    const file = dir.write(
      'warn.yar',
      'rule ok { condition: true }\nrule slow { strings: $a = { 00 } condition: $a }',
    );

    const { rules, warnings } = await compileRules([{ path: file, namespace: 'warn' }]);

    expect(rules.ruleCount).toBe(2);
    expect(warnings).toEqual([{ file, line: 2, message: expect.stringContaining('$a') }]);
  });

  it('reports errors in included files under the included file name', async () => {
    dir.write('inc.yar', 'rule inc {\n  condition: nope\n}');
    const main = dir.write('main.yar', 'include "inc.yar"\nrule main { condition: true }');

    const error = await compileRules([{ path: main, namespace: 'main' }]).catch((e: unknown) => e);

    expect((error as RuleCompileError).errors).toEqual([
      { file: expect.stringMatching(/inc\.yar$/), line: 2, message: 'undefined identifier "nope"' },
    ]);
  });

  it('resolves includes relative to the including file', async () => {
    dir.write('base.yar', 'rule base_rule { condition: true }');
    const top = dir.write('top.yar', 'include "base.yar"\nrule top { condition: base_rule }');

    const { rules } = await compileRules([{ path: top, namespace: 'top' }]);

    expect(rules.ruleCount).toBe(2);
  });

  it('declares the default externals so rules may use them', async () => {
    const file = dir.write(
      'ext.yar',
      Object.keys(DEFAULT_EXTERNALS)
        .map((name) => `rule uses_${name} { condition: ${name} == "" }`)
        .join('\n'),
    );

    const { rules } = await compileRules([{ path: file, namespace: 'ext' }]);

    expect(rules.ruleCount).toBe(5);
  });

  it('rejects rules using externals that were not declared', async () => {
    const file = dir.write('ext.yar', 'rule r { condition: filename == "x" }');

    const error = await compileRules([{ path: file, namespace: 'ext' }], {
      externals: { other: '' },
    }).catch((e: unknown) => e);

    expect((error as RuleCompileError).errors).toEqual([
      { file, line: 1, message: 'undefined identifier "filename"' },
    ]);
  });

  it('rejects a rule file that is a directory instead of blocking or crashing', async () => {
    const error = await compileRules([{ path: dir.path, namespace: 'dir' }]).catch(
      (e: unknown) => e,
    );

    expect((error as RuleCompileError).errors).toEqual([
      { file: dir.path, line: 0, message: expect.stringContaining('not a regular file') },
    ]);
  });
});
