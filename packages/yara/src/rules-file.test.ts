import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { loadRules, RulesLoadError, YaraError } from './index';
import { compileTexts, makeTempDir, type TempDir } from './testing';

const RULES = {
  'a.yar': 'rule alpha : t { meta: n = 1 strings: $a = "alpha" condition: $a }',
  'b.yar': 'rule beta { strings: $b = "beta" condition: $b and filename == "x.bin" }',
};

describe('saving and loading compiled rules', () => {
  let dir: TempDir;
  beforeEach(() => {
    dir = makeTempDir();
  });
  afterEach(() => dir.remove());

  it('loads saved rules that scan exactly like the compiled ones, externals included', async () => {
    const compiled = await compileTexts(dir, RULES);
    const file = join(dir.path, 'compiled.yac');
    const data = Buffer.from('alpha and beta');
    const options = { externals: { filename: 'x.bin' } };

    await compiled.save(file);
    const loaded = await loadRules(file);

    expect(loaded.ruleCount).toBe(compiled.ruleCount);
    const fromLoaded = await loaded.scanBuffer(data, options);
    expect(fromLoaded).toEqual(await compiled.scanBuffer(data, options));
    expect(fromLoaded.matches.map((m) => m.rule).sort()).toEqual(['alpha', 'beta']);
  });

  it('replaces an existing file and leaves no temporary files behind', async () => {
    const first = await compileTexts(dir, { 'one.yar': 'rule one { condition: true }' });
    const second = await compileTexts(dir, RULES);
    const file = join(dir.path, 'compiled.yac');

    await first.save(file);
    await second.save(file);

    expect((await loadRules(file)).ruleCount).toBe(2);
    expect(readdirSync(dir.path).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });

  it('fails to save into a missing directory with a YaraError naming the path', async () => {
    const rules = await compileTexts(dir, RULES);
    const file = join(dir.path, 'no', 'such', 'dir', 'compiled.yac');

    const error = await rules.save(file).catch((e: unknown) => e);

    expect(error).toBeInstanceOf(YaraError);
    expect((error as YaraError).message).toContain(file);
  });

  it('rejects a missing file with RulesLoadError', async () => {
    const file = join(dir.path, 'missing.yac');

    const error = await loadRules(file).catch((e: unknown) => e);

    expect(error).toBeInstanceOf(RulesLoadError);
    expect(error).toMatchObject({ code: 'ENOENT', message: expect.stringContaining(file) });
  });

  it('rejects a file that is not compiled rules with RulesLoadError', async () => {
    const file = dir.write('not-rules.yac', 'rule alpha { condition: true }');

    const error = await loadRules(file).catch((e: unknown) => e);

    expect(error).toBeInstanceOf(RulesLoadError);
    expect(error).toMatchObject({
      code: 'ERROR_INVALID_FILE',
      message: expect.stringContaining(file),
    });
  });

  it('rejects truncated and damaged files with RulesLoadError', async () => {
    const rules = await compileTexts(dir, RULES);
    const good = join(dir.path, 'good.yac');
    await rules.save(good);
    const bytes = readFileSync(good);
    const truncated = dir.write('truncated.yac', bytes.subarray(0, Math.floor(bytes.length / 2)));
    const damaged = Buffer.from(bytes);
    damaged.fill(0x41, 40, 200);
    const damagedFile = dir.write('damaged.yac', damaged);

    await expect(loadRules(truncated)).rejects.toMatchObject({
      constructor: RulesLoadError,
      code: 'ERROR_CORRUPT_FILE',
    });
    await expect(loadRules(damagedFile)).rejects.toBeInstanceOf(RulesLoadError);
  });

  it('rejects a file from another libyara format version with RulesLoadError', async () => {
    const rules = await compileTexts(dir, RULES);
    const file = join(dir.path, 'rules.yac');
    await rules.save(file);
    const bytes = readFileSync(file);
    bytes.writeUInt32LE(999, 4); // the format version follows the "YARA" magic
    writeFileSync(file, bytes);

    await expect(loadRules(file)).rejects.toMatchObject({
      constructor: RulesLoadError,
      code: 'ERROR_UNSUPPORTED_FILE_VERSION',
    });
  });

  it('rejects a directory with RulesLoadError', async () => {
    await expect(loadRules(dir.path)).rejects.toMatchObject({
      constructor: RulesLoadError,
      code: 'NOT_REGULAR_FILE',
    });
  });
});
