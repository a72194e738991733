import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { isRuleFile } from './discover';
import { matchesAnyGlob } from './glob';
import { destinationFor, type RuleRepository } from './sources';

const execFileAsync = promisify(execFile);

/** `git clone` of a rule source failed (unreachable, no such repository, timeout). */
export class RuleCloneError extends Error {
  override readonly name = 'RuleCloneError';
}

export interface CloneOutcome {
  url: string;
  /** Relative to the rules directory, '/'-separated. */
  destination: string;
  /** Rule files copied (present when the source succeeded). */
  files?: number;
  /** Why the source failed; its previous copy is left untouched. */
  error?: string;
}

export interface CloneRulesOptions {
  rulesDir: string;
  repos: readonly RuleRepository[];
  /** Per clone; default 10 minutes. */
  timeoutMs?: number;
  /** Called after each source, in order. */
  onOutcome?: (outcome: CloneOutcome) => void;
}

/**
 * Clones each repository (`git clone --depth 1`) into a temporary directory and copies its
 * .yar/.yara files that match `include` and not `exclude` to `<rulesDir>/<host>/<repo path>/`.
 * A source's previous copy is replaced only after its clone succeeded; a failing source is
 * reported in its outcome and the others go on.
 */
export async function cloneRuleRepositories(options: CloneRulesOptions): Promise<CloneOutcome[]> {
  const outcomes: CloneOutcome[] = [];
  for (const repo of options.repos) {
    let outcome: CloneOutcome;
    try {
      const destination = destinationFor(repo.url);
      try {
        const files = await cloneOne(
          repo,
          path.join(options.rulesDir, ...destination.split('/')),
          options.timeoutMs,
        );
        outcome = { url: repo.url, destination, files };
      } catch (error) {
        outcome = { url: repo.url, destination, error: (error as Error).message };
      }
    } catch (error) {
      outcome = { url: repo.url, destination: '', error: (error as Error).message };
    }
    outcomes.push(outcome);
    options.onOutcome?.(outcome);
  }
  return outcomes;
}

async function cloneOne(
  repo: RuleRepository,
  target: string,
  timeoutMs = 600_000,
): Promise<number> {
  const workDir = await fs.mkdtemp(path.join(os.tmpdir(), 'binaryalert-clone-'));
  try {
    const checkout = path.join(workDir, 'repo');
    try {
      await execFileAsync('git', ['clone', '--depth', '1', '--quiet', '--', repo.url, checkout], {
        timeout: timeoutMs,
        maxBuffer: 16 * 1024 * 1024,
        // Never wait for a password prompt: a private or missing repository fails instead.
        env: { ...process.env, GIT_TERMINAL_PROMPT: '0', GIT_ASKPASS: 'true' },
      });
    } catch (cause) {
      const stderr = (cause as { stderr?: string }).stderr?.trim();
      const reason = stderr || (cause as Error).message;
      throw new RuleCloneError(`git clone ${repo.url} failed: ${reason}`, { cause });
    }
    const selected = (await listFiles(checkout)).filter(
      (relative) =>
        isRuleFile(relative) &&
        matchesAnyGlob(relative, repo.include) &&
        !matchesAnyGlob(relative, repo.exclude),
    );
    // Copy into a staging directory beside the target, then swap, so the old copy stays whole
    // until the new one is complete. The leading dot keeps rule discovery away from it.
    const aside = (what: string) =>
      path.join(path.dirname(target), `.${path.basename(target)}.${what}-${process.pid}`);
    const staging = aside('staging');
    const previous = aside('previous');
    await fs.rm(staging, { recursive: true, force: true });
    for (const relative of selected) {
      const to = path.join(staging, ...relative.split('/'));
      await fs.mkdir(path.dirname(to), { recursive: true });
      await fs.copyFile(path.join(checkout, ...relative.split('/')), to);
    }
    await fs.mkdir(staging, { recursive: true });
    // Two renames, then the slow delete: a kill while the old copy was being deleted in place
    // left the source with part of its rules, and compile-rules compiled what was left.
    const hadPrevious = await fs.rename(target, previous).then(
      () => true,
      (error: NodeJS.ErrnoException) => {
        if (error.code === 'ENOENT') return false;
        throw error;
      },
    );
    await fs.rename(staging, target);
    if (hadPrevious) await fs.rm(previous, { recursive: true, force: true });
    return selected.length;
  } finally {
    await fs.rm(workDir, { recursive: true, force: true });
  }
}

/** Regular files under `root` ('/'-separated relative paths); skips .git and symbolic links. */
async function listFiles(root: string): Promise<string[]> {
  const files: string[] = [];
  async function walk(dir: string, relative: string): Promise<void> {
    for (const entry of await fs.readdir(dir, { withFileTypes: true })) {
      const entryRelative = relative ? `${relative}/${entry.name}` : entry.name;
      if (entry.isDirectory()) {
        if (!relative && entry.name === '.git') continue;
        await walk(path.join(dir, entry.name), entryRelative);
      } else if (entry.isFile()) {
        files.push(entryRelative);
      }
    }
  }
  await walk(root, '');
  return files.sort();
}
