import { LambdaClient } from '@aws-sdk/client-lambda';
import { SQSClient } from '@aws-sdk/client-sqs';
import { createLogger, parseEnv } from '@binaryalert/core';

import type { DispatchConfig } from './dispatch';
import { EnvSchema } from './env';

export { EnvSchema } from './env';

// Built once per container: a missing or malformed variable fails the cold start naming it.
const env = parseEnv(EnvSchema);

export const config: DispatchConfig = {
  queueUrl: env.SQS_QUEUE_URL,
  analyzerFunctionName: env.ANALYZER_FUNCTION_NAME,
  analyzerQualifier: env.ANALYZER_FUNCTION_QUALIFIER,
  maxInvocations: env.MAX_INVOCATIONS,
  waitTimeSeconds: env.SQS_WAIT_TIME_SECONDS,
  receiveConcurrency: env.RECEIVE_CONCURRENCY,
};

export const deps = {
  sqs: new SQSClient({}),
  lambda: new LambdaClient({}),
  log: createLogger('dispatcher'),
};
