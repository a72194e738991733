import { execFile } from 'node:child_process';
import { chmodSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { REPO_ROOT } from '@binaryalert/deployment';
import type { LocalFileSummary } from '@binaryalert/core';
import { compileRules } from '@binaryalert/yara';
import { cliBundle } from '../../launcher.cjs';
import { temporaryDirectory } from '../rules/testing';

const EICAR = 'X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*';
const NOBODY = 65534;
const run = promisify(execFile);

describe('manage.ts scan on a large hostile tree', () => {
  let tmp: ReturnType<typeof temporaryDirectory>;
  beforeAll(async () => {
    await cliBundle(); // built by this user, so the unprivileged run below only reads it
  }, 120_000);
  beforeEach(() => {
    tmp = temporaryDirectory('tree');
    chmodSync(tmp.dir, 0o755);
  });
  afterEach(() => tmp.remove());

  it('streams the matches of 4,000 files past link loops, deep nesting and unreadable entries', async () => {
    const tree = path.join(tmp.dir, 'tree');
    for (let d = 0; d < 40; d++) {
      const dir = path.join(tree, `dir-${d}`);
      mkdirSync(dir, { recursive: true });
      for (let f = 0; f < 100; f++)
        writeFileSync(path.join(dir, `file-${f}.bin`), `data ${d}/${f}`);
    }
    const planted = [
      path.join(tree, 'dir-0', 'evil.com'),
      path.join(tree, 'dir-39', 'evil.com'),
      path.join(tree, ...Array.from({ length: 40 }, (_, i) => `deep-${i}`), 'evil.com'),
    ];
    for (const file of planted) {
      mkdirSync(path.dirname(file), { recursive: true });
      writeFileSync(file, EICAR);
    }
    symlinkSync(tree, path.join(tree, 'dir-5', 'back-to-root'));
    symlinkSync(path.join(tree, 'loop-b'), path.join(tree, 'loop-a'));
    symlinkSync(path.join(tree, 'loop-a'), path.join(tree, 'loop-b'));
    const lockedDir = path.join(tree, 'locked-dir');
    mkdirSync(lockedDir);
    writeFileSync(path.join(lockedDir, 'hidden.com'), EICAR);
    chmodSync(lockedDir, 0o000);
    const lockedFile = path.join(tree, 'locked-file.com');
    writeFileSync(lockedFile, EICAR);
    chmodSync(lockedFile, 0o000);
    const rulesFile = path.join(tmp.dir, 'eicar.yara');
    writeFileSync(rulesFile, 'rule eicar { strings: $a = "EICAR-STANDARD" condition: $a }');
    const compiled = path.join(tmp.dir, 'compiled.bin');
    await (await compileRules([{ path: rulesFile, namespace: 'eicar.yara' }])).rules.save(compiled);

    // Root reads anything: run as nobody so the permission bits above are enforced.
    const asRoot = process.getuid?.() === 0;
    const result = await run(
      process.execPath,
      [
        path.join(REPO_ROOT, 'manage.ts'),
        'scan',
        '--jsonl',
        '--matches-only',
        '--concurrency',
        '4',
        '--rules',
        compiled,
        tree,
      ],
      { cwd: REPO_ROOT, ...(asRoot ? { uid: NOBODY, gid: NOBODY } : {}) },
    ).catch((error: { code: number; stdout: string; stderr: string }) => error);

    expect('code' in result ? result.code : 0).toBe(1);
    const matches = result.stdout
      .trimEnd()
      .split('\n')
      .map((line) => (JSON.parse(line) as LocalFileSummary).FileInfo.Path);
    expect(matches.sort()).toEqual([...planted].sort());
    const errors = result.stderr.trimEnd().split('\n');
    expect(errors).toEqual(
      expect.arrayContaining([
        `skipped: ${tree}/dir-5/back-to-root: directory already scanned (reached again through a symbolic link)`,
        `error: ${tree}/loop-a: symbolic link loop`,
        `error: ${tree}/loop-b: symbolic link loop`,
        expect.stringMatching(
          new RegExp(`^error: ${lockedDir}: cannot list directory: EACCES: permission denied`),
        ),
        expect.stringMatching(
          new RegExp(`^error: ${lockedFile}: cannot read: .*Permission denied`),
        ),
      ]),
    );
    expect(errors.at(-1)).toMatch(
      /^scanned 4003 files \(.* MB\) in [\d.]+ s: 3 matched, 4000 clean, 4 could not be scanned, 1 skipped$/,
    );
  }, 120_000);
});
