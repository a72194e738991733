import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

import { CodeVersions, DeploymentError } from './lambda-code';
import { tempDir, writeZip } from './testing/fixtures';

const run = promisify(execFile);

describe('CodeVersions', () => {
  let dir: { path: string; remove: () => Promise<void> };
  let versions: () => CodeVersions;

  beforeEach(async () => {
    dir = await tempDir('ba-code-');
    versions = () => new CodeVersions(join(dir.path, 'versions.json'), join(dir.path, 'code'));
  });
  afterEach(() => dir.remove());

  it('unpacks each distinct zip as the next version, and keeps the numbers across a restart', async () => {
    const zip = join(dir.path, 'fn.zip');
    await writeZip(zip, { 'index.js': 'exports.handler = () => 1;' });
    const code = versions();
    await code.load();

    const first = await code.deploy('fn', zip);
    const same = await code.deploy('fn', zip);
    await writeZip(zip, { 'index.js': 'exports.handler = () => 2;', 'lib/x.js': '' });
    const second = await code.deploy('fn', zip);
    const restarted = versions();
    await restarted.load();
    const afterRestart = await restarted.deploy('fn', zip);

    expect([first.version, same.version, second.version, afterRestart.version]).toEqual([
      1, 1, 2, 2,
    ]);
    expect(same).toBe(first);
    expect(await readFile(join(second.codeDir, 'index.js'), 'utf8')).toContain('() => 2');
    expect(existsSync(join(second.codeDir, 'lib', 'x.js'))).toBe(true);
    expect(code.current('fn')).toBe(second);
  });

  it('refuses a zip whose entry would land outside the code directory, writing nothing there', async () => {
    const zip = join(dir.path, 'evil.zip');
    // yazl refuses such names; Python's zipfile writes them as an attacker would.
    await run('python3', [
      '-c',
      'import sys, zipfile\nwith zipfile.ZipFile(sys.argv[1], "w") as z:\n  z.writestr("index.js", "")\n  z.writestr("../../escaped.js", "pwned")',
      zip,
    ]);
    const code = versions();
    await code.load();

    const failure = code.deploy('fn', zip);

    await expect(failure).rejects.toThrow(DeploymentError);
    await expect(failure).rejects.toThrow(`cannot unpack ${zip}`);
    await failure.catch((error: Error) =>
      expect(String((error.cause as Error).message)).toContain('../../escaped.js'),
    );
    expect(existsSync(join(dir.path, 'escaped.js'))).toBe(false);
    expect(existsSync(join(dir.path, 'code', 'escaped.js'))).toBe(false);
  });

  it('names a missing zip', async () => {
    const code = versions();
    await code.load();

    await expect(code.deploy('fn', join(dir.path, 'none.zip'))).rejects.toThrow(
      /deployment package missing: .*none\.zip/,
    );
  });
});
