import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { loadTfvars, type BinaryAlertConfig } from '@binaryalert/deployment';
import yazl from 'yazl';

/** The repository's terraform.tfvars (what `manage.ts local` reads). */
export const REPO_TFVARS = resolve(__dirname, '../../../../terraform.tfvars');

/** Writes a zip holding the given files. */
export async function writeZip(
  path: string,
  files: Record<string, string | Buffer>,
): Promise<void> {
  const zip = new yazl.ZipFile();
  for (const [name, content] of Object.entries(files)) {
    zip.addBuffer(Buffer.isBuffer(content) ? content : Buffer.from(content), name);
  }
  zip.end();
  const chunks: Buffer[] = [];
  for await (const chunk of zip.outputStream) chunks.push(chunk as Buffer);
  await writeFile(path, Buffer.concat(chunks));
}

/** A temp directory removed by the returned function. */
export async function tempDir(
  prefix: string,
): Promise<{ path: string; remove: () => Promise<void> }> {
  const path = await mkdtemp(join(tmpdir(), prefix));
  return { path, remove: () => rm(path, { recursive: true, force: true }) };
}

/** The repository's settings with a unique name prefix, so parallel stacks never share names. */
export async function testConfig(
  overrides: Partial<BinaryAlertConfig> = {},
): Promise<BinaryAlertConfig> {
  const config = await loadTfvars(REPO_TFVARS);
  const suffix = Math.random()
    .toString(36)
    .slice(2, 8)
    .replace(/[^a-z]/g, 'x');
  return { ...config, name_prefix: `t${suffix}`, ...overrides };
}

export async function readJsonLines(path: string): Promise<unknown[]> {
  const text = await readFile(path, 'utf8').catch(() => '');
  return text
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as unknown);
}

/** Polls `probe` until it returns a value other than undefined, or fails after `timeoutMs`. */
export async function waitFor<T>(
  probe: () => Promise<T | undefined> | T | undefined,
  timeoutMs: number,
  what: string,
  intervalMs = 100,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (error) {
      lastError = error;
    }
    await new Promise((ok) => setTimeout(ok, intervalMs));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`, { cause: lastError });
}
