import { createHash } from 'node:crypto';
import path from 'node:path';
import {
  GetObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { z } from 'zod';
import { ContentRequirementSchema } from './content-signature';

/** The compiled rules file inside the analyzer zip, `dist/` and each rules release. */
export const COMPILED_RULES_FILE = 'compiled_yara_rules.bin';
/** The delta rule set of a release: only the files with new or changed rules. */
export const DELTA_RULES_FILE = 'delta_yara_rules.bin';
/** The manifest beside it (fingerprints, count, libyara version). */
export const RULES_MANIFEST_FILE = 'rules_manifest.json';

/** The manifest of a compiled rules file: `rules_manifest.json` in the same directory. */
export function manifestPathFor(compiledPath: string): string {
  return path.join(path.dirname(compiledPath), RULES_MANIFEST_FILE);
}

/** Fingerprints of a rule set: per rule id (`namespace:rule`) and per rule file (namespace). */
export const RuleFingerprintsSchema = z.object({
  rules: z.record(z.string(), z.string()),
  files: z.record(z.string(), z.string()),
});
export type RuleFingerprints = z.infer<typeof RuleFingerprintsSchema>;

/**
 * What describes one compiled rule set: `compile-rules` writes it beside the compiled file, the
 * Lambda build bakes it into the analyzer zip (version 0) and each rules release uploads it.
 */
export const RulesManifestSchema = z.object({
  /** Release number: 0 for the rules baked into the analyzer zip, then 1, 2, ... */
  version: z.number().int().nonnegative(),
  /** When `deploy-rules` published it (absent for compiled, unreleased rules: builds stay reproducible). */
  releasedAt: z.string().optional(),
  ruleCount: z.number().int().nonnegative(),
  libyaraVersion: z.string(),
  /** SHA-256 (hex) of the compiled rules file. */
  compiledSha256: z.string().regex(/^[0-9a-f]{64}$/),
  fingerprints: RuleFingerprintsSchema,
  /**
   * What a re-scan after this release needs (absent: re-scan with everything). An object whose
   * bytes were analyzed with a release from `baseVersion` to `version - 1` needs only the rule
   * files in `namespaces` (DELTA_RULES_FILE, compiled alone); its other matches carry over, less
   * those of rules this release no longer has.
   */
  delta: z
    .object({
      baseVersion: z.number().int().nonnegative(),
      namespaces: z.array(z.string()),
      /** Of DELTA_RULES_FILE; absent when no namespace needs a scan (the release only removed). */
      compiledSha256: z
        .string()
        .regex(/^[0-9a-f]{64}$/)
        .optional(),
      ruleCount: z.number().int().nonnegative(),
      /** The delta rules read per-object externals (filename, filepath, ...): no sharing by SHA-256. */
      usesExternals: z.boolean(),
      /**
       * What any match of a delta rule requires of the bytes (content-signature.ts): an object
       * whose content signature rules it out is decided "no match" without a download. Absent
       * (unfiltered): some delta rule's requirement could not be stated; every object is read.
       */
      prefilter: ContentRequirementSchema.optional(),
    })
    .optional(),
});
export type RulesManifest = z.infer<typeof RulesManifestSchema>;

/** A rule's fingerprint: its own where it could be isolated, else its file's ('' if unknown). */
export function ruleFingerprint(
  manifest: Pick<RulesManifest, 'fingerprints'>,
  rule: { namespace: string; rule: string },
): string {
  const { rules, files } = manifest.fingerprints;
  return rules[`${rule.namespace}:${rule.rule}`] ?? files[rule.namespace] ?? '';
}

/** How a release differs from the one before: rule ids added and rule ids whose fingerprint changed. */
export function diffReleases(
  previous: Pick<RulesManifest, 'fingerprints'> | undefined,
  next: Pick<RulesManifest, 'fingerprints'>,
): { added: string[]; changed: string[]; removed: string[] } {
  const before = previous?.fingerprints.rules ?? {};
  const after = next.fingerprints.rules;
  const added: string[] = [];
  const changed: string[] = [];
  for (const [id, fingerprint] of Object.entries(after)) {
    if (!(id in before)) added.push(id);
    else if (before[id] !== fingerprint) changed.push(id);
  }
  const removed = Object.keys(before).filter((id) => !(id in after));
  return { added: added.sort(), changed: changed.sort(), removed: removed.sort() };
}

/** The namespace (rule file) of a rule id `namespace:rule` (namespaces may hold ':'). */
function namespaceOf(id: string): string {
  return id.slice(0, id.lastIndexOf(':'));
}

/**
 * The rule files (namespaces) a re-scan after `next` needs: new files, and files where a rule
 * was added or changed (files whose rules cannot be isolated: whenever their fingerprint moved).
 * A file that only lost rules, or changed only in comments or `meta:`, is not among them.
 */
export function deltaNamespaces(
  previous: Pick<RulesManifest, 'fingerprints'>,
  next: Pick<RulesManifest, 'fingerprints'>,
): string[] {
  const { added, changed } = diffReleases(previous, next);
  const namespaces = new Set([...added, ...changed].map(namespaceOf));
  const isolated = new Set(Object.keys(next.fingerprints.rules).map(namespaceOf));
  for (const [namespace, fingerprint] of Object.entries(next.fingerprints.files)) {
    if (!(namespace in previous.fingerprints.files)) namespaces.add(namespace);
    else if (!isolated.has(namespace) && previous.fingerprints.files[namespace] !== fingerprint) {
      namespaces.add(namespace);
    }
  }
  return [...namespaces].sort();
}

/**
 * The oldest release whose analyses a re-scan after a release following `previous` can build on:
 * `previous`, or further back across releases that added and changed nothing.
 */
export function deltaBaseVersion(previous: Pick<RulesManifest, 'version' | 'delta'>): number {
  return previous.delta && previous.delta.namespaces.length === 0
    ? previous.delta.baseVersion
    : previous.version;
}

/**
 * Whether a match recorded before `release` still stands after it without a new scan: its rule
 * file is not in the release's delta, and the release still has the rule.
 */
export function matchCarriesOver(
  release: Pick<RulesManifest, 'fingerprints' | 'delta'>,
  ruleId: string,
): boolean {
  const namespace = namespaceOf(ruleId);
  if (release.delta?.namespaces.includes(namespace)) return false;
  if (ruleId in release.fingerprints.rules) return true;
  // Rules of a file that cannot be isolated are known by their file only.
  const isolated = Object.keys(release.fingerprints.rules).some(
    (id) => namespaceOf(id) === namespace,
  );
  return !isolated && namespace in release.fingerprints.files;
}

/**
 * The rules bucket's layout: each release under `releases/v<N>/` (never overwritten), and the
 * manifest of the current one at CURRENT_RULES_MANIFEST_KEY, written last, so a release is
 * published by one PUT and analyzers poll one small object.
 */
export const CURRENT_RULES_MANIFEST_KEY = `current/${RULES_MANIFEST_FILE}`;

/** Where a release's file lives in the rules bucket. */
export function releaseObjectKey(version: number, file: string): string {
  return `releases/v${version}/${file}`;
}

/** Another publish took the release number this one was to have (two `deploy-rules` at once). */
export class RulesReleaseConflictError extends Error {
  override readonly name = 'RulesReleaseConflictError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/**
 * The highest release number under `releases/` (0 when none): a release cut off before it was
 * published (its files there, the current manifest not yet) still holds its number.
 */
async function highestReleaseNumber(s3: S3Client, bucket: string): Promise<number> {
  let highest = 0;
  let ContinuationToken: string | undefined;
  do {
    const page = await s3.send(
      new ListObjectsV2Command({
        Bucket: bucket,
        Prefix: 'releases/v',
        Delimiter: '/',
        ...(ContinuationToken ? { ContinuationToken } : {}),
      }),
    );
    for (const { Prefix } of page.CommonPrefixes ?? []) {
      const number = /^releases\/v(\d+)\/$/.exec(Prefix ?? '')?.[1];
      if (number !== undefined) highest = Math.max(highest, Number(number));
    }
    ContinuationToken = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (ContinuationToken);
  return highest;
}

/** Whether S3 refused a conditional write because the object exists (or is being written). */
function lostConditionalWrite(error: unknown): boolean {
  const status = statusOf(error);
  return status === 412 || status === 409;
}

function statusOf(error: unknown): number | undefined {
  return (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
}

/** The current release's manifest in a rules bucket, or undefined while none was published. */
export async function currentRelease(
  s3: S3Client,
  bucket: string,
): Promise<RulesManifest | undefined> {
  return (await currentManifestObject(s3, bucket))?.manifest;
}

/** The current manifest and the ETag of the object holding it. */
async function currentManifestObject(
  s3: S3Client,
  bucket: string,
): Promise<{ manifest: RulesManifest; etag?: string } | undefined> {
  try {
    const response = await s3.send(
      new GetObjectCommand({ Bucket: bucket, Key: CURRENT_RULES_MANIFEST_KEY }),
    );
    return {
      manifest: RulesManifestSchema.parse(JSON.parse(await response.Body!.transformToString())),
      ...(response.ETag ? { etag: response.ETag } : {}),
    };
  } catch (error) {
    if (statusOf(error) === 404 || (error as Error).name === 'NoSuchKey') return undefined;
    throw error;
  }
}

/**
 * Publishes compiled rules as the next release of a rules bucket: the compiled file and its
 * manifest under `releases/v<N>/`, then the current manifest, last, which is what analyzers poll:
 * they never see a manifest whose file is not there yet. Returns the release and the one before.
 */
export async function publishRulesRelease(
  s3: S3Client,
  bucket: string,
  compiled: Buffer,
  unreleased: RulesManifest,
  now: Date = new Date(),
  /** The delta rules of `unreleased.delta` (none when it names no namespace) and the release version they were computed against. */
  deltaRules?: { compiled?: Buffer; against: number },
): Promise<{ release: RulesManifest; previous: RulesManifest | undefined }> {
  const actual = createHash('sha256').update(compiled).digest('hex');
  if (actual !== unreleased.compiledSha256) {
    throw new TypeError(
      `the compiled rules (sha256 ${actual}) are not the ones the manifest describes (${unreleased.compiledSha256}); compile them again`,
    );
  }
  const current = await currentManifestObject(s3, bucket);
  const previous = current?.manifest;
  const { delta, ...rest } = unreleased;
  const release: RulesManifest = {
    ...rest,
    // Past every number taken, by a published release or by one cut off half-way.
    version: Math.max(previous?.version ?? 0, await highestReleaseNumber(s3, bucket)) + 1,
    releasedAt: now.toISOString(),
    // A delta computed against a release that is no longer the current one (another release was
    // published meanwhile) would miss that release's changes: then the re-scan uses everything.
    ...(delta && deltaRules && previous?.version === deltaRules.against ? { delta } : {}),
  };
  const manifestBody = `${JSON.stringify(release, null, 2)}\n`;
  const put = (
    Key: string,
    Body: Buffer | string,
    ContentType: string,
    condition: { IfNoneMatch?: '*'; IfMatch?: string } = {},
  ) => s3.send(new PutObjectCommand({ Bucket: bucket, Key, Body, ContentType, ...condition }));
  // The first file claims the number: a publish racing this one for it fails here, before it
  // wrote anything, instead of replacing this release's files under the same number.
  try {
    await put(
      releaseObjectKey(release.version, COMPILED_RULES_FILE),
      compiled,
      'application/octet-stream',
      { IfNoneMatch: '*' },
    );
  } catch (error) {
    if (!lostConditionalWrite(error)) throw error;
    throw new RulesReleaseConflictError(
      `rules release v${release.version} was published by someone else meanwhile (another deploy-rules or deploy); nothing of this one was uploaded: run it again`,
      { cause: error },
    );
  }
  if (release.delta?.compiledSha256 && deltaRules) {
    await put(
      releaseObjectKey(release.version, DELTA_RULES_FILE),
      deltaRules.compiled ?? Buffer.alloc(0),
      'application/octet-stream',
    );
  }
  await put(
    releaseObjectKey(release.version, RULES_MANIFEST_FILE),
    manifestBody,
    'application/json',
  );
  // Published only over the release this one was made against: a release published meanwhile
  // stays current, and this one (its files in place, its number taken) fails.
  try {
    await put(
      CURRENT_RULES_MANIFEST_KEY,
      manifestBody,
      'application/json',
      current?.etag ? { IfMatch: current.etag } : { IfNoneMatch: '*' },
    );
  } catch (error) {
    if (!lostConditionalWrite(error) && statusOf(error) !== 404) throw error;
    throw new RulesReleaseConflictError(
      `rules release v${release.version} was not published: another release became current meanwhile (another deploy-rules or deploy); run it again`,
      { cause: error },
    );
  }
  return { release, previous };
}
