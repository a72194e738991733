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
