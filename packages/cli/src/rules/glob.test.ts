import { globToRegExp, matchesAnyGlob } from './glob';

describe('globToRegExp', () => {
  it('keeps * and ? inside one path segment', () => {
    expect(globToRegExp('yara/*.yar').test('yara/apt.yar')).toBe(true);
    expect(globToRegExp('yara/*.yar').test('yara/sub/apt.yar')).toBe(false);
    expect(globToRegExp('yara/?.yar').test('yara/a.yar')).toBe(true);
    expect(globToRegExp('yara/?.yar').test('yara/ab.yar')).toBe(false);
  });

  it('lets ** span directories, including none', () => {
    const glob = globToRegExp('**/*.yara');
    expect(glob.test('a.yara')).toBe(true);
    expect(glob.test('x/y/z/a.yara')).toBe(true);
    expect(glob.test('x/y/z/a.yar')).toBe(false);
    expect(globToRegExp('rules/**').test('rules/a/b.yar')).toBe(true);
  });

  it('supports character classes, negated classes and alternations', () => {
    expect(globToRegExp('[ab].yar').test('b.yar')).toBe(true);
    expect(globToRegExp('[!ab].yar').test('b.yar')).toBe(false);
    expect(globToRegExp('[!ab].yar').test('c.yar')).toBe(true);
    expect(globToRegExp('*.{yar,yara}').test('x.yara')).toBe(true);
    expect(globToRegExp('*.{yar,yara}').test('x.txt')).toBe(false);
  });

  it('treats regular expression characters literally', () => {
    expect(globToRegExp('a+b(1).yar').test('a+b(1).yar')).toBe(true);
    expect(globToRegExp('a.yar').test('abyar')).toBe(false);
  });

  it('rejects an unclosed alternation', () => {
    expect(() => globToRegExp('{a,b')).toThrow(SyntaxError);
  });
});

describe('matchesAnyGlob', () => {
  it('matches when one glob does', () => {
    expect(matchesAnyGlob('CVE_Rules/x.yar', ['Malware/*', 'CVE_Rules/*'])).toBe(true);
    expect(matchesAnyGlob('utils/x.yar', ['Malware/*', 'CVE_Rules/*'])).toBe(false);
    expect(matchesAnyGlob('x.yar', [])).toBe(false);
  });
});
