import path from 'node:path';
import type { Command } from 'commander';
import type { CommandRegistrar } from '../usage';
import { cloneRuleRepositories } from '../rules/clone';
import { DEFAULT_RULE_SOURCES, DEFAULT_RULES_DIR } from '../rules/paths';
import { loadRuleSources } from '../rules/sources';
import { requireDirectory } from './compile-rules';

interface CloneRulesFlags {
  rulesDir: string;
  sources: string;
}

export const registerCloneRules: CommandRegistrar = (program: Command) => {
  program
    .command('clone-rules')
    .description('fetch the YARA rules listed in rule_sources.json')
    .option(
      '--rules-dir <dir>',
      'rules directory to copy into (<host>/<repo path>/...)',
      DEFAULT_RULES_DIR,
    )
    .option(
      '--sources <file>',
      'rule sources (JSON: repos with url, include, exclude)',
      DEFAULT_RULE_SOURCES,
    )
    .action(async (flags: CloneRulesFlags) => {
      const rulesDir = path.resolve(flags.rulesDir);
      await requireDirectory(rulesDir, '--rules-dir');
      const { repos } = await loadRuleSources(path.resolve(flags.sources));
      const outcomes = await cloneRuleRepositories({
        rulesDir,
        repos,
        onOutcome: (outcome) => {
          if (outcome.error === undefined) {
            process.stdout.write(`${outcome.destination}: ${outcome.files ?? 0} rule files\n`);
          } else {
            process.stderr.write(`error: ${outcome.url}: ${outcome.error}\n`);
          }
        },
      });
      const failed = outcomes.filter((outcome) => outcome.error !== undefined).length;
      const copied = outcomes.reduce((sum, outcome) => sum + (outcome.files ?? 0), 0);
      process.stdout.write(
        `cloned ${outcomes.length - failed} of ${outcomes.length} sources (${copied} rule files)` +
          `${failed ? `; ${failed} failed and kept their previous copy` : ''}\n`,
      );
      if (failed > 0) process.exitCode = 1;
    });
};
