import { LambdaClient } from '@aws-sdk/client-lambda';
import { S3Client } from '@aws-sdk/client-s3';
import { SQSClient } from '@aws-sdk/client-sqs';
import { createLogger, createMetrics } from '@binaryalert/core';
import type { BatcherConfig, BatcherDeps } from './enqueue';

/** Builds the SDK clients (region and endpoint from the standard AWS variables) once per container. */
export function createDeps(config: BatcherConfig): BatcherDeps {
  const log = createLogger(config.service);
  return {
    s3: new S3Client({}),
    sqs: new SQSClient({}),
    lambda: new LambdaClient({}),
    metrics: createMetrics(config.service, log),
    log,
  };
}
