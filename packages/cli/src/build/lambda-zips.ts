import { createHash } from 'node:crypto';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import * as esbuild from 'esbuild';
import {
  FUNCTION_NAMES,
  LAMBDA_DIST_DIR,
  REPO_ROOT,
  RULES_DIR,
  functionSpec,
  type FunctionName,
  type ZipAsset,
} from '@binaryalert/deployment';

import {
  COMPILED_RULES_FILE,
  RULES_MANIFEST_FILE,
  SEVEN_ZIP_WORKER_FILE,
  SEVEN_ZIP_WORKER_SOURCE,
} from '@binaryalert/core';
import { compileRulesDirectory } from '../rules/compile';
import { writeReproducibleZip, type ZipEntry } from './zip';

/** The functions the build writes a zip for: every one of the manifest. */
export const LAMBDA_FUNCTIONS = FUNCTION_NAMES;
export type LambdaFunctionName = FunctionName;

/** File names inside the zips (what each one holds: the manifest's zipAssets); handler `index.handler`. */
export { COMPILED_RULES_FILE, RULES_MANIFEST_FILE };
export const ADDON_FILE = 'yara.node';
/** The bundled 7z-wasm loads its module from beside index.js under this name. */
export const SEVEN_ZIP_WASM_FILE = '7zz.wasm';
/** libmagic's database, which rules that `import "magic"` need and Lambda images lack. */
export const MAGIC_DATABASE_FILE = 'magic.mgc';
const SYSTEM_MAGIC_DATABASE = '/usr/lib/file/magic.mgc';
/** Node version the bundles target: the oldest Lambda Node runtime BinaryAlert supports. */
export const BUNDLE_TARGET = 'node20';

export interface BuildLambdaZipsOptions {
  /** Where the zips go (default `<repo>/dist/lambda`, where Terraform reads them). */
  outDir?: string;
  /** The rules compiled into the analyzer zip (default `<repo>/rules`). */
  rulesDir?: string;
  /** Which functions to build (default all three). */
  functions?: readonly LambdaFunctionName[];
  /** Progress lines for the user. */
  log?: (line: string) => void;
}

export interface BuiltZip {
  function: LambdaFunctionName;
  path: string;
  sha256: string;
  bytes: number;
  entries: string[];
}

/** The Lambda build failed (bundling, the native addon or the rules); `cause` has the details. */
export class LambdaBuildError extends Error {
  override readonly name = 'LambdaBuildError';
}

const addonDir = path.join(REPO_ROOT, 'packages', 'yara', 'build', 'Release');

/**
 * Bundles each function's `src/handler.ts` (from the function manifest) with esbuild (AWS SDK v3
 * included, minified, source map) and writes `<outDir>/<function>.zip` reproducibly, with the
 * zip assets its manifest entry names. A bundle that requires the yara addon carries it (esbuild
 * copies the `.node` its binding requires and points the require at `./yara.node`).
 */
export async function buildLambdaZips(options: BuildLambdaZipsOptions = {}): Promise<BuiltZip[]> {
  const outDir = path.resolve(options.outDir ?? LAMBDA_DIST_DIR);
  const functions = options.functions ?? LAMBDA_FUNCTIONS;
  const log = options.log ?? (() => undefined);

  const specs = functions.map(functionSpec);
  if (specs.some((spec) => spec.zipAssets.includes('native-libraries'))) await ensureAddon(log);
  const built: BuiltZip[] = [];
  for (const spec of specs) {
    const name = spec.name;
    const entries = await bundle(spec.name, {
      index: path.join(REPO_ROOT, spec.packageDir, 'src', 'handler.ts'),
    });
    for (const asset of spec.zipAssets) {
      entries.push(...(await zipAsset(asset, name, options.rulesDir, log)));
    }
    const file = path.join(outDir, `${name}.zip`);
    await writeReproducibleZip(file, entries);
    const data = await readFile(file);
    const zip: BuiltZip = {
      function: name,
      path: file,
      sha256: createHash('sha256').update(data).digest('hex'),
      bytes: data.length,
      entries: entries.map((entry) => entry.name).sort(),
    };
    log(`${name}.zip: ${zip.entries.join(', ')} (${formatBytes(zip.bytes)})`);
    built.push(zip);
  }
  return built;
}

/** The files of one kind of zip asset. */
async function zipAsset(
  asset: ZipAsset,
  name: LambdaFunctionName,
  rulesDir: string | undefined,
  log: (line: string) => void,
): Promise<ZipEntry[]> {
  switch (asset) {
    case 'native-libraries':
      return sharedLibraries();
    case 'magic-database':
      return [{ name: MAGIC_DATABASE_FILE, data: await magicDatabase() }];
    case 'compiled-rules':
      return compiledRules(rulesDir, log);
    case 'seven-zip-wasm':
      return [
        { name: SEVEN_ZIP_WASM_FILE, data: await readFile(sevenZipWasm()) },
        // 7-Zip runs in a worker thread started from this file, beside index.js.
        ...(await bundle(name, {
          [path.basename(SEVEN_ZIP_WORKER_FILE, '.js')]: SEVEN_ZIP_WORKER_SOURCE,
        })),
      ];
  }
}

/** Bundles `entryPoints` (output name -> source) for a function's zip: each `<name>.js` + map. */
async function bundle(
  name: LambdaFunctionName,
  entryPoints: Record<string, string>,
): Promise<ZipEntry[]> {
  // A fixed virtual output directory keeps the source map identical wherever the zip is written.
  const virtualOutDir = path.join(LAMBDA_DIST_DIR, name);
  let result: esbuild.BuildResult & { outputFiles: esbuild.OutputFile[] };
  try {
    result = await esbuild.build({
      absWorkingDir: REPO_ROOT,
      entryPoints,
      outdir: virtualOutDir,
      write: false,
      bundle: true,
      platform: 'node',
      target: BUNDLE_TARGET,
      format: 'cjs',
      minify: true,
      sourcemap: 'linked',
      legalComments: 'none',
      // The addon is copied next to index.js under its own name; the require is rewritten to it.
      loader: { '.node': 'copy' },
      assetNames: '[name]',
      logLevel: 'silent',
    });
  } catch (error) {
    throw new LambdaBuildError(`bundling the ${name} function failed`, { cause: error });
  }
  return result.outputFiles.map((file) => ({
    name: path.relative(virtualOutDir, file.path).split(path.sep).join('/'),
    data: Buffer.from(file.contents),
  }));
}

/** Builds the addon when it is missing (its build script is incremental and offline). */
async function ensureAddon(log: (line: string) => void): Promise<void> {
  if (existsSync(path.join(addonDir, ADDON_FILE))) return;
  log('building the yara addon (packages/yara)');
  try {
    await promisify(execFile)(
      process.execPath,
      [path.join(REPO_ROOT, 'packages', 'yara', 'scripts', 'build.js')],
      {
        cwd: path.join(REPO_ROOT, 'packages', 'yara'),
        maxBuffer: 64 * 1024 * 1024,
      },
    );
  } catch (error) {
    throw new LambdaBuildError('building the yara addon failed (see packages/yara)', {
      cause: error,
    });
  }
}

/** The magic database of the libmagic the addon links (Debian's libmagic-mgc, a libyara-dev dependency). */
/** The 7z-wasm package's module, as installed for packages/core (which uses it). */
function sevenZipWasm(): string {
  return createRequire(path.join(REPO_ROOT, 'packages', 'core', 'package.json')).resolve(
    `7z-wasm/${SEVEN_ZIP_WASM_FILE}`,
  );
}

async function magicDatabase(): Promise<Buffer> {
  try {
    return await readFile(SYSTEM_MAGIC_DATABASE);
  } catch (error) {
    throw new LambdaBuildError(
      `${SYSTEM_MAGIC_DATABASE} is missing (apt-get install libmagic-mgc); the analyzer needs it for rules that import "magic"`,
      { cause: error },
    );
  }
}

/** Shared libraries the addon ships beside itself (RPATH $ORIGIN), if any. */
async function sharedLibraries(): Promise<ZipEntry[]> {
  const names = (await readdir(addonDir)).filter((file) => /^lib.+\.so(\.\d+)*$/.test(file));
  return Promise.all(
    names.map(async (name) => ({ name, data: await readFile(path.join(addonDir, name)) })),
  );
}

/** The baked-in rules release: the compiled rules and their manifest (the analyzer's fallback). */
async function compiledRules(
  rulesDir: string | undefined,
  log: (line: string) => void,
): Promise<ZipEntry[]> {
  const scratch = await mkdtemp(path.join(os.tmpdir(), 'binaryalert-rules-'));
  try {
    const output = path.join(scratch, COMPILED_RULES_FILE);
    const summary = await compileRulesDirectory({
      rulesDir: path.resolve(rulesDir ?? RULES_DIR),
      output,
    });
    log(`compiled ${summary.ruleCount} YARA rules from ${summary.fileCount} files`);
    return [
      { name: COMPILED_RULES_FILE, data: await readFile(output) },
      { name: RULES_MANIFEST_FILE, data: await readFile(summary.manifestPath) },
    ];
  } catch (error) {
    throw new LambdaBuildError('compiling the YARA rules for the analyzer failed', {
      cause: error,
    });
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}

function formatBytes(bytes: number): string {
  return bytes >= 1024 * 1024
    ? `${(bytes / 1024 / 1024).toFixed(1)} MB`
    : `${Math.ceil(bytes / 1024)} kB`;
}
