import type { Command } from 'commander';
import { loadTfvars, type BinaryAlertConfig } from '@binaryalert/deployment';
import type { CommandRegistrar } from '../usage';
import { runPreflight } from '../preflight';
import { DEFAULT_RULES_DIR } from '../rules/paths';
import { runRuleTests, untestedWarning } from '../rules/samples';
import { terraformApply } from './apply';
import { buildLambdaZips } from '../build';
import { deployRules } from './deploy-rules';
import { abortOnInterrupt } from '../interrupt';

/** What the rules release at the end of a deployment did. */
export interface DeployedRules {
  version: number;
  /** false: the deployed rules equal the current release (nothing uploaded, no re-scan). */
  published: boolean;
  added: number;
  changed: number;
  retroAnalyzed: boolean;
}

/** The steps of a deployment; `manage.ts deploy` passes the real ones, tests their own. */
export interface DeploySteps {
  /** Runs the rule tests; rejects when one fails. */
  test(): Promise<void>;
  /** Builds the Lambda zips. */
  build(): Promise<void>;
  /** terraform init/fmt/apply. */
  apply(): Promise<void>;
  /**
   * Publishes the rules the zip was built from as the current rules release (unless they are the
   * current one), then re-analyzes the bucket when rules were added or changed (unless !retro).
   */
  releaseRules(options: { retro: boolean }): Promise<DeployedRules>;
  log(line: string): void;
}

export interface DeployOptions {
  skipTests?: boolean;
  /** false = never run retroactive analysis (--no-retro). */
  retro?: boolean;
}

/**
 * tests -> build -> apply -> rules release. The release makes the rules in rules/ the analyzers'
 * rules: a release published earlier by `deploy-rules` would otherwise shadow the rules baked into
 * the new zip (analyzers prefer the bucket's release). New or changed rules are then re-analyzed,
 * as after `deploy-rules`. A failing step stops the deployment there.
 */
export async function deploy(
  steps: DeploySteps,
  options: DeployOptions = {},
): Promise<DeployedRules> {
  if (options.skipTests) steps.log('Skipping tests (--skip-tests)');
  else {
    steps.log('Running the rule tests');
    await steps.test();
  }
  steps.log('Building the Lambda zips');
  await steps.build();
  steps.log('Applying Terraform');
  await steps.apply();
  steps.log('Releasing the rules');
  return steps.releaseRules({ retro: options.retro !== false });
}

/** The real steps: the rule tests, build.ts, apply.ts, deploy-rules.ts. */
export function realDeploySteps(
  config: BinaryAlertConfig,
  options: { autoApprove?: boolean; rulesDir?: string } = {},
): DeploySteps {
  const rulesDir = options.rulesDir ?? DEFAULT_RULES_DIR;
  return {
    // The rule tests (samples), not the developers' suite (bash scripts/test.sh).
    test: async () => {
      const report = await runRuleTests(rulesDir);
      process.stdout.write(`rule tests: ${report.tested} samples passed\n`);
      const warning = untestedWarning(report);
      if (warning) process.stdout.write(`${warning}\n`);
    },
    build: async () => {
      await buildLambdaZips({ log: (line) => process.stdout.write(`${line}\n`) });
    },
    apply: async () => {
      await terraformApply({ autoApprove: options.autoApprove });
    },
    releaseRules: async ({ retro }) => {
      // Ctrl-C stops watching the queue drain, as in `manage.ts retro-analyze`; analysis goes on.
      const outcome = await abortOnInterrupt((signal) =>
        deployRules({
          config,
          rulesDir,
          retro,
          // The deploy ran (or was told to skip) the rule tests already.
          testSamples: false,
          signal,
        }),
      );
      return {
        version: outcome.release.version,
        published: outcome.published,
        added: outcome.added.length,
        changed: outcome.changed.length,
        retroAnalyzed: outcome.retroAnalyzed,
      };
    },
    log: (line) => process.stdout.write(`== ${line}\n`),
  };
}

export const registerDeploy: CommandRegistrar = (program: Command) => {
  program
    .command('deploy')
    .description(
      'rule tests, build, apply, then release the rules (re-analyzing for new or changed rules)',
    )
    .option('--skip-tests', 'do not run the rule tests (samples) first')
    .option('--no-retro', 'never run retroactive analysis after deploying')
    .option('-y, --yes', 'let terraform apply without asking for confirmation')
    .action(async (flags: { skipTests?: boolean; retro: boolean; yes?: boolean }) => {
      // Validate terraform.tfvars, credentials and Terraform before minutes of tests and build.
      const config = await loadTfvars();
      await runPreflight(config.aws_region);
      await deploy(realDeploySteps(config, { autoApprove: flags.yes === true }), {
        skipTests: flags.skipTests === true,
        retro: flags.retro,
      });
    });
};
