export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

/** Structured logger: every call writes one JSON object on one line. */
export interface Logger {
  debug(message: string, fields?: Record<string, unknown>): void;
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
  /** A logger that adds `fields` to every line (e.g. `{ object: objectId(bucket, key) }`). */
  child(fields: Record<string, unknown>): Logger;
}

const LEVEL_ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

function isLogLevel(value: string | undefined): value is LogLevel {
  return value !== undefined && value in LEVEL_ORDER;
}

function levelFromEnv(value: string | undefined): LogLevel {
  const level = value?.toLowerCase();
  return isLogLevel(level) ? level : 'info';
}

/** Turns errors (and their causes) into plain JSON-friendly objects; other values pass through. */
function serialize(value: unknown, depth = 0): unknown {
  if (value instanceof Error) {
    const out: Record<string, unknown> = { name: value.name, message: value.message };
    for (const [key, field] of Object.entries(value)) {
      if (key !== 'cause' && key !== '$response') out[key] = field;
    }
    if (value.stack) out.stack = value.stack;
    if (value.cause !== undefined && depth < 5) out.cause = serialize(value.cause, depth + 1);
    return out;
  }
  if (value instanceof Set) return [...(value as Set<unknown>)];
  return value;
}

function safeStringify(entry: Record<string, unknown>): string {
  try {
    return JSON.stringify(entry, (_key, value: unknown) =>
      typeof value === 'bigint' ? value.toString() : serialize(value),
    );
  } catch (error) {
    return JSON.stringify({
      time: entry.time,
      level: entry.level,
      component: entry.component,
      message: entry.message,
      logError: error instanceof Error ? error.message : String(error),
    });
  }
}

/**
 * Creates a logger writing one JSON object per line: `{time, level, component, message, ...fields}`.
 * Lines below `minLevel` (default: `LOG_LEVEL` from the environment, else `info`) are dropped.
 */
export function createLogger(
  component: string,
  write: (line: string) => void = (line) => process.stdout.write(`${line}\n`),
  minLevel: LogLevel = levelFromEnv(process.env.LOG_LEVEL),
): Logger {
  const build = (bound: Record<string, unknown>): Logger => {
    const log =
      (level: LogLevel) =>
      (message: string, fields?: Record<string, unknown>): void => {
        if (LEVEL_ORDER[level] < LEVEL_ORDER[minLevel]) return;
        write(
          safeStringify({
            time: new Date().toISOString(),
            level,
            component,
            message,
            ...bound,
            ...fields,
          }),
        );
      };
    return {
      debug: log('debug'),
      info: log('info'),
      warn: log('warn'),
      error: log('error'),
      child: (fields) => build({ ...bound, ...fields }),
    };
  };
  return build({});
}

/** The identifier of an S3 object in logs, results and the match table: `S3:<bucket>:<key>`. */
export function objectId(bucket: string, key: string): string {
  return `S3:${bucket}:${key}`;
}
