import { z } from 'zod';
import { ConfigError } from './errors';

/**
 * Parses a Lambda's environment with a zod schema. On failure throws ConfigError naming every
 * offending variable, so a bad deployment fails its cold start with a readable message.
 */
export function parseEnv<T extends z.ZodTypeAny>(
  schema: T,
  env: NodeJS.ProcessEnv = process.env,
): z.infer<T> {
  const result = schema.safeParse(env);
  if (result.success) return result.data;
  const problems = result.error.issues.map((issue) => {
    const name = issue.path.map(String).join('.') || '(environment)';
    const value = issue.path.length === 1 ? env[String(issue.path[0])] : undefined;
    const shown = value === undefined ? 'missing' : `got ${JSON.stringify(value)}`;
    return `${name}: ${issue.message} (${shown})`;
  });
  throw new ConfigError(`Invalid environment: ${problems.join('; ')}`, { cause: result.error });
}
