import type { Context } from 'aws-lambda';
import { createLogger } from '@binaryalert/core';
import { analyzerVersion } from './analyze';
import { handleInvocation, type AnalysisResults, type SqsBatchResponse } from './invocation';
import { loadConfig } from './config';
import { createDeps } from './deps';
import { collectGarbageInOnePause } from './gc';

// Once per container: a bad environment fails the cold start; rules load once and are reused.
const config = loadConfig();
const log = createLogger(config.service);
// Scans and the downloads' file writes share libuv's thread pool (4 threads by default): size it
// so concurrent scans never starve the writes. libuv reads it when the pool first starts, below.
process.env.UV_THREADPOOL_SIZE ??= String(config.settings.concurrency + 4);
collectGarbageInOnePause();
const deps = createDeps(config, log);
deps.catch(() => undefined); // reported by the first invocation that awaits it

/** Lambda entry point. */
export async function handler(
  event: unknown,
  // Tests may pass only part of Lambda's context.
  context: Partial<Context>,
): Promise<AnalysisResults | SqsBatchResponse> {
  // Every log line names its invocation (function_request_id): which invocation decided and sent
  // an alert is then in the logs, as Powertools' injectLambdaContext would add it.
  log.addContext(context as Context);
  return handleInvocation(
    await deps,
    config.settings,
    event,
    analyzerVersion(context.functionVersion),
    context.getRemainingTimeInMillis?.bind(context),
  );
}
