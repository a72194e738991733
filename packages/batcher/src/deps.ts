import { CloudWatchClient } from '@aws-sdk/client-cloudwatch';
import { LambdaClient } from '@aws-sdk/client-lambda';
import { S3Client } from '@aws-sdk/client-s3';
import { SQSClient } from '@aws-sdk/client-sqs';
import { createLogger } from '@binaryalert/core';
import type { BatcherDeps } from './enqueue';

/** Builds the SDK clients (region and endpoint from the standard AWS variables) once per container. */
export function createDeps(): BatcherDeps {
  return {
    s3: new S3Client({}),
    sqs: new SQSClient({}),
    lambda: new LambdaClient({}),
    cloudwatch: new CloudWatchClient({}),
    log: createLogger('batcher'),
  };
}
