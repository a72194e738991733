import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { S3Client } from '@aws-sdk/client-s3';
import {
  COMPILED_RULES_FILE,
  DELTA_RULES_FILE,
  currentRelease,
  deltaBaseVersion,
  deltaNamespaces,
  diffReleases,
  publishRulesRelease,
  type RulesManifest,
} from '@binaryalert/core';
import { compileRules, DEFAULT_EXTERNALS, loadRules } from '@binaryalert/yara';
import { compileRulesDirectory, type RuleSetSummary } from './compile';
import { findRuleFiles } from './discover';
import { tokenize } from './fingerprint';
import { SAMPLES_DIR_NAME } from './paths';
import { deltaPrefilter } from './prefilter';
import { RuleSampleError, testRuleSamples, type SampleReport } from './samples';

/** What a rules release changed, for the one line users read. */
export interface ReleaseOutcome {
  /** The release now current (unchanged: the one that already was). */
  release: RulesManifest;
  /** false when the compiled rules equal the current release's (nothing was uploaded). */
  published: boolean;
  added: string[];
  changed: string[];
  removed: string[];
  summary: RuleSetSummary;
  /** The rule tests: samples checked and rules without samples. */
  samples: SampleReport;
}

/** `rules v7 loaded: 23 rules (2 new, 1 changed)` and its variants. */
export function describeRelease(
  manifest: Pick<RulesManifest, 'version' | 'ruleCount'>,
  diff: { added: string[]; changed: string[]; removed?: string[] },
  verb = 'released',
): string {
  const parts = [`${diff.added.length} new`, `${diff.changed.length} changed`];
  if (diff.removed && diff.removed.length > 0) parts.push(`${diff.removed.length} removed`);
  return `rules v${manifest.version} ${verb}: ${manifest.ruleCount} rules (${parts.join(', ')})`;
}

/**
 * The delta of a release: the rule files with new or changed rules since `current`, compiled alone
 * (each in its own namespace, as in the full set, so rule ids agree).
 */
async function compileDelta(
  rulesDir: string,
  current: RulesManifest,
  next: RulesManifest,
  scratch: string,
): Promise<{ delta: NonNullable<RulesManifest['delta']>; compiled?: Buffer }> {
  const namespaces = deltaNamespaces(current, next);
  const base = { baseVersion: deltaBaseVersion(current), namespaces };
  if (namespaces.length === 0) return { delta: { ...base, ruleCount: 0, usesExternals: false } };
  const sources = (await findRuleFiles(rulesDir)).filter((source) =>
    namespaces.includes(source.namespace),
  );
  const { rules } = await compileRules(sources);
  const output = path.join(scratch, DELTA_RULES_FILE);
  await rules.save(output);
  const compiled = await readFile(output);
  const prefilter = await deltaPrefilter(
    sources.map((source) => source.path),
    rules.ruleCount,
  );
  return {
    delta: {
      ...base,
      compiledSha256: createHash('sha256').update(compiled).digest('hex'),
      ruleCount: rules.ruleCount,
      usesExternals: await anyReadsExternals(sources.map((source) => source.path)),
      ...(prefilter ? { prefilter } : {}),
    },
    compiled,
  };
}

/**
 * Whether rule files use a per-object external (filename, filepath, ...): their verdict then
 * depends on the key, not only on the bytes. A file that includes others counts as using them.
 */
async function anyReadsExternals(files: string[]): Promise<boolean> {
  for (const file of files) {
    let tokens: string[];
    try {
      tokens = tokenize(await readFile(file, 'utf8'));
    } catch {
      return true;
    }
    if (tokens.some((token) => token === 'include' || token in DEFAULT_EXTERNALS)) return true;
  }
  return false;
}

/**
 * Compiles `rulesDir` and publishes it as the next release of the rules bucket, unless the
 * current release holds exactly these compiled rules already.
 */
export async function releaseRules(options: {
  s3: S3Client;
  bucket: string;
  rulesDir: string;
  /** Test the rules against their samples first (default true). */
  testSamples?: boolean;
}): Promise<ReleaseOutcome> {
  const scratch = await mkdtemp(path.join(os.tmpdir(), 'binaryalert-release-'));
  try {
    const compiled = await compileRulesDirectory({
      rulesDir: options.rulesDir,
      output: path.join(scratch, COMPILED_RULES_FILE),
    });
    const { manifest, output, ...summary } = compiled;
    const samples =
      options.testSamples === false
        ? { tested: 0, failures: [], untested: [] }
        : await testRuleSamples(
            await loadRules(output),
            Object.keys(manifest.fingerprints.rules),
            path.join(options.rulesDir, SAMPLES_DIR_NAME),
          );
    if (samples.failures.length > 0) throw new RuleSampleError(samples.failures);
    const current = await currentRelease(options.s3, options.bucket);
    if (current && current.compiledSha256 === manifest.compiledSha256) {
      return {
        release: current,
        published: false,
        added: [],
        changed: [],
        removed: [],
        summary,
        samples,
      };
    }
    const delta = current
      ? await compileDelta(options.rulesDir, current, manifest, scratch)
      : undefined;
    const { release, previous } = await publishRulesRelease(
      options.s3,
      options.bucket,
      await readFile(output),
      delta ? { ...manifest, delta: delta.delta } : manifest,
      new Date(),
      delta
        ? { ...(delta.compiled ? { compiled: delta.compiled } : {}), against: current!.version }
        : undefined,
    );
    return { release, published: true, ...diffReleases(previous, release), summary, samples };
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}
