import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { findRuleFiles, isRuleFile } from './discover';
import { temporaryDirectory } from './testing';

describe('findRuleFiles', () => {
  let tmp: ReturnType<typeof temporaryDirectory>;
  beforeEach(() => {
    tmp = temporaryDirectory('discover');
  });
  afterEach(() => tmp.remove());

  it('finds .yar and .yara files recursively, namespaced by their path relative to rules/', async () => {
    const files = ['own/eicar.yara', 'github.com/org/repo/yara/apt.yar', 'top.YAR'];
    for (const file of files) {
      mkdirSync(path.dirname(path.join(tmp.dir, file)), { recursive: true });
      writeFileSync(path.join(tmp.dir, file), 'rule r { condition: true }');
    }
    writeFileSync(path.join(tmp.dir, 'rule_sources.json'), '{"repos": []}');
    writeFileSync(path.join(tmp.dir, 'own', 'README.md'), 'not a rule');

    const found = await findRuleFiles(tmp.dir);

    expect(found).toEqual([
      {
        path: path.join(tmp.dir, 'github.com/org/repo/yara/apt.yar'),
        namespace: 'github.com/org/repo/yara/apt.yar',
      },
      { path: path.join(tmp.dir, 'own/eicar.yara'), namespace: 'own/eicar.yara' },
      { path: path.join(tmp.dir, 'top.YAR'), namespace: 'top.YAR' },
    ]);
  });

  it('skips the samples directory, hidden directories and symbolic links', async () => {
    for (const dir of ['samples/positive/x', '.own.staging-1', 'nested/samples', 'outside']) {
      mkdirSync(path.join(tmp.dir, dir), { recursive: true });
    }
    writeFileSync(
      path.join(tmp.dir, 'samples/positive/x/looks-like.yar'),
      'rule r { condition: true }',
    );
    writeFileSync(
      path.join(tmp.dir, '.own.staging-1/half-copied.yar'),
      'rule r { condition: true }',
    );
    writeFileSync(path.join(tmp.dir, 'nested/samples/kept.yar'), 'rule r { condition: true }');
    writeFileSync(path.join(tmp.dir, 'outside/real.yar'), 'rule r { condition: true }');
    symlinkSync(path.join(tmp.dir, 'outside/real.yar'), path.join(tmp.dir, 'link.yar'));
    symlinkSync(path.join(tmp.dir, 'outside'), path.join(tmp.dir, 'linked-dir'));

    const namespaces = (await findRuleFiles(tmp.dir)).map((file) => file.namespace);

    expect(namespaces).toEqual(['nested/samples/kept.yar', 'outside/real.yar']);
  });

  it('tells rule files by extension', () => {
    expect(isRuleFile('a.yar')).toBe(true);
    expect(isRuleFile('a.yara')).toBe(true);
    expect(isRuleFile('a.yarb')).toBe(false);
    expect(isRuleFile('yara')).toBe(false);
  });
});
