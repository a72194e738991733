import path from 'node:path';

import * as esbuild from 'esbuild';

export const REPO_ROOT = path.resolve(__dirname, '..', '..');
const CACHE_DIR = path.join(REPO_ROOT, 'node_modules', '.cache', 'binaryalert-bench');

/**
 * Bundles the workspace's TypeScript but leaves third-party packages (some with native or
 * WebAssembly parts esbuild cannot bundle) to be required from their installed location.
 */
const thirdPartyExternal: esbuild.Plugin = {
  name: 'third-party-external',
  setup(build) {
    build.onResolve({ filter: /^[^./]/ }, async (args) => {
      if (args.pluginData === 'inner') return undefined;
      const resolved = await build.resolve(args.path, {
        kind: args.kind,
        resolveDir: args.resolveDir,
        pluginData: 'inner',
      });
      if (
        resolved.errors.length > 0 ||
        !resolved.path.includes(`${path.sep}node_modules${path.sep}`)
      )
        return undefined;
      return { path: resolved.path, external: true };
    });
  },
};

/**
 * Bundles one entry point into plain JavaScript run by `node` (so measured children start like an
 * installed program, without tsx transpiling at start-up). Returns the bundle's path.
 */
export async function bundleEntry(entry: string, name: string): Promise<string> {
  const outdir = path.join(CACHE_DIR, name);
  await esbuild.build({
    entryPoints: { [name]: entry },
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'cjs',
    outdir,
    loader: { '.node': 'copy' },
    plugins: [thirdPartyExternal],
    logLevel: 'error',
  });
  return path.join(outdir, `${name}.js`);
}
