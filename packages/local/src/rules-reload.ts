import { readFile, stat } from 'node:fs/promises';
import { S3Client } from '@aws-sdk/client-s3';
import {
  currentRelease,
  diffReleases,
  manifestPathFor,
  publishRulesRelease,
  RulesManifestSchema,
  type RulesManifest,
  errorText,
} from '@binaryalert/core';
import { LOCAL_CREDENTIALS } from './constants';

export interface RulesReloadOptions {
  /** The stack's own endpoint (the front), where the rules bucket is served. */
  endpoint: string;
  region: string;
  bucket: string;
  /** The compiled rules `manage.ts compile-rules` writes (its manifest is beside it). */
  compiledRules?: string;
  print: (text: string) => void;
  /** Poll period (default 1 s, the local analyzers' rules_refresh_seconds). */
  intervalMs?: number;
}

/** `rules v7 loaded: 23 rules (2 new, 1 changed)` */
export function loadedLine(previous: RulesManifest | undefined, release: RulesManifest): string {
  const { added, changed, removed } = diffReleases(previous, release);
  const parts = [`${added.length} new`, `${changed.length} changed`];
  if (removed.length > 0) parts.push(`${removed.length} removed`);
  return `rules v${release.version} loaded: ${release.ruleCount} rules (${parts.join(', ')})`;
}

/**
 * Local hot reload: every second, (1) when `compile-rules` wrote new compiled rules, publishes
 * them as the next release of the local rules bucket (as `deploy-rules --local` does), and (2)
 * when the bucket's current release changed (either way), prints one line. The analyzer workers
 * load the release themselves, as on AWS, within their one-second refresh. Returns the stop step.
 */
export async function startRulesReload(options: RulesReloadOptions): Promise<() => Promise<void>> {
  const s3 = new S3Client({
    endpoint: options.endpoint,
    region: options.region,
    credentials: { ...LOCAL_CREDENTIALS },
    forcePathStyle: true,
  });
  const manifestPath = options.compiledRules ? manifestPathFor(options.compiledRules) : undefined;
  const mtimeOf = async () =>
    manifestPath ? (await stat(manifestPath).catch(() => undefined))?.mtimeMs : undefined;
  let seenMtime = await mtimeOf();
  let shown = await currentRelease(s3, options.bucket).catch(() => undefined);

  async function publishCompiled(): Promise<void> {
    const mtime = await mtimeOf();
    if (!manifestPath || !options.compiledRules || mtime === undefined || mtime === seenMtime) {
      return;
    }
    seenMtime = mtime;
    const manifest = RulesManifestSchema.parse(JSON.parse(await readFile(manifestPath, 'utf8')));
    const compiled = await readFile(options.compiledRules);
    const current = await currentRelease(s3, options.bucket);
    if (current?.compiledSha256 === manifest.compiledSha256) return;
    // A compile in progress leaves the file and the manifest out of step: the next tick retries.
    await publishRulesRelease(s3, options.bucket, compiled, manifest).catch((error: unknown) => {
      seenMtime = undefined;
      throw error;
    });
  }

  async function tick(): Promise<void> {
    try {
      await publishCompiled();
      const release = await currentRelease(s3, options.bucket);
      if (release && release.version !== shown?.version) {
        options.print(loadedLine(shown, release));
        shown = release;
      }
    } catch (error) {
      options.print(`[local] rules reload failed: ${errorText(error)}`);
    }
  }

  let running: Promise<void> = Promise.resolve();
  const timer = setInterval(() => {
    running = running.then(tick);
  }, options.intervalMs ?? 1000);
  timer.unref();
  return async () => {
    clearInterval(timer);
    await running;
    s3.destroy();
  };
}
