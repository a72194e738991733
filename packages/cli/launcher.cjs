// Starts manage.ts from an esbuild bundle of packages/cli/src/main.ts instead of transpiling the
// workspace's TypeScript at every start (tsx). The bundle is built on demand into
// node_modules/.cache/binaryalert-cli (or the directory BINARYALERT_CLI_CACHE names) and rebuilt
// when any file it was built from changed.
// Third-party packages and the YARA addon are not bundled: each is required from where pnpm
// installed it, and only when the code first uses one of its exports, so `--help` never loads the
// AWS SDK, esbuild or the addon, and each command loads only what it uses.
'use strict';

const fs = require('node:fs');
const Module = require('node:module');
const path = require('node:path');
const vm = require('node:vm');

const REPO_ROOT = path.resolve(__dirname, '..', '..');
const ENTRY = path.join(__dirname, 'src', 'main.ts');
const CACHE_DIR = process.env.BINARYALERT_CLI_CACHE
  ? path.resolve(process.env.BINARYALERT_CLI_CACHE)
  : path.join(REPO_ROOT, 'node_modules', '.cache', 'binaryalert-cli');
const BUNDLE = path.join(CACHE_DIR, 'manage.js');
const INPUTS = path.join(CACHE_DIR, 'inputs.json');
// V8's compiled code for the bundle: compiling 1 MB of JavaScript is most of a cold start.
const CODE_CACHE = path.join(CACHE_DIR, 'manage.js.v8cache');
const LAZY = 'lazy-third-party';
// Pure-JavaScript packages every command needs at start (argument parsing, the zod schemas built
// at module level): bundled, one file to read instead of about a hundred.
const BUNDLED_PACKAGES = new Set(['commander', 'zod']);
// Makes esbuild treat each stand-in as an ES module whatever the package's own file extension.
const LAZY_SUFFIX = '.lazy.mjs';

/** True when the bundle exists and every file it was built from has the same size and mtime. */
function isFresh() {
  let recorded;
  try {
    recorded = JSON.parse(fs.readFileSync(INPUTS, 'utf8'));
  } catch {
    return false;
  }
  if (recorded.root !== REPO_ROOT || recorded.node !== process.version) return false;
  if (!fs.existsSync(BUNDLE)) return false;
  for (const [file, stamp] of Object.entries(recorded.files)) {
    let stat;
    try {
      stat = fs.statSync(file);
    } catch {
      return false;
    }
    if (stat.mtimeMs !== stamp.mtimeMs || stat.size !== stamp.size) return false;
  }
  return true;
}

// Run-time half of every stand-in module: a Proxy that requires the package on first use.
const LAZY_HELPERS = `
function $lazy$value(get, kind) {
  const handler = {
    get: (_target, key) => {
      const real = get();
      const value = Reflect.get(real, key, real);
      // Methods of a plain object keep the real object as \`this\` (private fields, bound state).
      return kind === 'object' && typeof value === 'function' ? value.bind(real) : value;
    },
    set: (_target, key, value) => Reflect.set(get(), key, value),
    has: (_target, key) => key in get(),
    ownKeys: () => Reflect.ownKeys(get()),
    getOwnPropertyDescriptor: (_target, key) => {
      const descriptor = Reflect.getOwnPropertyDescriptor(get(), key);
      return descriptor === undefined ? undefined : { ...descriptor, configurable: true };
    },
    getPrototypeOf: () => Reflect.getPrototypeOf(get()),
  };
  if (kind !== 'function') return new Proxy({}, handler);
  const proxy = new Proxy(function lazy() {}, {
    ...handler,
    apply: (_target, self, args) => Reflect.apply(get(), self, args),
    // \`new StandIn()\` builds the real class; a subclass keeps itself as new.target.
    construct: (_target, args, newTarget) =>
      Reflect.construct(get(), args, newTarget === proxy ? get() : newTarget),
  });
  return proxy;
}
`;

/**
 * The ES module esbuild bundles in place of a third-party package (or native addon): it exports the
 * package's names and requires the package when one of them is first used. Functions and classes
 * are stand-ins forwarding calls, `new`, `instanceof` and property reads; objects forward property
 * access; primitives (version strings and the like) are copied at build time, which is safe because
 * the package's entry file is an input of the bundle (a reinstall rebuilds it).
 */
function lazyModuleSource(resolvedPath) {
  const actual = require(resolvedPath);
  const kindOf = (value) => (typeof value === 'function' ? 'function' : 'object');
  // Internal names start with $lazy$ so no exported name (load, null...) collides with them.
  const lines = [
    `const $lazy$load = () => ($lazy$cached ??= $lazy$require(${JSON.stringify(resolvedPath)}));`,
    'let $lazy$cached;',
    '// An indirect require: esbuild leaves it to node at run time instead of bundling the package.',
    'const $lazy$require = require;',
    LAZY_HELPERS,
    `export default $lazy$value($lazy$load, ${JSON.stringify(kindOf(actual))});`,
  ];
  const isReference = (value) =>
    value !== null && (typeof value === 'object' || typeof value === 'function');
  const names = isReference(actual)
    ? Object.keys(actual).filter((name) => /^[A-Za-z_$][\w$]*$/.test(name) && name !== 'default')
    : [];
  names.forEach((name, index) => {
    const value = actual[name];
    const local = `$lazy$${index}`;
    lines.push(
      isReference(value)
        ? `const ${local} = $lazy$value(() => $lazy$load()[${JSON.stringify(name)}], ${JSON.stringify(kindOf(value))});`
        : `const ${local} = ${value === undefined ? 'undefined' : JSON.stringify(value)};`,
      `export { ${local} as ${name} };`,
    );
  });
  return lines.join('\n');
}

/** esbuild plugin: third-party packages and native addons become lazily required stand-ins. */
const lazyThirdParty = {
  name: LAZY,
  setup(build) {
    build.onResolve({ filter: /^[^./]/ }, async (args) => {
      if (args.pluginData === 'inner' || Module.isBuiltin(args.path)) return undefined;
      if (BUNDLED_PACKAGES.has(args.path.split('/')[0])) return undefined;
      // Resolved as require() resolves it, since node requires it at run time.
      const resolved = await build.resolve(args.path, {
        kind: 'require-call',
        resolveDir: args.resolveDir,
        pluginData: 'inner',
      });
      if (
        resolved.errors.length > 0 ||
        !resolved.path.includes(`${path.sep}node_modules${path.sep}`)
      ) {
        return undefined; // a workspace package: bundled
      }
      return { path: `${resolved.path}${LAZY_SUFFIX}`, namespace: LAZY };
    });
    build.onResolve({ filter: /\.node$/ }, (args) => ({
      path: `${path.resolve(args.resolveDir, args.path)}${LAZY_SUFFIX}`,
      namespace: LAZY,
    }));
    build.onLoad({ filter: /.*/, namespace: LAZY }, (args) => ({
      contents: lazyModuleSource(args.path.slice(0, -LAZY_SUFFIX.length)),
      loader: 'js',
    }));
    // Workspace code finds files next to its source (terraform.tfvars, the Lambda worker scripts):
    // each module keeps its own source directory as __dirname, not the bundle's.
    build.onLoad({ filter: /\.ts$/ }, async (args) => {
      const source = await fs.promises.readFile(args.path, 'utf8');
      if (!/\b__(dirname|filename)\b/.test(source)) return { contents: source, loader: 'ts' };
      const header =
        `const __dirname = ${JSON.stringify(path.dirname(args.path))}; ` +
        `const __filename = ${JSON.stringify(args.path)}; `;
      return { contents: header + source, loader: 'ts' };
    });
  },
};

/** esbuild's options for the bundle, written to `outfile`. */
const bundleOptions = (outfile) => ({
  entryPoints: [ENTRY],
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  outfile,
  plugins: [lazyThirdParty],
  metafile: true,
  absWorkingDir: REPO_ROOT,
  logLevel: 'silent',
});

/** Builds the bundle (written aside, then renamed, so a concurrent start never runs half a file). */
async function buildBundle() {
  const esbuild = require('esbuild');
  fs.mkdirSync(CACHE_DIR, { recursive: true });
  const temporary = `${BUNDLE}.${process.pid}.tmp`;
  const result = await esbuild.build(bundleOptions(temporary));
  const files = {};
  for (const input of Object.keys(result.metafile.inputs)) {
    const file = input.startsWith(`${LAZY}:`)
      ? input.slice(LAZY.length + 1, -LAZY_SUFFIX.length)
      : path.resolve(REPO_ROOT, input);
    const stat = fs.statSync(file);
    files[file] = { mtimeMs: stat.mtimeMs, size: stat.size };
  }
  fs.rmSync(CODE_CACHE, { force: true });
  fs.renameSync(temporary, BUNDLE);
  const inputsTemporary = `${INPUTS}.${process.pid}.tmp`;
  fs.writeFileSync(
    inputsTemporary,
    JSON.stringify({ root: REPO_ROOT, node: process.version, files }),
  );
  fs.renameSync(inputsTemporary, INPUTS);
}

/** The path of an up-to-date bundle of the CLI, building it first when a source changed. */
async function cliBundle() {
  if (!isFresh()) await buildBundle();
  return BUNDLE;
}

/**
 * Runs the bundle as a CommonJS module, with V8's code cache for it when there is one; writes the
 * cache after the first run (once the functions that start-up uses have been compiled).
 */
function runBundle() {
  let cachedData;
  try {
    cachedData = fs.readFileSync(CODE_CACHE);
  } catch {
    cachedData = undefined;
  }
  runSource(fs.readFileSync(BUNDLE, 'utf8'), cachedData, true);
}

/** Runs bundle source as the module BUNDLE would be; `writeCache`: leaves V8's code cache for it. */
function runSource(source, cachedData, writeCache) {
  const script = new vm.Script(Module.wrap(source), { filename: BUNDLE, cachedData });
  const bundle = new Module(BUNDLE, module);
  bundle.filename = BUNDLE;
  bundle.paths = Module._nodeModulePaths(REPO_ROOT);
  script
    .runInThisContext()
    .call(bundle.exports, bundle.exports, Module.createRequire(BUNDLE), bundle, BUNDLE, CACHE_DIR);
  if (writeCache && (cachedData === undefined || script.cachedDataRejected)) {
    process.once('exit', () => {
      const temporary = `${CODE_CACHE}.${process.pid}.tmp`;
      try {
        fs.writeFileSync(temporary, script.createCachedData());
        fs.renameSync(temporary, CODE_CACHE);
      } catch {
        fs.rmSync(temporary, { force: true }); // a read-only checkout: start without the cache
      }
    });
  }
}

/** Runs manage.ts: the bundle's main module reads process.argv. */
function run() {
  if (isFresh()) {
    runBundle();
    return;
  }
  buildBundle().then(runBundle, () =>
    // A checkout this user may not write to (another user's, read-only): bundled in memory, as
    // it would be in the cache, for this run only.
    require('esbuild')
      .build({ ...bundleOptions(BUNDLE), write: false })
      .then(
        (result) => runSource(result.outputFiles[0].text, undefined, false),
        (error) => {
          process.stderr.write(`manage.ts: could not bundle the CLI: ${error.message}\n`);
          process.exitCode = 1;
        },
      ),
  );
}

module.exports = { cliBundle, run };
