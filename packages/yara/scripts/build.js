#!/usr/bin/env node
// Builds build/Release/yara.node, the Node-API addon over libyara and libarchive, linked statically.
//
// Debian's static archives (libyara.a and its dependencies) are compiled for executables: they
// reach libc's stdin/stdout/stderr through PC-relative relocations, which a shared object cannot
// have. We therefore link private copies (in .deps/) in which those three symbols are renamed to
// hidden stand-ins defined in src/yara.cc, and keep every archive symbol private with
// --exclude-libs,ALL. libstdc++/libgcc stay dynamic: linking them statically would raise the glibc
// floor above Amazon Linux 2023's 2.34.
//
// Incremental: does nothing when the .node is newer than its sources and the system archives.
// `--force` rebuilds. Builds offline against the Node headers beside the running node binary.
'use strict';

const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const output = path.join(root, 'build', 'Release', 'yara.node');
const depsDir = path.join(root, '.deps');
// Static archive -> the Debian package that ships it (named in the error when it is missing).
// libarchive's own dependencies: nettle (zip AES), zstd, lz4 (filters); acl and xml2 are only
// reached from formats and disk writers the addon does not enable, so they are not linked.
const archivePackages = {
  yara: 'libyara-dev',
  archive: 'libarchive-dev',
  magic: 'libmagic-dev',
  jansson: 'libjansson-dev',
  crypto: 'libssl-dev',
  nettle: 'nettle-dev',
  zstd: 'libzstd-dev',
  lz4: 'liblz4-dev',
  z: 'zlib1g-dev',
  bz2: 'libbz2-dev',
  lzma: 'liblzma-dev',
};
const archives = Object.keys(archivePackages);
const renamedSymbols = ['stdin', 'stdout', 'stderr'];
const force = process.argv.includes('--force');

function fail(message) {
  console.error(`yara build: ${message}`);
  process.exit(1);
}

function run(command, args, options = {}) {
  execFileSync(command, args, { stdio: 'inherit', cwd: root, ...options });
}

function systemArchive(name) {
  const cc = process.env.CC || 'cc';
  let found;
  try {
    found = execFileSync(cc, [`-print-file-name=lib${name}.a`], { encoding: 'utf8' }).trim();
  } catch (error) {
    fail(`cannot run ${cc} to locate lib${name}.a (install g++): ${error.message}`);
  }
  if (!path.isAbsolute(found) || !fs.existsSync(found)) {
    const pkg = archivePackages[name];
    fail(`lib${name}.a not found; install ${pkg} (apt-get install ${pkg})`);
  }
  return found;
}

function mtime(file) {
  try {
    return fs.statSync(file).mtimeMs;
  } catch {
    return 0;
  }
}

function nodeDir() {
  if (process.env.npm_config_nodedir) return process.env.npm_config_nodedir;
  const prefix = path.resolve(path.dirname(process.execPath), '..');
  if (fs.existsSync(path.join(prefix, 'include', 'node', 'node_api.h'))) return prefix;
  return undefined; // node-gyp falls back to downloading headers
}

if (!fs.existsSync('/usr/include/yara.h') && !process.env.CPATH) {
  fail('yara.h not found; install libyara-dev (apt-get install libyara-dev)');
}

const systemArchives = Object.fromEntries(archives.map((name) => [name, systemArchive(name)]));
const inputs = [
  path.join(root, 'binding.gyp'),
  __filename,
  ...fs
    .readdirSync(path.join(root, 'src'))
    .filter((f) => /\.(cc|h)$/.test(f))
    .map((f) => path.join(root, 'src', f)),
  ...Object.values(systemArchives),
];
const newestInput = Math.max(...inputs.map(mtime));
if (!force && mtime(output) > newestInput) {
  console.log(`yara build: ${path.relative(process.cwd(), output)} is up to date`);
  process.exit(0);
}

fs.mkdirSync(depsDir, { recursive: true });
for (const [name, source] of Object.entries(systemArchives)) {
  const target = path.join(depsDir, `lib${name}.a`);
  if (!force && mtime(target) > Math.max(mtime(source), mtime(__filename))) continue;
  const renames = renamedSymbols.flatMap((sym) => [
    '--redefine-sym',
    `${sym}=binaryalert_yr_${sym}`,
  ]);
  run('objcopy', [...renames, source, `${target}.tmp`]);
  fs.renameSync(`${target}.tmp`, target);
}

const gyp = require.resolve('node-gyp/bin/node-gyp.js', { paths: [root] });
const dir = nodeDir();
const gypArgs = dir ? [`--nodedir=${dir}`] : [];
const makefile = path.join(root, 'build', 'Makefile');
if (force || mtime(makefile) < mtime(path.join(root, 'binding.gyp'))) {
  run(process.execPath, [gyp, 'configure', ...gypArgs]);
}
run(process.execPath, [gyp, 'build', ...gypArgs]);
// make leaves the mtime untouched when nothing relinked; touch so the next run is a no-op.
const now = new Date();
fs.utimesSync(output, now, now);
console.log(`yara build: wrote ${path.relative(process.cwd(), output)}`);
