import { mkdir } from 'node:fs/promises';
import { cpus } from 'node:os';
import { join } from 'node:path';
import {
  FUNCTIONS,
  HANDLER,
  functionEnvironments,
  type FunctionName,
  type BinaryAlertConfig,
  type ResourceNames,
} from '@binaryalert/deployment';

import {
  LambdaRuntime,
  type InvokeOutcome,
  type LambdaRuntimeOptions,
  type LocalFunction,
} from './lambda';
import { LineLog } from './line-log';
import type { MetricStore } from './metrics';

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

/** The manifest's functions with Terraform's settings, and how many analyzers run at once. */
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
  // Local departures from Terraform's settings, for a laptop's few cores.
  const local: Record<
    FunctionName,
    Pick<LocalFunction, 'concurrency'> & { env?: Record<string, string> }
  > = {
    analyzer: {
      concurrency: analyzerWorkers,
      // Rules releases (deploy-rules --local, hot reload) are picked up within a second.
      env: { RULES_REFRESH_SECONDS: '1' },
    },
    dispatcher: {
      concurrency: 2,
      env: { SQS_WAIT_TIME_SECONDS: String(waitSeconds), MAX_INVOCATIONS: String(dispatchLimit) },
    },
    batcher: { concurrency: 2 },
  };
  const functions = FUNCTIONS.map((fn): LocalFunction => ({
    name: fn.functionName(names),
    zipPath: join(zipsDir, `${fn.name}.zip`),
    handler: HANDLER,
    timeoutSeconds: Number(config[fn.timeoutSecSetting]),
    memoryMb: Number(config[fn.memoryMbSetting]),
    environment: { ...environments[fn.name], ...local[fn.name].env },
    concurrency: local[fn.name].concurrency,
  }));
  return { functions, analyzerWorkers };
}

export interface FunctionRunner {
  runtime: LambdaRuntime;
  /** Writes out the functions' buffered log lines and closes their files (after runtime.stop). */
  closeLogs: () => Promise<void>;
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
  /** Receives the metrics of the functions' embedded-metric-format log lines. */
  metrics: MetricStore;
  /** A worker died in the middle of an invocation (see LambdaRuntimeOptions.onWorkerDeath). */
  onWorkerDeath?: (functionName: string, event: unknown) => void;
  /** An invocation timed out; its worker is killed next (LambdaRuntimeOptions.onTimeout). */
  onTimeout?: LambdaRuntimeOptions['onTimeout'];
}

/** A function's name without the deployment's prefix (`analyzer`), as the console shows it. */
function shortFunctionName(namePrefix: string, functionName: string): string {
  return functionName.replace(`${namePrefix}_binaryalert_`, '');
}

/** Where the local stack writes the log lines of function `functionName`. */
export function functionLogPath(dataDir: string, namePrefix: string, functionName: string): string {
  return join(dataDir, 'logs', `${shortFunctionName(namePrefix, functionName)}.log`);
}

/**
 * Runs the functions in worker processes: every log line goes to `<dataDir>/logs/<fn>.log`,
 * warnings and errors also to the console, and embedded metrics to `options.metrics`.
 */
export async function startFunctionRunner(options: FunctionRunnerOptions): Promise<FunctionRunner> {
  const { dataDir, print } = options;
  await mkdir(join(dataDir, 'logs'), { recursive: true });
  let errors = 0;
  const unwritableLogs = new Set<string>();
  const logs = new LineLog((path, error) => {
    if (unwritableLogs.has(path)) return; // once per file, not once per line
    unwritableLogs.add(path);
    print(
      `[local] cannot write ${path} (${error.message}): lines that cannot be written are dropped`,
    );
  });
  const shortName = (fn: string): string => shortFunctionName(options.namePrefix, fn);
  const runtime = new LambdaRuntime({
    dataDir: join(dataDir, 'lambda'),
    region: options.region,
    accountId: options.accountId,
    baseEnvironment: options.baseEnvironment,
    ...(options.onWorkerDeath ? { onWorkerDeath: options.onWorkerDeath } : {}),
    ...(options.onTimeout ? { onTimeout: options.onTimeout } : {}),
    onLog: (fn, line) => {
      logs.append(functionLogPath(dataDir, options.namePrefix, fn), line);
      // As in CloudWatch Logs: an embedded-metric-format line is also the function's metrics.
      if (options.metrics.addLogLine(line)) return;
      try {
        const entry = JSON.parse(line) as { level?: string; message?: string; object?: string };
        const level = String(entry.level ?? '').toLowerCase();
        if (level === 'error' || level === 'critical' || level === 'warn') {
          if (level !== 'warn') errors += 1;
          print(
            `[${shortName(fn)}] ${level}: ${entry.message ?? ''}${entry.object ? ` (${entry.object})` : ''}`,
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
    closeLogs: () => logs.close(),
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
