import { spawn } from 'node:child_process';
import { copyFile, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { DEFAULT_TFVARS_PATH, loadTfvars } from '@binaryalert/deployment';
// program before the command module: command modules import program, which registers them.
import { UsageError } from '../usage';
import { configure, setTfvarsString } from './configure';

let dir: string;
let tfvarsPath: string;

beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'binaryalert-configure-'));
  tfvarsPath = path.join(dir, 'terraform.tfvars');
  await copyFile(DEFAULT_TFVARS_PATH, tfvarsPath);
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Runs configure on the copy with these stdin lines; returns what it printed. */
async function configureWith(lines: string[]): Promise<string> {
  const output = new PassThrough();
  const printed: Buffer[] = [];
  output.on('data', (chunk: Buffer) => printed.push(chunk));
  await configure({ tfvarsPath, input: Readable.from(lines.map((l) => `${l}\n`)), output });
  return Buffer.concat(printed).toString('utf8');
}

/** The lines that differ between two versions of a file (same line count). */
function changedLines(before: string, after: string): [string, string][] {
  const a = before.split('\n');
  const b = after.split('\n');
  expect(b).toHaveLength(a.length);
  return a.flatMap((line, i) => (line === b[i] ? [] : [[line, b[i]!] as [string, string]]));
}

describe('configure', () => {
  it('rewrites only the region and prefix lines, keeping every comment', async () => {
    const before = await readFile(tfvarsPath, 'utf8');

    await configureWith(['eu-central-1', 'acme_security']);

    const after = await readFile(tfvarsPath, 'utf8');
    expect(changedLines(before, after)).toEqual([
      [expect.stringMatching(/^aws_region = "/), 'aws_region = "eu-central-1"'],
      [expect.stringMatching(/^name_prefix = "/), 'name_prefix = "acme_security"'],
    ]);
    const config = await loadTfvars(tfvarsPath);
    expect([config.aws_region, config.name_prefix]).toEqual(['eu-central-1', 'acme_security']);
  });

  it('keeps the current value on an empty answer', async () => {
    const before = await loadTfvars(tfvarsPath);

    await configureWith(['', 'other_prefix']);

    const after = await loadTfvars(tfvarsPath);
    expect(after.aws_region).toBe(before.aws_region);
    expect(after.name_prefix).toBe('other_prefix');
  });

  it('explains an invalid answer and asks again', async () => {
    const printed = await configureWith(['us-west-2', 'Bad-Prefix', 'good_prefix']);

    expect(printed).toContain(
      'name_prefix must be lowercase letters, digits and single underscores',
    );
    expect(printed).toContain('(got "Bad-Prefix")');
    expect((await loadTfvars(tfvarsPath)).name_prefix).toBe('good_prefix');
  });

  it('leaves the file untouched when input ends before every answer', async () => {
    const before = await readFile(tfvarsPath, 'utf8');

    const error: unknown = await configureWith(['us-west-2']).catch((e: unknown) => e);

    expect(error).toBeInstanceOf(UsageError);
    expect(await readFile(tfvarsPath, 'utf8')).toBe(before);
  });

  it('gives up after three invalid answers', async () => {
    const error: unknown = await configureWith(['x', 'y', 'z']).catch((e: unknown) => e);

    expect((error as Error).message).toBe('no valid value for aws_region');
  });

  it('works through manage.ts with piped stdin', async () => {
    const root = path.resolve(__dirname, '../../../..');
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', 'manage.ts', 'configure', '--tfvars', tfvarsPath],
      { cwd: root, stdio: ['pipe', 'pipe', 'pipe'] },
    );
    let stdout = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stdin.end('ap-southeast-2\npiped_prefix\n');

    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));

    expect(code).toBe(0);
    expect(stdout).toContain('piped.prefix.binaryalert-binaries.ap-southeast-2');
    const config = await loadTfvars(tfvarsPath);
    expect([config.aws_region, config.name_prefix]).toEqual(['ap-southeast-2', 'piped_prefix']);
  }, 60_000);
});

describe('setTfvarsString', () => {
  it('replaces the quoted value and keeps a trailing comment', () => {
    const content = 'a = "x"\nname_prefix   = "old" # keep me\nb = "name_prefix = \\"no\\""\n';

    expect(setTfvarsString(content, 'name_prefix', 'new')).toBe(
      'a = "x"\nname_prefix   = "new" # keep me\nb = "name_prefix = \\"no\\""\n',
    );
  });
});
