import { CloudWatchClient } from '@aws-sdk/client-cloudwatch';
import { LambdaClient } from '@aws-sdk/client-lambda';
import { S3Client } from '@aws-sdk/client-s3';
import { SQSClient } from '@aws-sdk/client-sqs';
import { createLogger, parseEnv } from '@binaryalert/core';

import type { BatcherConfig, BatcherDeps } from './enqueue';
import { EnvSchema } from './env';

export { EnvSchema } from './env';

// Built once per container: a missing or malformed variable fails the cold start naming it.
const env = parseEnv(EnvSchema);

export const config: BatcherConfig = {
  bucket: env.S3_BUCKET_NAME,
  queueUrl: env.SQS_QUEUE_URL,
  objectsPerMessage: env.OBJECTS_PER_MESSAGE,
  functionName: env.BATCH_LAMBDA_NAME,
  qualifier: env.BATCH_LAMBDA_QUALIFIER,
};

export const deps: BatcherDeps = {
  // Path-style: the binaries bucket's name has dots, for which S3 over HTTPS uses path-style anyway;
  // forcing it keeps a plain-HTTP endpoint (AWS_ENDPOINT_URL of the local stack) working too.
  s3: new S3Client({ forcePathStyle: true }),
  sqs: new SQSClient({}),
  lambda: new LambdaClient({}),
  cloudwatch: new CloudWatchClient({}),
  log: createLogger('batcher'),
};
