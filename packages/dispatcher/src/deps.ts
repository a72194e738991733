import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { LambdaClient } from '@aws-sdk/client-lambda';
import { SQSClient } from '@aws-sdk/client-sqs';
import { createLogger } from '@binaryalert/core';
import type { DispatcherConfig } from './config';
import type { DispatchDeps } from './dispatch';
import { DispatchSlots } from './slots';

/** Builds the SDK clients (region and endpoint from the standard AWS variables) once per container. */
export function createDeps(config: DispatcherConfig): DispatchDeps {
  const log = createLogger(config.service);
  return {
    sqs: new SQSClient({}),
    // One attempt: an Invoke the SDK retried after a timeout could queue the same messages twice.
    lambda: new LambdaClient({ maxAttempts: 1 }),
    slots: new DispatchSlots(new DynamoDBClient({}), config.slots, log),
    log,
  };
}
