import { createHash } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import * as path from 'node:path';
import { inflateRawSync } from 'node:zlib';
import type { Command } from 'commander';
import { LAMBDA_DIST_DIR, TERRAFORM_DIR, loadTfvars } from '@binaryalert/deployment';
import type { CommandRegistrar } from '../usage';
import { runPreflight } from '../preflight';
import { DEFAULT_RULES_DIR } from '../rules/paths';
import { runRuleTests, untestedWarning } from '../rules/samples';
import { terraformApply } from './apply';
import { COMPILED_RULES_FILE, buildLambdaZips } from '../build';
import { retroAnalyze } from './retro-analyze';

/** The steps of a deployment; `manage.ts deploy` passes the real ones, tests their own. */
export interface DeploySteps {
  /** Runs every check and test; rejects when one fails. */
  test(): Promise<void>;
  /** Builds the Lambda zips. */
  build(): Promise<void>;
  /** SHA-256 (hex) of the compiled rules the build put into the analyzer zip. */
  rulesSha256(): Promise<string>;
  /** The rules hash recorded by the last successful deployment, if any. */
  lastDeployedRulesSha256(): Promise<string | undefined>;
  /** terraform init/fmt/apply. */
  apply(): Promise<void>;
  recordDeployedRules(sha256: string): Promise<void>;
  /** Re-analyzes every object of the bucket with the new rules. */
  retroAnalyze(): Promise<void>;
  log(line: string): void;
}

export interface DeployOptions {
  skipTests?: boolean;
  /** false = never run retroactive analysis (--no-retro). */
  retro?: boolean;
}

export interface DeployOutcome {
  rulesSha256: string;
  rulesChanged: boolean;
  retroAnalyzed: boolean;
}

/**
 * tests -> build -> apply, then retroactive analysis when the deployed rules differ from the
 * previously deployed ones (as the original BinaryAlert's deploy did), so a rule update reaches
 * every stored binary. A failing step stops the deployment there.
 */
export async function deploy(
  steps: DeploySteps,
  options: DeployOptions = {},
): Promise<DeployOutcome> {
  if (options.skipTests) steps.log('Skipping tests (--skip-tests)');
  else {
    steps.log('Running tests');
    await steps.test();
  }
  steps.log('Building the Lambda zips');
  await steps.build();
  const rulesSha256 = await steps.rulesSha256();
  const previous = await steps.lastDeployedRulesSha256();
  steps.log('Applying Terraform');
  await steps.apply();
  await steps.recordDeployedRules(rulesSha256);

  const rulesChanged = previous !== rulesSha256;
  let retroAnalyzed = false;
  if (!rulesChanged) steps.log('YARA rules unchanged since the last deployment');
  else if (options.retro === false) {
    steps.log('YARA rules changed; skipping retroactive analysis (--no-retro)');
  } else {
    steps.log('YARA rules changed: re-analyzing every binary with the new rules');
    await steps.retroAnalyze();
    retroAnalyzed = true;
  }
  return { rulesSha256, rulesChanged, retroAnalyzed };
}

/** Extracts one entry of a zip file (stored or deflated; what `manage.ts build` writes). */
export function readZipEntry(zip: Buffer, name: string): Buffer {
  const minEnd = Math.max(0, zip.length - 22 - 0xffff);
  let end = zip.length - 22;
  while (end >= minEnd && zip.readUInt32LE(end) !== 0x06054b50) end--;
  if (end < minEnd) throw new Error('not a zip file (no end of central directory)');
  const count = zip.readUInt16LE(end + 10);
  let entry = zip.readUInt32LE(end + 16);
  for (let i = 0; i < count; i++) {
    if (zip.readUInt32LE(entry) !== 0x02014b50) throw new Error('corrupt zip central directory');
    const method = zip.readUInt16LE(entry + 10);
    const compressedSize = zip.readUInt32LE(entry + 20);
    const nameLength = zip.readUInt16LE(entry + 28);
    const extraLength = zip.readUInt16LE(entry + 30);
    const commentLength = zip.readUInt16LE(entry + 32);
    const local = zip.readUInt32LE(entry + 42);
    const entryName = zip.toString('utf8', entry + 46, entry + 46 + nameLength);
    if (entryName === name) {
      const start = local + 30 + zip.readUInt16LE(local + 26) + zip.readUInt16LE(local + 28);
      const data = zip.subarray(start, start + compressedSize);
      if (method === 0) return data;
      if (method === 8) return inflateRawSync(data);
      throw new Error(`${name}: unsupported zip compression method ${method}`);
    }
    entry += 46 + nameLength + extraLength + commentLength;
  }
  throw new Error(`${name} is not in the zip`);
}

const ANALYZER_ZIP = path.join(LAMBDA_DIST_DIR, 'analyzer.zip');
/** Under terraform/.terraform/ (git-ignored, per checkout like the Terraform state it sits by). */
const DEPLOYED_RULES_RECORD = path.join(
  TERRAFORM_DIR,
  '.terraform',
  'binaryalert_deployed_rules_sha256',
);

/** The real steps: the rule tests, build.ts, apply.ts, retro-analyze.ts. */
export function realDeploySteps(
  recordPath = DEPLOYED_RULES_RECORD,
  options: { autoApprove?: boolean } = {},
): DeploySteps {
  return {
    // The rule tests (samples), not the developers' suite (bash scripts/test.sh).
    test: async () => {
      const report = await runRuleTests(DEFAULT_RULES_DIR);
      process.stdout.write(`rule tests: ${report.tested} samples passed\n`);
      const warning = untestedWarning(report);
      if (warning) process.stdout.write(`${warning}\n`);
    },
    build: async () => {
      await buildLambdaZips({ log: (line) => process.stdout.write(`${line}\n`) });
    },
    rulesSha256: async () => {
      const rules = readZipEntry(await readFile(ANALYZER_ZIP), COMPILED_RULES_FILE);
      return createHash('sha256').update(rules).digest('hex');
    },
    lastDeployedRulesSha256: async () => {
      const recorded = await readFile(recordPath, 'utf8').catch(() => undefined);
      return recorded?.trim() || undefined;
    },
    apply: async () => {
      await terraformApply({ autoApprove: options.autoApprove });
    },
    recordDeployedRules: async (sha256) => {
      await mkdir(path.dirname(recordPath), { recursive: true });
      await writeFile(recordPath, `${sha256}\n`);
    },
    retroAnalyze: async () => {
      // Ctrl-C stops watching the queue drain, as in `manage.ts retro-analyze`; analysis goes on.
      const controller = new AbortController();
      const onInterrupt = (): void => controller.abort();
      process.once('SIGINT', onInterrupt);
      try {
        await retroAnalyze({ config: await loadTfvars(), signal: controller.signal });
      } finally {
        process.removeListener('SIGINT', onInterrupt);
      }
    },
    log: (line) => process.stdout.write(`== ${line}\n`),
  };
}

export const registerDeploy: CommandRegistrar = (program: Command) => {
  program
    .command('deploy')
    .description('test, build and apply; then retro-analyze if the YARA rules changed')
    .option('--skip-tests', 'do not run the rule tests (samples) first')
    .option('--no-retro', 'never run retroactive analysis after deploying')
    .option('-y, --yes', 'let terraform apply without asking for confirmation')
    .action(async (flags: { skipTests?: boolean; retro: boolean; yes?: boolean }) => {
      // Validate terraform.tfvars, credentials and Terraform before minutes of tests and build.
      await runPreflight((await loadTfvars()).aws_region);
      await deploy(realDeploySteps(DEPLOYED_RULES_RECORD, { autoApprove: flags.yes === true }), {
        skipTests: flags.skipTests === true,
        retro: flags.retro,
      });
    });
};
