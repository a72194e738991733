import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  compileRules,
  libyaraVersion,
  RuleCompileError,
  type CompiledRules,
  type CompileMessage,
  type ExternalValue,
  type RuleSource,
} from '@binaryalert/yara';
import {
  forEachConcurrent,
  manifestPathFor,
  type RuleFingerprints,
  type RulesManifest,
} from '@binaryalert/core';
import { findRuleFiles } from './discover';
import { fingerprintRuleFiles } from './fingerprint';

/** The rules directory holds no .yar/.yara file (outside samples/), or its files hold no rule. */
export class NoRuleFilesError extends Error {
  override readonly name = 'NoRuleFilesError';
}

/** A rule file left out by `skipBroken`, with the errors it failed with. */
export interface SkippedRuleFile {
  path: string;
  namespace: string;
  errors: CompileMessage[];
}

export interface CompileRuleSetOptions {
  rulesDir: string;
  /** Compile the files that work and report the others instead of failing. */
  skipBroken?: boolean;
  /** Declared external variables (default: the addon's DEFAULT_EXTERNALS). */
  externals?: Record<string, ExternalValue>;
}

export interface RuleSetSummary {
  ruleCount: number;
  /** Content fingerprints of the compiled files' rules. */
  fingerprints: RuleFingerprints;
  /** Rule files compiled into the set. */
  fileCount: number;
  skipped: SkippedRuleFile[];
  warnings: CompileMessage[];
}

/**
 * Compiles every rule file under `rulesDir` (see findRuleFiles) into one rule set, each file in
 * its own namespace. Without `skipBroken` a broken file fails the whole set with the
 * RuleCompileError listing every error of every file; with it, broken files are left out (those
 * named by the errors, else found by compiling the files one by one) and reported in `skipped`.
 */
export async function compileRuleSet(
  options: CompileRuleSetOptions,
): Promise<RuleSetSummary & { rules: CompiledRules }> {
  const files = await findRuleFiles(options.rulesDir);
  if (files.length === 0) {
    throw new NoRuleFilesError(`no .yar or .yara rule files under ${options.rulesDir}`);
  }
  const compileOptions = options.externals ? { externals: options.externals } : {};
  let candidates = files;
  const skipped: SkippedRuleFile[] = [];
  for (;;) {
    try {
      const { rules, warnings } = await compileRules(candidates, compileOptions);
      // Scanning with no rule calls every object clean: never a rule set to release or bake.
      if (rules.ruleCount === 0) {
        throw new NoRuleFilesError(
          `the ${candidates.length} rule files under ${options.rulesDir} hold no rule (all commented out or empty?)`,
        );
      }
      const fingerprints = await fingerprintRuleFiles(candidates);
      return {
        rules,
        ruleCount: rules.ruleCount,
        fingerprints,
        fileCount: candidates.length,
        skipped,
        warnings,
      };
    } catch (error) {
      if (!(error instanceof RuleCompileError) || !options.skipBroken) throw error;
      let broken = brokenSourcesNamedBy(error.errors, candidates);
      // Errors inside included files name the included file, not the source: find the culprits.
      if (broken.length === 0) broken = await brokenSourcesOneByOne(candidates, compileOptions);
      // Every file compiles alone but not together: nothing to leave out, so fail as a whole.
      if (broken.length === 0) throw error;
      skipped.push(...broken);
      const left = new Set(broken.map((file) => file.path));
      candidates = candidates.filter((source) => !left.has(source.path));
      if (candidates.length === 0) throw error;
    }
  }
}

export interface CompileRulesDirectoryOptions extends CompileRuleSetOptions {
  /** Where the compiled rules are written (directories are created). */
  output: string;
}

/**
 * `manage.ts compile-rules` as a function (the Lambda build calls it too): compiles the rules
 * directory and saves the result to `output` (atomically; a failed compile leaves any previous
 * file in place), with its manifest (version 0: not released) beside it.
 */
export async function compileRulesDirectory(
  options: CompileRulesDirectoryOptions,
): Promise<RuleSetSummary & { output: string; manifest: RulesManifest; manifestPath: string }> {
  const { rules, ...summary } = await compileRuleSet(options);
  await fs.mkdir(path.dirname(path.resolve(options.output)), { recursive: true });
  await rules.save(options.output);
  const manifest: RulesManifest = {
    version: 0,
    ruleCount: summary.ruleCount,
    libyaraVersion,
    compiledSha256: createHash('sha256')
      .update(await fs.readFile(options.output))
      .digest('hex'),
    fingerprints: summary.fingerprints,
  };
  const manifestPath = manifestPathFor(options.output);
  // Written aside and renamed: a watcher never reads half a manifest.
  await fs.writeFile(`${manifestPath}.tmp`, `${JSON.stringify(manifest, null, 2)}\n`);
  await fs.rename(`${manifestPath}.tmp`, manifestPath);
  return { ...summary, output: options.output, manifest, manifestPath };
}

function brokenSourcesNamedBy(errors: CompileMessage[], sources: RuleSource[]): SkippedRuleFile[] {
  const byPath = new Map(sources.map((source) => [source.path, source]));
  const broken = new Map<string, SkippedRuleFile>();
  for (const error of errors) {
    const source = byPath.get(error.file);
    if (!source) continue;
    const entry = broken.get(source.path) ?? { ...source, errors: [] };
    entry.errors.push(error);
    broken.set(source.path, entry);
  }
  return [...broken.values()];
}

async function brokenSourcesOneByOne(
  sources: RuleSource[],
  compileOptions: { externals?: Record<string, ExternalValue> },
): Promise<SkippedRuleFile[]> {
  const results: (SkippedRuleFile | undefined)[] = new Array<SkippedRuleFile | undefined>(
    sources.length,
  );
  await forEachConcurrent(sources, os.availableParallelism(), async (source, index) => {
    try {
      await compileRules([source], compileOptions);
    } catch (error) {
      if (!(error instanceof RuleCompileError)) throw error;
      results[index] = { ...source, errors: error.errors };
    }
  });
  return results.filter((result): result is SkippedRuleFile => result !== undefined);
}
