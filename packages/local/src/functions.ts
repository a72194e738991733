import { appendFile, mkdir } from 'node:fs/promises';
import { cpus } from 'node:os';
import { join } from 'node:path';
import {
  functionEnvironments,
  type BinaryAlertConfig,
  type ResourceNames,
} from '@binaryalert/deployment';

import { LambdaRuntime, type InvokeOutcome, type LocalFunction } from './lambda';

/** The handler Terraform configures for every function. */
const LAMBDA_HANDLER = 'index.handler';

export interface FunctionTableOptions {
  config: BinaryAlertConfig;
  names: ResourceNames;
  zipsDir: string;
  accountId: string;
  queueUrl: string;
  /** Analyzer worker processes (default: CPU count, at least 2; at most the reserved concurrency). */
  workers?: number;
  /** The dispatcher's SQS long poll locally (default 1 s, at most the tfvars value). */
  dispatchWaitSeconds?: number;
}

/** The three functions with Terraform's settings, and how many analyzers run at once. */
export function localFunctions(options: FunctionTableOptions): {
  functions: LocalFunction[];
  analyzerWorkers: number;
} {
  const { config, names, zipsDir } = options;
  const environments = functionEnvironments(config, {
    accountId: options.accountId,
    queueUrl: options.queueUrl,
  });
  const waitSeconds = Math.min(
    config.lambda_dispatch_wait_time_seconds,
    options.dispatchWaitSeconds ?? 1,
  );
  const analyzerWorkers = Math.max(
    1,
    Math.min(
      options.workers ?? Math.max(2, cpus().length),
      config.lambda_analyze_concurrency_limit > 0
        ? config.lambda_analyze_concurrency_limit
        : Infinity,
    ),
  );
  // Backpressure: a local dispatcher run starts at most two invocations per analyzer worker, and
  // the next run waits for a free worker, so received messages never wait in the local invoke
  // queue until their visibility timeout expires (which would count receives toward the DLQ).
  const dispatchLimit = Math.max(1, Math.min(config.lambda_dispatch_limit, analyzerWorkers * 2));
  const functions: LocalFunction[] = [
    {
      name: names.analyzerFunction,
      zipPath: join(zipsDir, 'analyzer.zip'),
      handler: LAMBDA_HANDLER,
      timeoutSeconds: config.lambda_analyze_timeout_sec,
      memoryMb: config.lambda_analyze_memory_mb,
      // Rules releases (deploy-rules --local, hot reload) are picked up within a second.
      environment: { ...environments.analyzer, RULES_REFRESH_SECONDS: '1' },
      concurrency: analyzerWorkers,
    },
    {
      name: names.dispatcherFunction,
      zipPath: join(zipsDir, 'dispatcher.zip'),
      handler: LAMBDA_HANDLER,
      timeoutSeconds: config.lambda_dispatch_timeout_sec,
      memoryMb: config.lambda_dispatch_memory_mb,
      environment: {
        ...environments.dispatcher,
        SQS_WAIT_TIME_SECONDS: String(waitSeconds),
        MAX_INVOCATIONS: String(dispatchLimit),
      },
      concurrency: 2,
    },
    {
      name: names.batcherFunction,
      zipPath: join(zipsDir, 'batcher.zip'),
      handler: LAMBDA_HANDLER,
      timeoutSeconds: config.lambda_batch_timeout_sec,
      memoryMb: config.lambda_batch_memory_mb,
      environment: environments.batcher,
      concurrency: 2,
    },
  ];
  return { functions, analyzerWorkers };
}

export interface FunctionRunner {
  runtime: LambdaRuntime;
  /** Error log lines of the functions plus failed invocations reported through `reportFailure`. */
  errors: () => number;
  /** Prints a failed invocation and counts it; successful outcomes are ignored. */
  reportFailure: (functionName: string, outcome: InvokeOutcome) => void;
}

export interface FunctionRunnerOptions {
  functions: LocalFunction[];
  namePrefix: string;
  dataDir: string;
  region: string;
  accountId: string;
  /** AWS_ENDPOINT_URL, credentials: what every worker gets to reach the local stack. */
  baseEnvironment: Record<string, string>;
  print: (text: string) => void;
}

/**
 * Runs the functions in worker processes: every log line goes to `<dataDir>/logs/<fn>.log`, and
 * warnings and errors also to the console.
 */
export async function startFunctionRunner(options: FunctionRunnerOptions): Promise<FunctionRunner> {
  const { dataDir, print } = options;
  const logsDir = join(dataDir, 'logs');
  await mkdir(logsDir, { recursive: true });
  let errors = 0;
  const shortName = (fn: string): string => fn.replace(`${options.namePrefix}_binaryalert_`, '');
  const runtime = new LambdaRuntime({
    dataDir: join(dataDir, 'lambda'),
    region: options.region,
    accountId: options.accountId,
    baseEnvironment: options.baseEnvironment,
    onLog: (fn, line) => {
      void appendFile(join(logsDir, `${shortName(fn)}.log`), `${line}\n`).catch(() => undefined);
      try {
        const entry = JSON.parse(line) as { level?: string; message?: string; object?: string };
        if (entry.level === 'error' || entry.level === 'warn') {
          if (entry.level === 'error') errors += 1;
          print(
            `[${shortName(fn)}] ${entry.level}: ${entry.message ?? ''}${entry.object ? ` (${entry.object})` : ''}`,
          );
        }
      } catch {
        // not a JSON log line: kept in the log file only
      }
    },
  });
  await runtime.init(options.functions);
  return {
    runtime,
    errors: () => errors,
    reportFailure: (fn, outcome) => {
      if (outcome.ok) return;
      errors += 1;
      print(
        `[${shortName(fn)}] invocation failed: ${outcome.error.errorType}: ${outcome.error.errorMessage}`,
      );
    },
  };
}
