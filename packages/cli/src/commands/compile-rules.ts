import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import {
  libyaraVersion,
  loadRules,
  RuleCompileError,
  type CompileMessage,
} from '@binaryalert/yara';
import { UsageError, type CommandRegistrar } from '../usage';
import { compileRulesDirectory } from '../rules/compile';
import {
  DEFAULT_COMPILED_RULES,
  DEFAULT_RULES_DIR,
  displayPath,
  SAMPLES_DIR_NAME,
} from '../rules/paths';
import { testRuleSamples, untestedWarning } from '../rules/samples';

interface CompileRulesFlags {
  rulesDir: string;
  output: string;
  skipBroken?: boolean;
  showWarnings?: boolean;
  test?: boolean;
}

/** `file:line: message`, the form editors and CI annotate. */
export function formatCompileMessage(message: CompileMessage): string {
  return `${displayPath(message.file)}:${message.line}: ${message.message}`;
}

/** Fails with a usage error unless `dir` is an existing directory. */
export async function requireDirectory(dir: string, flag: string): Promise<void> {
  const stat = await fs.stat(dir).catch(() => undefined);
  if (!stat?.isDirectory()) throw new UsageError(`${flag} ${dir} is not a directory`);
}

export const registerCompileRules: CommandRegistrar = (program: Command) => {
  program
    .command('compile-rules')
    .description('compile the YARA rules under rules/ into one file')
    .option(
      '--rules-dir <dir>',
      'rules directory (samples/ inside it is skipped)',
      DEFAULT_RULES_DIR,
    )
    .option('-o, --output <file>', 'compiled rules file', DEFAULT_COMPILED_RULES)
    .option('--skip-broken', 'leave out rule files that do not compile and list them')
    .option('--show-warnings', 'list compiler warnings, not just their number')
    .option(
      '--test',
      'test each rule against its samples (rules/samples/{positive,negative}/RULE/)',
    )
    .action(async (flags: CompileRulesFlags) => {
      const rulesDir = path.resolve(flags.rulesDir);
      await requireDirectory(rulesDir, '--rules-dir');
      const out = (line: string) => process.stdout.write(`${line}\n`);
      const err = (line: string) => process.stderr.write(`${line}\n`);
      try {
        const result = await compileRulesDirectory({
          rulesDir,
          output: path.resolve(flags.output),
          skipBroken: flags.skipBroken === true,
        });
        out(
          `compiled ${result.ruleCount} rules from ${result.fileCount} files into ` +
            `${displayPath(result.output)} (libyara ${libyaraVersion})`,
        );
        if (result.warnings.length > 0) {
          if (flags.showWarnings)
            result.warnings.forEach((w) => err(`warning: ${formatCompileMessage(w)}`));
          else err(`${result.warnings.length} compiler warnings (list them with --show-warnings)`);
        }
        if (flags.test) {
          const report = await testRuleSamples(
            await loadRules(result.output),
            Object.keys(result.manifest.fingerprints.rules),
            path.join(rulesDir, SAMPLES_DIR_NAME),
          );
          out(`tested ${report.tested} samples: ${report.failures.length} failed`);
          report.failures.forEach((failure) => err(`FAIL ${failure}`));
          const warning = untestedWarning(report);
          if (warning) err(warning);
          if (report.failures.length > 0) process.exitCode = 1;
        }
        if (result.skipped.length > 0) {
          err(`left out ${result.skipped.length} rule files that do not compile:`);
          for (const file of result.skipped) {
            err(`  ${displayPath(file.path)}`);
            file.errors.forEach((e) => err(`    ${formatCompileMessage(e)}`));
          }
        }
      } catch (error) {
        if (!(error instanceof RuleCompileError)) throw error;
        error.errors.forEach((e) => err(formatCompileMessage(e)));
        const files = new Set(error.errors.map((e) => e.file)).size;
        err(
          `error: ${error.errors.length} compile errors in ${files} files; nothing was written ` +
            '(fix them, or leave those files out with --skip-broken)',
        );
        process.exitCode = 1;
      }
    });
};
