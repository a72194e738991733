import { readFile, rename, writeFile } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import type { Readable, Writable } from 'node:stream';
import { Option, type Command } from 'commander';
import {
  DEFAULT_TFVARS_PATH,
  TfvarsError,
  describeProblem,
  parseTfvars,
  resourceNames,
  validateTfvars,
} from '@binaryalert/deployment';
import { UsageError, type CommandRegistrar } from '../usage';

/** Reads answers line by line; works the same with a terminal and with piped stdin. */
export class Prompter {
  private readonly lines: AsyncIterator<string>;

  constructor(
    input: Readable,
    private readonly output: Writable,
  ) {
    const rl = createInterface({ input, terminal: false });
    this.lines = rl[Symbol.asyncIterator]();
  }

  /** Asks one question; resolves with the trimmed answer, or undefined at end of input. */
  async ask(question: string): Promise<string | undefined> {
    this.output.write(question);
    const next = await this.lines.next();
    if (next.done) {
      this.output.write('\n');
      return undefined;
    }
    return next.value.trim();
  }
}

/**
 * Replaces the quoted value of one top-level string setting, keeping the rest of the line
 * (alignment, trailing comment) and every other line as they are.
 */
export function setTfvarsString(content: string, setting: string, value: string): string {
  const pattern = new RegExp(`^(${setting}\\s*=\\s*)"(?:[^"\\\\]|\\\\.)*"`, 'm');
  if (!pattern.test(content)) {
    throw new TfvarsError(`terraform.tfvars: no line sets ${setting} = "..." to update`);
  }
  return content.replace(pattern, (_match, head: string) => `${head}${JSON.stringify(value)}`);
}

export interface ConfigureOptions {
  tfvarsPath?: string;
  input?: Readable;
  output?: Writable;
}

const QUESTIONS = [
  { setting: 'aws_region', question: 'AWS region' },
  { setting: 'name_prefix', question: 'Unique name prefix, e.g. "company_team"' },
] as const;

/**
 * Prompts for the AWS region and the name prefix, validates each answer with the same rules as
 * every other command, and rewrites only those two values in terraform.tfvars.
 * An empty answer keeps the current value; three invalid answers in a row give up.
 */
export async function configure(options: ConfigureOptions = {}): Promise<Record<string, string>> {
  const tfvarsPath = options.tfvarsPath ?? DEFAULT_TFVARS_PATH;
  const output = options.output ?? process.stdout;
  const prompter = new Prompter(options.input ?? process.stdin, output);
  const original = await readFile(tfvarsPath, 'utf8');
  const values = await parseTfvars(original, tfvarsPath);
  const answers: Record<string, string> = {};

  for (const { setting, question } of QUESTIONS) {
    const current = typeof values[setting] === 'string' ? values[setting] : '';
    for (let attempt = 1; ; attempt++) {
      const answer = await prompter.ask(`${question} [${current}]: `);
      if (answer === undefined) throw new UsageError(`no answer for ${setting} (end of input)`);
      const candidate = answer === '' ? current : answer;
      const problem = problemWith(setting, { ...values, ...answers, [setting]: candidate });
      if (!problem) {
        answers[setting] = candidate;
        break;
      }
      output.write(`${problem}\n`);
      if (attempt === 3) throw new UsageError(`no valid value for ${setting}`);
    }
  }

  let updated = original;
  for (const [setting, value] of Object.entries(answers)) {
    updated = setTfvarsString(updated, setting, value);
  }
  // Write beside the file and rename, so an interrupted write never leaves half a config.
  const temporary = `${tfvarsPath}.${process.pid}.tmp`;
  await writeFile(temporary, updated);
  await rename(temporary, tfvarsPath);

  output.write(`Updated ${tfvarsPath}\n`);
  try {
    const config = validateTfvars(await parseTfvars(updated, tfvarsPath));
    output.write(`The binaries bucket will be ${resourceNames(config).bucket}\n`);
  } catch (error) {
    if (!(error instanceof TfvarsError)) throw error;
    output.write(`Fix these settings before deploying:\n${error.message}\n`);
    process.exitCode = 1;
  }
  return answers;
}

/** The validation problems of one setting within the whole configuration, if any. */
function problemWith(setting: string, values: Record<string, unknown>): string | undefined {
  try {
    validateTfvars(values);
    return undefined;
  } catch (error) {
    if (!(error instanceof TfvarsError)) throw error;
    // Problems of other settings are reported once the two answers are written.
    const mine = error.problems.filter((problem) => problem.setting === setting);
    return mine.length > 0 ? mine.map((problem) => describeProblem(problem)).join('\n') : undefined;
  }
}

export const registerConfigure: CommandRegistrar = (program: Command) => {
  program
    .command('configure')
    .description('set the AWS region and name prefix in terraform.tfvars (prompts on stdin)')
    .addOption(new Option('--tfvars <path>', 'terraform.tfvars to update').hideHelp())
    .action(async (flags: { tfvars?: string }) => {
      await configure({ tfvarsPath: flags.tfvars });
    });
};
