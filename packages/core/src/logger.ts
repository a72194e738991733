import { Logger } from '@aws-lambda-powertools/logger';
import type { LogItem } from '@aws-lambda-powertools/logger';
import type { ConstructorOptions } from '@aws-lambda-powertools/logger/types';

export { Logger };

/** Powertools' Logger printing each line to `write` instead of stdout; its children too. */
class LineLogger extends Logger {
  private readonly write: (line: string) => void;

  constructor(options: ConstructorOptions, write: (line: string) => void) {
    super(options);
    this.write = write;
  }

  protected override createLogger(options?: ConstructorOptions): Logger {
    return new LineLogger(options ?? {}, this.write);
  }

  protected override printLog(_logLevel: number, log: LogItem): void {
    log.prepareForPrint();
    this.write(JSON.stringify(log.getAttributes(), this.getJsonReplacer()));
  }
}

/**
 * The Powertools Logger of one function: one JSON object per line
 * (`{level, message, service, timestamp, ...keys}`), the level from `POWERTOOLS_LOG_LEVEL` or
 * `LOG_LEVEL` (default INFO). `serviceName` is the function's name (see `functionService`); a
 * child made with `createChild({ persistentKeys: { object: objectId(bucket, key) } })` adds the
 * object to every line. Lines go to stdout, or to `write` (the local stack's own log, tests).
 */
export function createLogger(serviceName?: string, write?: (line: string) => void): Logger {
  const options: ConstructorOptions = serviceName ? { serviceName } : {};
  return write ? new LineLogger(options, write) : new Logger(options);
}

/**
 * The `service` of a function's logs and metrics: its deployed name, which Lambda (and the local
 * stack's runtime) sets in AWS_LAMBDA_FUNCTION_NAME, so one deployment's alarms select its own
 * metrics. Undefined outside a function: Powertools then falls back to POWERTOOLS_SERVICE_NAME.
 */
export function functionService(env: NodeJS.ProcessEnv = process.env): string | undefined {
  return env.AWS_LAMBDA_FUNCTION_NAME || undefined;
}

/** The identifier of an S3 object in logs, results and the match table: `S3:<bucket>:<key>`. */
export function objectId(bucket: string, key: string): string {
  return `S3:${bucket}:${key}`;
}
