import { once } from 'node:events';
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  writeFileSync,
} from 'node:fs';
import path from 'node:path';
import { destinationFor, loadRuleSources, RuleSourcesError } from '../rules/sources';
import { DEFAULT_RULE_SOURCES } from '../rules/paths';
import { git, runCaptured, spawnManage, temporaryDirectory } from '../rules/testing';

/** A real git repository with the given files committed. */
function makeRepository(dir: string, files: Record<string, string>): string {
  mkdirSync(dir, { recursive: true });
  git(dir, 'init', '-q');
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(dir, name)), { recursive: true });
    writeFileSync(path.join(dir, name), text);
  }
  git(dir, 'add', '-A');
  git(dir, 'commit', '-q', '-m', 'rules');
  return `file://${dir}`;
}

describe('manage.ts clone-rules', () => {
  let tmp: ReturnType<typeof temporaryDirectory>;
  let rulesDir: string;
  let sourcesFile: string;
  beforeEach(() => {
    tmp = temporaryDirectory('clone');
    rulesDir = path.join(tmp.dir, 'rules');
    sourcesFile = path.join(tmp.dir, 'rule_sources.json');
    mkdirSync(rulesDir);
  });
  afterEach(() => tmp.remove());

  const writeSources = (repos: unknown[]) => writeFileSync(sourcesFile, JSON.stringify({ repos }));
  const clone = () =>
    runCaptured(['clone-rules', '--rules-dir', rulesDir, '--sources', sourcesFile]);

  it('copies the included .yar/.yara files of each source to rules/<host>/<repo path>', async () => {
    const repoDir = path.join(tmp.dir, 'upstream', 'signatures.git');
    const url = makeRepository(repoDir, {
      'yara/apt.yar': 'rule apt { condition: false }',
      'yara/crime.yara': 'rule crime { condition: false }',
      'yara/excluded.yar': 'rule excluded { condition: false }',
      'yara/deeper/nested.yar': 'rule nested { condition: false }',
      'yara/notes.txt': 'not a rule',
      'other/elsewhere.yar': 'rule elsewhere { condition: false }',
    });
    writeSources([{ url, include: ['yara/*'], exclude: ['yara/excluded.yar'] }]);

    const run = await clone();

    const destination = path.join(
      rulesDir,
      'localhost',
      tmp.dir.slice(1),
      'upstream',
      'signatures',
    );
    expect(run.code).toBe(0);
    expect(run.stdout).toContain(`localhost${tmp.dir}/upstream/signatures: 2 rule files`);
    expect(run.stdout).toContain('cloned 1 of 1 sources (2 rule files)');
    expect(readFileSync(path.join(destination, 'yara', 'apt.yar'), 'utf8')).toBe(
      'rule apt { condition: false }',
    );
    expect(existsSync(path.join(destination, 'yara', 'crime.yara'))).toBe(true);
    expect(existsSync(path.join(destination, 'yara', 'excluded.yar'))).toBe(false);
    expect(existsSync(path.join(destination, 'yara', 'deeper'))).toBe(false);
    expect(existsSync(path.join(destination, 'yara', 'notes.txt'))).toBe(false);
    expect(existsSync(path.join(destination, 'other'))).toBe(false);
  });

  it('replaces a source’s previous copy after a successful clone', async () => {
    const repoDir = path.join(tmp.dir, 'repo');
    const url = makeRepository(repoDir, { 'old.yar': 'rule old { condition: false }' });
    writeSources([{ url }]);
    expect((await clone()).code).toBe(0);

    git(repoDir, 'rm', '-q', 'old.yar');
    writeFileSync(path.join(repoDir, 'new.yar'), 'rule new { condition: false }');
    git(repoDir, 'add', '-A');
    git(repoDir, 'commit', '-q', '-m', 'replace');
    const run = await clone();

    const destination = path.join(rulesDir, 'localhost', tmp.dir.slice(1), 'repo');
    expect(run.code).toBe(0);
    expect(existsSync(path.join(destination, 'new.yar'))).toBe(true);
    expect(existsSync(path.join(destination, 'old.yar'))).toBe(false);
  });

  it('never leaves part of a source’s previous copy when killed while replacing it', async () => {
    const count = 2000;
    const files = Object.fromEntries(
      Array.from({ length: count }, (_, i) => [`r${i}.yar`, `rule r${i} { condition: false }`]),
    );
    const url = makeRepository(path.join(tmp.dir, 'upstream', 'many'), files);
    writeSources([{ url }]);
    expect((await clone()).code).toBe(0);
    const destination = path.join(rulesDir, 'localhost', tmp.dir.slice(1), 'upstream', 'many');
    const rulesIn = (): number | undefined => {
      try {
        return readdirSync(destination).length;
      } catch {
        return undefined; // between the two renames of the swap
      }
    };
    expect(rulesIn()).toBe(count);

    // Clone again, and SIGKILL the moment the copy in place holds only part of the rules.
    const child = spawnManage(['clone-rules', '--rules-dir', rulesDir, '--sources', sourcesFile]);
    child.stdout.resume();
    child.stderr.resume();
    let partial: number | undefined;
    const watch = setInterval(() => {
      const seen = rulesIn();
      if (partial === undefined && seen !== undefined && seen < count) {
        partial = seen;
        child.kill('SIGKILL');
      }
    }, 1);
    const [code, signal] = (await once(child, 'exit')) as [number | null, string | null];
    clearInterval(watch);

    expect({ partial, rules: rulesIn() }).toEqual({ partial: undefined, rules: count });
    expect([code, signal]).toEqual([0, null]);
  }, 60_000);

  it('reports a failing source, keeps its previous copy and goes on with the rest (exit 1)', async () => {
    const flakyDir = path.join(tmp.dir, 'flaky');
    const flakyUrl = makeRepository(flakyDir, { 'kept.yar': 'rule kept { condition: false }' });
    const goodUrl = makeRepository(path.join(tmp.dir, 'good'), {
      'a.yar': 'rule a { condition: false }',
    });
    writeSources([{ url: flakyUrl }, { url: goodUrl }]);
    expect((await clone()).code).toBe(0);

    renameSync(flakyDir, path.join(tmp.dir, 'gone'));
    writeSources([{ url: flakyUrl }, { url: goodUrl }]);
    const run = await clone();

    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(new RegExp(`^error: ${flakyUrl}: git clone .* failed: `, 'm'));
    expect(run.stdout).toContain(`localhost${tmp.dir}/good: 1 rule files`);
    expect(run.stdout).toContain(
      'cloned 1 of 2 sources (1 rule files); 1 failed and kept their previous copy',
    );
    expect(
      existsSync(path.join(rulesDir, 'localhost', tmp.dir.slice(1), 'flaky', 'kept.yar')),
    ).toBe(true);
  });

  it('rejects an invalid sources file naming the field', async () => {
    writeFileSync(sourcesFile, JSON.stringify({ repos: [{ include: ['*.yar'] }] }));

    const run = await clone();

    expect(run.code).toBe(1);
    expect(run.stderr).toContain('repos.0.url');
  });
});

describe('rule sources', () => {
  it('rejects two entries that would share a destination', async () => {
    const tmp = temporaryDirectory('sources');
    try {
      const file = path.join(tmp.dir, 'rule_sources.json');
      const repos = [
        { url: 'https://github.com/org/rules.git', include: ['a/*.yar'] },
        { url: 'https://github.com/org/rules', include: ['b/*.yar'] },
      ];
      writeFileSync(file, JSON.stringify({ repos }));

      await expect(loadRuleSources(file)).rejects.toThrow(
        /both be copied to rules\/github\.com\/org\/rules/,
      );
    } finally {
      tmp.remove();
    }
  });

  it('the committed rule_sources.json is valid', async () => {
    const sources = await loadRuleSources(DEFAULT_RULE_SOURCES);

    expect(sources.repos.length).toBeGreaterThanOrEqual(2);
    expect(sources.repos.map((repo) => destinationFor(repo.url))).toEqual([
      'github.com/Neo23x0/signature-base',
      'github.com/YARA-Rules/rules',
    ]);
  });

  it('derives <host>/<repo path> from https, ssh and scp-like URLs', () => {
    expect(destinationFor('https://github.com/Neo23x0/signature-base.git')).toBe(
      'github.com/Neo23x0/signature-base',
    );
    expect(destinationFor('ssh://git@gitlab.example.com/team/rules')).toBe(
      'gitlab.example.com/team/rules',
    );
    expect(destinationFor('git@github.com:org/yara-rules.git')).toBe('github.com/org/yara-rules');
    expect(destinationFor('file:///srv/git/rules.git')).toBe('localhost/srv/git/rules');
  });

  it('refuses URLs that would escape rules/ or land on the samples', () => {
    expect(destinationFor('https://example.com/../../etc')).toBe('example.com/etc'); // URL-normalized
    expect(() => destinationFor('https://example.com/a%2F..%2F..%2Fb')).toThrow(RuleSourcesError);
    expect(() => destinationFor('https://samples/positive/x')).toThrow(RuleSourcesError);
    expect(() => destinationFor('file:///')).toThrow(RuleSourcesError);
    expect(() => destinationFor('not a url')).toThrow(RuleSourcesError);
  });
});
