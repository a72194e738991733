import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { analyzeFile } from '@binaryalert/core';
import { compileRules, type CompiledRules } from '@binaryalert/yara';
import { findRuleFiles } from './discover';
import { DEFAULT_RULES_DIR, SAMPLES_DIR_NAME } from './paths';

// The team's own rules (rules/binaryalert) against their samples: rules/samples/positive/<rule>/*
// must match exactly <rule>, rules/samples/negative/<rule>/* must match nothing at all, so no
// sample trips another rule by accident.
const samplesDir = path.join(DEFAULT_RULES_DIR, SAMPLES_DIR_NAME);
const STARTER_RULE_FILES = [
  'binaryalert/eicar.yara',
  'binaryalert/elf.yara',
  'binaryalert/filenames.yara',
  'binaryalert/hacktools.yara',
  'binaryalert/macho.yara',
  'binaryalert/pe.yara',
  'binaryalert/scripts.yara',
];

function samplesOf(kind: 'positive' | 'negative', rule: string): string[] {
  const dir = path.join(samplesDir, kind, rule);
  return readdirSync(dir).map((name) => path.join(dir, name));
}

function declaredRuleNames(files: string[]): string[] {
  return files.flatMap((file) =>
    [...readFileSync(file, 'utf8').matchAll(/^\s*(?:(?:private|global)\s+)*rule\s+(\w+)/gm)].map(
      (match) => match[1] as string,
    ),
  );
}

describe('starter rules (rules/binaryalert)', () => {
  let rules: CompiledRules;
  let ruleNames: string[];

  beforeAll(async () => {
    // Only the project's own files: what users add under rules/ never changes this suite.
    const sources = (await findRuleFiles(DEFAULT_RULES_DIR)).filter((source) =>
      STARTER_RULE_FILES.includes(source.namespace),
    );
    expect(sources.map((source) => source.namespace).sort()).toEqual([...STARTER_RULE_FILES]);
    ruleNames = declaredRuleNames(sources.map((source) => source.path));
    const compiled = await compileRules(sources);
    expect(compiled.warnings).toEqual([]);
    rules = compiled.rules;
  });

  it('has EICAR and at least a dozen more rules, each with positive and negative samples', () => {
    expect(ruleNames).toContain('eicar_test_file');
    expect(ruleNames.length).toBeGreaterThanOrEqual(13);
    expect(new Set(ruleNames).size).toBe(ruleNames.length);
    expect(rules.ruleCount).toBe(ruleNames.length);
    expect(readdirSync(path.join(samplesDir, 'positive'))).toEqual(
      expect.arrayContaining(ruleNames),
    );
    expect(readdirSync(path.join(samplesDir, 'negative'))).toEqual(
      expect.arrayContaining(ruleNames),
    );
  });

  it('matches every positive sample with exactly its rule, which carries description, author and reference', async () => {
    for (const rule of ruleNames) {
      const samples = samplesOf('positive', rule);
      expect(samples.length).toBeGreaterThan(0);
      for (const sample of samples) {
        const { matches } = await analyzeFile(rules, sample, { filepath: sample });
        expect({ sample, rules: matches.map((match) => match.rule) }).toEqual({
          sample,
          rules: [rule],
        });
        const meta = matches[0]?.meta ?? {};
        for (const key of ['description', 'author', 'reference']) {
          expect({ rule, key, value: typeof meta[key] }).toEqual({ rule, key, value: 'string' });
        }
        expect(matches[0]?.namespace).toMatch(/^binaryalert\/[\w-]+\.yara$/);
      }
    }
  });

  it('matches no rule at all on any negative sample', async () => {
    for (const rule of ruleNames) {
      const samples = samplesOf('negative', rule);
      expect(samples.length).toBeGreaterThan(0);
      for (const sample of samples) {
        const { matches } = await analyzeFile(rules, sample, { filepath: sample });
        expect({ sample, rules: matches.map((match) => match.rule) }).toEqual({
          sample,
          rules: [],
        });
      }
    }
  });

  it('decides filename rules on the path the file is known by, not its bytes', async () => {
    const sample = samplesOf('positive', 'filename_double_extension')[0] as string;

    const asUploaded = await analyzeFile(rules, sample, {
      filepath: '/home/x/Downloads/invoice.pdf.exe',
    });
    const renamed = await analyzeFile(rules, sample, { filepath: '/tmp/invoice.exe' });

    expect(asUploaded.matches.map((match) => match.rule)).toEqual(['filename_double_extension']);
    expect(renamed.matches).toEqual([]);
  });
});
