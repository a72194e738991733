import type { RuleMatch } from '@binaryalert/yara';
import { pathInsideObject, ruleId } from './analysis';
import { localFileSummary, objectSummary } from './summary';
import { analysisOf } from './testing';

function match(rule: string, namespace: string, identifiers: string[]): RuleMatch {
  return {
    rule,
    namespace,
    tags: ['malware'],
    meta: { author: 'me', score: 7, active: true },
    strings: identifiers.map((identifier, index) => ({ identifier, offsets: [index] })),
  };
}

describe('objectSummary and localFileSummary', () => {
  it('shapes the analysis like the original BinaryAlert summary', () => {
    const analysis = analysisOf({
      sha256: 'a'.repeat(64),
      md5: 'b'.repeat(32),
      size: 10,
      scanMs: 1,
      matches: [match('first', 'ns/one.yar', ['$b', '$a', '$b']), match('second', 'two.yar', [])],
    });

    const summary = objectSummary({
      object: {
        bucket: 'bucket',
        key: 'key',
        lastModified: '2026-01-01T00:00:00.000Z',
        metadata: { filepath: '/x' },
      },
      analysis,
    });

    expect(summary).toEqual({
      FileInfo: {
        MD5: 'b'.repeat(32),
        SHA256: 'a'.repeat(64),
        S3LastModified: '2026-01-01T00:00:00.000Z',
        S3Location: 'S3:bucket:key',
        S3Metadata: { filepath: '/x' },
      },
      MatchedRules: {
        Rule1: {
          RuleName: 'first',
          RuleFile: 'ns/one.yar',
          RuleTags: ['malware'],
          Meta: { author: 'me', score: 7, active: true },
          MatchedStrings: ['$a', '$b'],
        },
        Rule2: {
          RuleName: 'second',
          RuleFile: 'two.yar',
          RuleTags: ['malware'],
          Meta: { author: 'me', score: 7, active: true },
          MatchedStrings: [],
        },
      },
      NumMatchedRules: 2,
      Coverage: 'complete',
      NumMembersScanned: 0,
      Unscanned: [],
    });
    expect(ruleId(analysis.matches[0]!)).toBe('ns/one.yar:first');
  });

  it('names the member and its SHA-256 of a match inside the object, and what went unscanned', () => {
    const analysis = analysisOf({
      matches: [
        { ...match('evil', 'a.yar', ['$a']), member: { path: 'key!x.zip!e.exe', sha256: 'e' } },
      ],
      members: [
        { path: 'key!x.zip', type: 'file', depth: 1, size: 9, sha256: 'z' },
        { path: 'key!x.zip!e.exe', type: 'file', depth: 2, size: 5, sha256: 'e' },
        { path: 'key!x.zip!link', type: 'symlink', depth: 2, linkTarget: '/etc/passwd' },
      ],
      unscanned: [{ path: 'key!x.zip!locked.exe', reason: 'encrypted', detail: 'no password fit' }],
      coverage: 'partial',
    });

    const summary = objectSummary({
      object: { bucket: 'b', key: 'key', lastModified: '', metadata: {} },
      analysis,
    });

    expect(summary.MatchedRules.Rule1).toMatchObject({
      RuleName: 'evil',
      MemberPath: 'key!x.zip!e.exe',
      MemberSHA256: 'e',
    });
    expect(summary).toMatchObject({
      Coverage: 'partial',
      NumMembersScanned: 2,
      Unscanned: [{ Path: 'key!x.zip!locked.exe', Reason: 'encrypted', Detail: 'no password fit' }],
    });
    expect(pathInsideObject(analysis, 'key!x.zip!e.exe')).toBe('x.zip!e.exe');
  });

  it('says Path for a local file, with the old S3 names kept as deprecated copies', () => {
    const summary = localFileSummary(analysisOf({}), {
      path: 'samples/x.exe',
      lastModified: '2026-01-01T00:00:00.000Z',
    });

    expect(summary.FileInfo).toEqual({
      MD5: 'm',
      SHA256: 's',
      Path: 'samples/x.exe',
      LastModified: '2026-01-01T00:00:00.000Z',
      S3Location: 'samples/x.exe',
      S3LastModified: '2026-01-01T00:00:00.000Z',
    });
    expect(summary).toMatchObject({ MatchedRules: {}, NumMatchedRules: 0 });
  });
});
