import { execFile } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { REPO_ROOT } from '@binaryalert/deployment';

import { cliBundle } from '../launcher.cjs';

const MANAGE = path.join(REPO_ROOT, 'manage.ts');
const EICAR_SAMPLE = path.join(REPO_ROOT, 'rules', 'samples', 'positive', 'eicar_test_file');
const run = promisify(execFile);
/** The unprivileged user a root test runs as (Debian's nobody). */
const NOBODY = 65534;

interface Inputs {
  files: Record<string, { mtimeMs: number; size: number }>;
}

/** Runs `node manage.ts ARGS` as a user does; never throws, returns the exit code and output. */
async function manage(args: string[], nodeArgs: string[] = [], env: NodeJS.ProcessEnv = {}) {
  try {
    const { stdout, stderr } = await run(process.execPath, [...nodeArgs, MANAGE, ...args], {
      cwd: REPO_ROOT,
      env: { ...process.env, ...env },
    });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code: number; stdout: string; stderr: string };
    return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr };
  }
}

describe('manage.ts launcher (esbuild bundle, lazily required packages)', () => {
  let dir: string;
  let bundle: string;
  beforeAll(async () => {
    bundle = await cliBundle();
  }, 120_000);
  beforeEach(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'launcher-test-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('prints the help without loading the AWS SDK, esbuild or the YARA addon', async () => {
    const loadedList = path.join(dir, 'loaded.json');
    const recorder = path.join(dir, 'record-loaded.cjs');
    writeFileSync(
      recorder,
      `process.on('exit', () => require('node:fs').writeFileSync(${JSON.stringify(loadedList)}, JSON.stringify(Object.keys(require.cache))));`,
    );

    const result = await manage(['--help'], ['--require', recorder]);

    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/Commands:[\s\S]*scan[\s\S]*retro-analyze/);
    const loaded = JSON.parse(readFileSync(loadedList, 'utf8')) as string[];
    expect(loaded).toContain(path.join(REPO_ROOT, 'packages', 'cli', 'launcher.cjs'));
    expect(loaded.filter((file) => /@aws-sdk|@smithy|esbuild|yara\.node|yazl/.test(file))).toEqual(
      [],
    );
  });

  it('loads what a command uses when it runs: scan finds EICAR with the addon', async () => {
    const result = await manage(['scan', EICAR_SAMPLE]);

    expect(result.stdout).toMatch(/MATCH\s+\S*eicar\.com\s+\S*:eicar_test_file/);
    expect(result.code).toBe(1); // a finding
  });

  it('rebuilds the bundle when a file it was built from changed', async () => {
    const inputsFile = path.join(path.dirname(bundle), 'inputs.json');
    const inputs = JSON.parse(readFileSync(inputsFile, 'utf8')) as Inputs;
    const main = path.join(REPO_ROOT, 'packages', 'cli', 'src', 'main.ts');
    expect(inputs.files[main]).toBeDefined();
    // As if main.ts had been edited after the build.
    inputs.files[main] = { mtimeMs: 1, size: 1 };
    writeFileSync(inputsFile, JSON.stringify(inputs));

    const result = await manage(['--help']);

    expect(result.code).toBe(0);
    const rebuilt = JSON.parse(readFileSync(inputsFile, 'utf8')) as Inputs;
    expect(rebuilt.files[main]?.mtimeMs).not.toBe(1);
  });

  it('runs from a bundle made in memory for a user who cannot write the cache', async () => {
    // Another user's checkout, or a read-only one, whose bundle is out of date. A cache of its own:
    // other tests' runs of manage.ts would bring the shared one up to date meanwhile.
    chmodSync(dir, 0o755);
    const cacheDir = path.join(dir, 'cache');
    const env = { BINARYALERT_CLI_CACHE: cacheDir };
    expect((await manage(['--help'], [], env)).code).toBe(0);
    const inputsFile = path.join(cacheDir, 'inputs.json');
    const inputs = JSON.parse(readFileSync(inputsFile, 'utf8')) as Inputs;
    const main = path.join(REPO_ROOT, 'packages', 'cli', 'src', 'main.ts');
    inputs.files[main] = { mtimeMs: 1, size: 1 };
    writeFileSync(inputsFile, JSON.stringify(inputs));
    const asRoot = process.getuid?.() === 0;
    if (!asRoot) chmodSync(cacheDir, 0o555);
    try {
      const result = await new Promise<{ code: number; stdout: string; stderr: string }>(
        (resolve) => {
          execFile(
            process.execPath,
            [MANAGE, 'scan', EICAR_SAMPLE],
            {
              cwd: REPO_ROOT,
              env: { ...process.env, ...env },
              ...(asRoot ? { uid: NOBODY, gid: NOBODY } : {}),
            },
            (error, stdout, stderr) =>
              resolve({ code: (error as { code?: number } | null)?.code ?? 0, stdout, stderr }),
          );
        },
      );

      expect(result.stderr).not.toMatch(/could not bundle/);
      expect(result.stdout).toMatch(/MATCH\s+\S*eicar\.com\s+\S*:eicar_test_file/);
      expect(result.code).toBe(1); // a finding
      // Nothing written: the bundle is still out of date for the next user who can write it.
      const after = JSON.parse(readFileSync(inputsFile, 'utf8')) as Inputs;
      expect(after.files[main]?.mtimeMs).toBe(1);
    } finally {
      if (!asRoot) chmodSync(cacheDir, 0o755);
    }
    // Whoever can write it brings it up to date.
    expect((await manage(['--help'], [], env)).code).toBe(0);
    const rebuilt = JSON.parse(readFileSync(inputsFile, 'utf8')) as Inputs;
    expect(rebuilt.files[main]?.mtimeMs).not.toBe(1);
  });

  it('runs when the code cache is garbage (V8 rejects it) and replaces it', async () => {
    const codeCache = `${bundle}.v8cache`;
    writeFileSync(codeCache, 'not a V8 code cache');

    const result = await manage(['--help']);

    expect(result.code).toBe(0);
    expect(result.stdout).toContain('Usage: manage.ts');
    expect(readFileSync(codeCache).subarray(0, 19).toString()).not.toBe('not a V8 code cache');
  });
});
