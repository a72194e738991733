import { Command, CommanderError } from 'commander';
import { registerCloneRules } from './commands/clone-rules';
import { registerCompileRules } from './commands/compile-rules';
import { registerScan } from './commands/scan';
import { registerConfigure } from './commands/configure';
import { registerApply } from './commands/apply';
import { registerDestroy } from './commands/destroy';
import { registerDeploy } from './commands/deploy';
import { registerDeployRules } from './commands/deploy-rules';
import { registerNewRule } from './commands/new-rule';
import { registerLocal } from './commands/local';
import { registerBuild } from './commands/build';
import { registerRetroAnalyze } from './commands/retro-analyze';
import { registerPurgeQueue } from './commands/purge-queue';
import { registerLiveTest } from './commands/live-test';
import { registerResults } from './commands/results';
import { registerReconcile } from './commands/reconcile';

import { UsageError, type CommandRegistrar } from './usage';

export { UsageError, type CommandRegistrar };

// Each command module owns its commands; this list is the only place they are wired together.
const registrars: CommandRegistrar[] = [
  registerCompileRules,
  registerCloneRules,
  registerScan,
  registerConfigure,
  registerApply,
  registerDestroy,
  registerDeploy,
  registerDeployRules,
  registerNewRule,
  registerLocal,
  registerBuild,
  registerRetroAnalyze,
  registerPurgeQueue,
  registerLiveTest,
  registerResults,
  registerReconcile,
];

/** Builds the manage.ts program with every command registered. */
export function buildProgram(): Command {
  const program = new Command('manage.ts')
    .description('BinaryAlert: serverless, real-time and retroactive malware detection')
    .showHelpAfterError('(run manage.ts --help for the list of commands)')
    .exitOverride();
  for (const register of registrars) register(program);
  return program;
}

/**
 * Runs manage.ts with the given arguments (without node and script) and returns the exit code:
 * 0 on success, 1 when a command reports a failure or a finding, 2 on usage errors.
 */
export async function runCli(args: string[]): Promise<number> {
  // Commands report findings through process.exitCode; start each run from a clean slate.
  process.exitCode = undefined;
  const program = buildProgram();
  program.commands.forEach((command) => command.exitOverride());
  try {
    await program.parseAsync(args, { from: 'user' });
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (error) {
    if (error instanceof CommanderError) {
      const helpOrVersion =
        error.code === 'commander.helpDisplayed' ||
        error.code === 'commander.version' ||
        error.code === 'commander.help';
      return helpOrVersion ? 0 : 2;
    }
    if (error instanceof UsageError) {
      process.stderr.write(`error: ${error.message}\n`);
      return 2;
    }
    process.stderr.write(`error: ${error instanceof Error ? error.message : String(error)}\n`);
    return 1;
  }
}
