import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { LambdaClient } from '@aws-sdk/client-lambda';
import { SQSClient } from '@aws-sdk/client-sqs';
import { createLogger, parseEnv } from '@binaryalert/core';

import type { DispatchConfig } from './dispatch';
import { EnvSchema } from './env';
import { DispatchSlots } from './slots';

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

const log = createLogger('dispatcher');

export const deps = {
  sqs: new SQSClient({}),
  // One attempt: an Invoke the SDK retried after a timeout could queue the same messages twice.
  lambda: new LambdaClient({ maxAttempts: 1 }),
  slots: new DispatchSlots(
    new DynamoDBClient({}),
    {
      table: env.DISPATCH_SLOTS_TABLE,
      capacity: env.ANALYZER_CONCURRENCY_LIMIT,
      leaseSeconds: env.DISPATCH_SLOT_LEASE_SECONDS,
    },
    log,
  ),
  log,
};
