import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { DEFAULT_RULES_DIR, displayPath, SAMPLES_DIR_NAME } from '../rules/paths';
import { UsageError, type CommandRegistrar } from '../usage';

/** YARA identifiers: a letter or underscore, then letters, digits, underscores; at most 128. */
const RULE_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,127}$/;
/** Where new rules go: the user's own folder under rules/ (the project's are in binaryalert/). */
export const NEW_RULE_DIR = 'custom';

/**
 * Scaffolds `rules/custom/NAME.yara` and `rules/samples/{positive,negative}/NAME/`. Never
 * overwrites: an existing rule file is a usage error. Returns the paths it created.
 */
export async function newRule(name: string, rulesDir = DEFAULT_RULES_DIR): Promise<string[]> {
  if (!RULE_NAME.test(name)) {
    throw new UsageError(
      `"${name}" is not a YARA rule name (a letter or _, then letters, digits or _; at most 128)`,
    );
  }
  const ruleFile = path.join(rulesDir, NEW_RULE_DIR, `${name}.yara`);
  const folders = ['positive', 'negative'].map((kind) =>
    path.join(rulesDir, SAMPLES_DIR_NAME, kind, name),
  );
  await fs.mkdir(path.dirname(ruleFile), { recursive: true });
  const rule = [
    `rule ${name}`,
    '{',
    '    meta:',
    '        description = "TODO: what this rule detects"',
    '        author = "TODO"',
    '        reference = "TODO"',
    '    strings:',
    '        $text = "TODO: a string the files you are after contain"',
    '    condition:',
    '        $text',
    '}',
    '',
  ].join('\n');
  try {
    await fs.writeFile(ruleFile, rule, { flag: 'wx' });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') {
      throw new UsageError(`${displayPath(ruleFile)} exists already; nothing was changed`);
    }
    throw error;
  }
  for (const folder of folders) await fs.mkdir(folder, { recursive: true });
  return [ruleFile, ...folders];
}

export const registerNewRule: CommandRegistrar = (program: Command) => {
  program
    .command('new-rule')
    .description('create rules/custom/NAME.yara and its sample folders')
    .argument('<name>', 'the rule name (a YARA identifier)')
    .option('--rules-dir <dir>', 'rules directory', DEFAULT_RULES_DIR)
    .action(async (name: string, flags: { rulesDir: string }) => {
      const created = await newRule(name, path.resolve(flags.rulesDir));
      for (const file of created) process.stdout.write(`created ${displayPath(file)}\n`);
      process.stdout.write(
        'Put files the rule must match in the positive folder and look-alikes it must not match ' +
          'in the negative one; compile-rules --test and deploy-rules test them (a rule without ' +
          'samples only gets a warning).\n',
      );
    });
};
