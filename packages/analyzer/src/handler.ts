import { createLogger } from '@binaryalert/core';
import {
  analyzerVersion,
  handleInvocation,
  type AnalysisResults,
  type SqsBatchResponse,
} from './analyze';
import { createDeps, loadAnalyzerConfig } from './deps';

// Once per container: a bad environment fails the cold start; rules load once and are reused.
const log = createLogger('analyzer');
const config = loadAnalyzerConfig();
const deps = createDeps(config.rulesPath, log);
deps.catch(() => undefined); // reported by the first invocation that awaits it

/** Lambda entry point. */
export async function handler(
  event: unknown,
  context: { functionVersion?: string },
): Promise<AnalysisResults | SqsBatchResponse> {
  return handleInvocation(
    await deps,
    config.settings,
    event,
    analyzerVersion(context.functionVersion),
  );
}
