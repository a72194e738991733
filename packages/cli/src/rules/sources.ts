import { promises as fs } from 'node:fs';
import { z } from 'zod';
import { globToRegExp } from './glob';
import { SAMPLES_DIR_NAME } from './paths';

const GlobSchema = z
  .string()
  .min(1)
  .refine(
    (glob) => {
      try {
        globToRegExp(glob);
        return true;
      } catch {
        return false;
      }
    },
    { message: 'not a valid glob' },
  );

export const RuleRepositorySchema = z
  .object({
    /** Anything `git clone` accepts: https://, ssh://, git@host:path, file://. */
    url: z.string().min(1),
    /** Globs over paths inside the repository; only .yar/.yara files are ever copied. */
    include: z.array(GlobSchema).default(['**/*.yar', '**/*.yara']),
    exclude: z.array(GlobSchema).default([]),
  })
  .strict();
export type RuleRepository = z.infer<typeof RuleRepositorySchema>;

export const RuleSourcesSchema = z.object({ repos: z.array(RuleRepositorySchema) }).strict();
export type RuleSources = z.infer<typeof RuleSourcesSchema>;

/** rule_sources.json is missing, not JSON, or not in the expected shape. */
export class RuleSourcesError extends Error {
  override readonly name = 'RuleSourcesError';
}

/** Reads and validates rule_sources.json; errors name the file and the offending field. */
export async function loadRuleSources(file: string): Promise<RuleSources> {
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (cause) {
    throw new RuleSourcesError(`cannot read ${file}: ${(cause as Error).message}`, { cause });
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (cause) {
    throw new RuleSourcesError(`${file} is not valid JSON: ${(cause as Error).message}`, { cause });
  }
  const parsed = RuleSourcesSchema.safeParse(json);
  if (!parsed.success) {
    const problems = parsed.error.issues.map(
      (issue) => `${issue.path.length ? issue.path.join('.') : '(top level)'}: ${issue.message}`,
    );
    throw new RuleSourcesError(`${file} is invalid:\n  ${problems.join('\n  ')}`, {
      cause: parsed.error,
    });
  }
  const seen = new Map<string, string>();
  for (const repo of parsed.data.repos) {
    let destination: string;
    try {
      destination = destinationFor(repo.url);
    } catch (cause) {
      throw new RuleSourcesError(`${file}: ${(cause as Error).message}`, { cause });
    }
    const other = seen.get(destination);
    if (other !== undefined) {
      throw new RuleSourcesError(
        `${file}: ${other} and ${repo.url} would both be copied to rules/${destination}; ` +
          'merge their include globs into one entry',
      );
    }
    seen.set(destination, repo.url);
  }
  return parsed.data;
}

/**
 * The directory (relative to rules/, '/'-separated) that holds a repository's copied rules:
 * `<host>/<repository path>` without a trailing `.git`, e.g. `github.com/Neo23x0/signature-base`.
 * URLs without a host (file://) use `localhost`. Throws RuleSourcesError for a URL that would
 * land outside rules/ or on top of the samples.
 */
export function destinationFor(url: string): string {
  let host: string;
  let repoPath: string;
  const scpLike = /^(?:[^@/]+@)?([^:/]+):(?!\/\/)(.+)$/.exec(url);
  if (scpLike && !/^[a-z][a-z0-9+.-]*:\/\//i.test(url)) {
    host = scpLike[1] ?? '';
    repoPath = scpLike[2] ?? '';
  } else {
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch (cause) {
      throw new RuleSourcesError(`not a git URL: ${url}`, { cause });
    }
    host = parsed.hostname || 'localhost';
    repoPath = decodeURIComponent(parsed.pathname);
  }
  const segments = [host, ...repoPath.replace(/\.git\/?$/, '').split('/')].filter(
    (segment) => segment !== '' && segment !== '.',
  );
  if (segments.length < 2 || segments.some((segment) => segment === '..')) {
    throw new RuleSourcesError(`cannot derive a rules directory from ${url}`);
  }
  if (segments[0] === SAMPLES_DIR_NAME) {
    throw new RuleSourcesError(`${url} would be copied into rules/${SAMPLES_DIR_NAME}`);
  }
  return segments.join('/');
}
