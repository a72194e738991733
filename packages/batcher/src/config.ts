import { functionService, parseEnv } from '@binaryalert/core';
import { z } from 'zod';
import type { BatcherConfig } from './enqueue';

/** The batcher's environment, exactly as Terraform (and the local stack) sets it. */
export const EnvSchema = z.object({
  BATCH_LAMBDA_NAME: z.string().min(1),
  BATCH_LAMBDA_QUALIFIER: z.string().min(1),
  OBJECTS_PER_MESSAGE: z.coerce.number().int().min(1).max(100),
  S3_BUCKET_NAME: z.string().min(1),
  SQS_QUEUE_URL: z.url(),
});

/** Reads the batcher's configuration from the environment; throws ConfigError naming the variable. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): BatcherConfig {
  const parsed = parseEnv(EnvSchema, env);
  return {
    bucket: parsed.S3_BUCKET_NAME,
    queueUrl: parsed.SQS_QUEUE_URL,
    objectsPerMessage: parsed.OBJECTS_PER_MESSAGE,
    functionName: parsed.BATCH_LAMBDA_NAME,
    qualifier: parsed.BATCH_LAMBDA_QUALIFIER,
    service: functionService(env),
  };
}
