/** An invocation event or message body that is not what the worker expects. */
export class InvalidEventError extends Error {
  override readonly name = 'InvalidEventError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** A missing or malformed environment variable (or other setting); the message names it. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/**
 * The default branch of a switch over a discriminated union: it compiles only when every kind
 * has its case, so a new kind cannot fall through unhandled.
 */
export function unreachable(value: never): never {
  throw new Error(`unhandled kind: ${JSON.stringify(value)}`);
}

/** One line of text for an error and its causes, for the console and log fields. */
export function errorText(error: unknown): string {
  if (error instanceof Error) {
    return error.cause !== undefined
      ? `${error.message} (${errorText(error.cause)})`
      : error.message;
  }
  return String(error);
}
