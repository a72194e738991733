import { promises as fs } from 'node:fs';
import path from 'node:path';
import { fingerprintRuleFiles, fingerprintRules, tokenize } from './fingerprint';
import { temporaryDirectory } from './testing';

const BASE = `
import "pe"
private rule is_small { condition: filesize < 1MB }
rule marker : tag1 {
  meta:
    description = "first version"
  strings:
    $a = "MARK{ER}" // a brace inside a string
    $h = { 4D 5A [2-4] ( 90 | 91 ) }
    $r = /ab\\/c{2}/i
  condition:
    is_small and any of them
}
rule unrelated { condition: true }
`;

const fingerprintsOf = (text: string) => {
  const result = fingerprintRules(text);
  if (!result) throw new Error('not isolated');
  return result;
};

describe('fingerprintRules', () => {
  const base = fingerprintsOf(BASE);

  it('gives each rule a 16-hex fingerprint', () => {
    expect(Object.keys(base).sort()).toEqual(['is_small', 'marker', 'unrelated']);
    for (const value of Object.values(base)) expect(value).toMatch(/^[0-9a-f]{16}$/);
  });

  it('ignores comments, whitespace and meta', () => {
    const cosmetic = BASE.replace('first version', 'second version')
      .replace('// a brace inside a string', '/* another comment */')
      .replace(/\n {4}/g, '\n\t\t');

    expect(fingerprintsOf(cosmetic)).toEqual(base);
  });

  it('changes a rule when its condition changes, and only that rule', () => {
    const edited = fingerprintsOf(BASE.replace('is_small and any of them', 'is_small and $a'));

    expect(edited.marker).not.toBe(base.marker);
    expect(edited.unrelated).toBe(base.unrelated);
  });

  it('changes a rule when a rule it references changes', () => {
    const edited = fingerprintsOf(BASE.replace('filesize < 1MB', 'filesize < 2MB'));

    expect(edited.is_small).not.toBe(base.is_small);
    expect(edited.marker).not.toBe(base.marker);
    expect(edited.unrelated).toBe(base.unrelated);
  });

  it('changes every rule of the file when its imports or a global rule change', () => {
    const imported = fingerprintsOf(BASE.replace('import "pe"', 'import "pe"\nimport "math"'));
    const withGlobal = fingerprintsOf(`${BASE}\nglobal rule limit { condition: filesize < 5MB }`);

    for (const rule of ['is_small', 'marker', 'unrelated']) {
      expect(imported[rule]).not.toBe(base[rule]);
      expect(withGlobal[rule]).not.toBe(base[rule]);
    }
  });

  it('gives up on files it cannot isolate rules in (include, unbalanced text)', () => {
    expect(fingerprintRules('include "other.yar"\nrule a { condition: true }')).toBeUndefined();
    expect(fingerprintRules('rule a { condition: true')).toBeUndefined();
    expect(
      fingerprintRules('rule a { strings: $a = "unterminated\n condition: $a }'),
    ).toBeUndefined();
  });

  it('keeps strings, regular expressions and hex strings whole', () => {
    expect(tokenize('$a = "x } y" $r = /a\\/}/ $h = { 4D }')).toEqual([
      '$a',
      '=',
      '"x } y"',
      '$r',
      '=',
      '/a\\/}/',
      '$h',
      '=',
      '{',
      '4D',
      '}',
    ]);
  });
});

describe('fingerprintRuleFiles', () => {
  it('fingerprints per rule, and per file including what the file includes', async () => {
    const { dir, remove } = temporaryDirectory('fingerprint');
    try {
      await fs.writeFile(path.join(dir, 'a.yar'), 'rule a { condition: true }');
      await fs.writeFile(path.join(dir, 'inc.yar'), 'rule from_include { condition: true }');
      await fs.writeFile(
        path.join(dir, 'b.yar'),
        'include "inc.yar"\nrule b { condition: from_include }',
      );
      const sources = ['a.yar', 'b.yar'].map((name) => ({
        path: path.join(dir, name),
        namespace: `own/${name}`,
      }));

      const before = await fingerprintRuleFiles(sources);
      await fs.writeFile(path.join(dir, 'inc.yar'), 'rule from_include { condition: false }');
      const after = await fingerprintRuleFiles(sources);

      expect(Object.keys(before.rules)).toEqual(['own/a.yar:a']);
      expect(Object.keys(before.files)).toEqual(['own/a.yar', 'own/b.yar']);
      expect(after.files['own/b.yar']).not.toBe(before.files['own/b.yar']);
      expect(after.files['own/a.yar']).toBe(before.files['own/a.yar']);
    } finally {
      remove();
    }
  });
});
