import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { GetObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import {
  COMPILED_RULES_FILE,
  CURRENT_RULES_MANIFEST_KEY,
  DELTA_RULES_FILE,
  releaseObjectKey,
  RulesManifestSchema,
  type Logger,
  type RulesManifest,
} from '@binaryalert/core';
import { libyaraVersion, loadRules, type CompiledRules } from '@binaryalert/yara';
import { downloadObject, privateTempDir } from './download';

/** A compiled rule set with its manifest: what one scan uses from start to end. */
export interface ActiveRules {
  compiled: CompiledRules;
  manifest: RulesManifest;
  /** The release's delta rules (manifest.delta), when it has any and they loaded. */
  delta?: CompiledRules;
}

/** The rules to scan with now; a scan takes them once, so a swap never changes a running scan. */
export interface RulesProvider {
  /**
   * `latest`: check for a newer release now, however recent the last check (a delta re-scan is
   * started right after a release, and judged with an older one it would confirm old verdicts).
   */
  current(options?: { latest?: boolean }): Promise<ActiveRules>;
}

/** Rules without a manifest: version 0, no fingerprints (each rule is identified by name only). */
export function unreleasedRules(compiled: CompiledRules): ActiveRules {
  return {
    compiled,
    manifest: {
      version: 0,
      ruleCount: compiled.ruleCount,
      libyaraVersion,
      compiledSha256: '0'.repeat(64),
      fingerprints: { rules: {}, files: {} },
    },
  };
}

/** Always the same rules (tests, benchmarks). */
export function fixedRules(rules: ActiveRules): RulesProvider {
  return { current: () => Promise.resolve(rules) };
}

/**
 * Loads compiled rules and the manifest beside them (the release baked into the analyzer zip).
 * A missing manifest gives version 0 with no fingerprints: every rule then counts by its name only.
 */
export async function loadBakedRules(
  rulesPath: string,
  manifestPath: string,
): Promise<ActiveRules> {
  const compiled = await loadRules(rulesPath);
  const text = await readFile(manifestPath, 'utf8').catch(() => undefined);
  if (!text) return unreleasedRules(compiled);
  return { compiled, manifest: RulesManifestSchema.parse(JSON.parse(text)) };
}

export interface RulesBucketSettings {
  bucket: string;
  /** Check for a newer release at most this often. */
  refreshSeconds: number;
  /** Where downloaded releases go (default: the OS temp directory). */
  tempRoot?: string;
}

function statusOf(error: unknown): number | undefined {
  return (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
}

async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/**
 * The newest rules release in the rules bucket, falling back to the baked-in release while none
 * was uploaded (or one cannot be used). The first call checks at once (cold start); later calls
 * check again only when `refreshSeconds` passed since the last check, with a conditional GET of
 * the small current manifest (If-None-Match), and never concurrently. A release built for another
 * libyara version, whose file does not match its manifest's hash, or whose rules are none or not
 * as many as its manifest counts, is refused and logged; the loaded rules stay.
 */
export function rulesFromBucket(
  s3: S3Client,
  settings: RulesBucketSettings,
  baked: ActiveRules,
  log: Logger,
  now: () => number = Date.now,
): RulesProvider {
  let active = baked;
  let etag: string | undefined;
  let checkedAt = -Infinity;
  let checking: Promise<void> | undefined;

  /** The current manifest and its ETag, unless unchanged since the last settled check. */
  async function fetchManifest(): Promise<{ manifest: RulesManifest; etag?: string } | undefined> {
    try {
      const response = await s3.send(
        new GetObjectCommand({
          Bucket: settings.bucket,
          Key: CURRENT_RULES_MANIFEST_KEY,
          ...(etag ? { IfNoneMatch: etag } : {}),
        }),
      );
      const text = await response.Body!.transformToString();
      if (response.ETag && response.ETag === etag) return undefined;
      return { manifest: RulesManifestSchema.parse(JSON.parse(text)), etag: response.ETag };
    } catch (error) {
      const status = statusOf(error);
      if (status === 304) return undefined;
      if (status === 404 || (error as Error).name === 'NoSuchKey') return undefined;
      throw error;
    }
  }

  async function check(): Promise<void> {
    const fetched = await fetchManifest();
    if (!fetched) return;
    // Settled by a load or a refusal; a failure half-way leaves it unsettled, to retry.
    const settle = () => (etag = fetched.etag);
    const { manifest } = fetched;
    if (manifest.version === active.manifest.version) return void settle();
    if (manifest.libyaraVersion !== libyaraVersion) {
      settle();
      log.error('refusing a rules release compiled for another libyara version', {
        rulesVersion: manifest.version,
        releaseLibyara: manifest.libyaraVersion,
        analyzerLibyara: libyaraVersion,
      });
      return;
    }
    const temp = await privateTempDir(settings.tempRoot);
    try {
      const key = releaseObjectKey(manifest.version, COMPILED_RULES_FILE);
      const download = await downloadObject(
        s3,
        { bucket: settings.bucket, key },
        temp.dir,
        2 ** 31,
      );
      if (download.kind !== 'downloaded') throw new RangeError(`${key} is larger than 2 GiB`);
      const file = download.file;
      const actual = await sha256File(file);
      if (actual !== manifest.compiledSha256) {
        settle();
        log.error('refusing a rules release whose file does not match its manifest', {
          rulesVersion: manifest.version,
          expectedSha256: manifest.compiledSha256,
          actualSha256: actual,
        });
        return;
      }
      const compiled = await loadRules(file);
      // No rule would call every object clean; another count means fingerprints for other rules.
      if (compiled.ruleCount === 0 || compiled.ruleCount !== manifest.ruleCount) {
        settle();
        log.error("refusing a rules release whose rules are not its manifest's", {
          rulesVersion: manifest.version,
          ruleCount: compiled.ruleCount,
          manifestRuleCount: manifest.ruleCount,
          keptRulesVersion: active.manifest.version,
        });
        return;
      }
      const delta = await loadDelta(manifest);
      const previous = active.manifest.version;
      active = { compiled, manifest, ...(delta ? { delta } : {}) };
      settle();
      log.info('loaded a rules release', {
        rulesVersion: manifest.version,
        previousRulesVersion: previous,
        ruleCount: compiled.ruleCount,
      });
    } finally {
      await temp.remove();
    }
  }

  /** The delta rules of a release; on any failure none (re-scans then use every rule). */
  async function loadDelta(manifest: RulesManifest): Promise<CompiledRules | undefined> {
    const expected = manifest.delta?.compiledSha256;
    if (!expected) return undefined;
    const key = releaseObjectKey(manifest.version, DELTA_RULES_FILE);
    // A directory of its own: a download is always written to `<dir>/object`.
    const temp = await privateTempDir(settings.tempRoot);
    try {
      const download = await downloadObject(
        s3,
        { bucket: settings.bucket, key },
        temp.dir,
        2 ** 31,
      );
      if (download.kind !== 'downloaded') throw new RangeError(`${key} is larger than 2 GiB`);
      const actual = await sha256File(download.file);
      if (actual !== expected) {
        throw new RangeError(`${key} has SHA-256 ${actual}, the manifest says ${expected}`);
      }
      return await loadRules(download.file);
    } catch (error) {
      log.error('could not load the delta rules of a release; re-scans use every rule', {
        rulesVersion: manifest.version,
        error,
      });
      return undefined;
    } finally {
      await temp.remove();
    }
  }

  /** The last check failed: asking for the latest waits for the interval too (no download of a
   * release that cannot load at every invocation). */
  let failed = false;

  return {
    async current(options = {}) {
      const due = now() - checkedAt >= settings.refreshSeconds * 1000;
      if (due || (options.latest === true && !failed)) {
        checking ??= check()
          .then(() => void (failed = false))
          .catch((error: unknown) => {
            // Keep scanning with what is loaded; the next interval tries again.
            failed = true;
            log.error('could not check for a newer rules release', { error });
          })
          .finally(() => {
            checkedAt = now();
            checking = undefined;
          });
        await checking;
      }
      return active;
    },
  };
}
