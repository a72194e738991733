import { z } from 'zod';

/** The batcher's environment, exactly as Terraform (and the local stack) sets it. */
export const EnvSchema = z.object({
  BATCH_LAMBDA_NAME: z.string().min(1),
  BATCH_LAMBDA_QUALIFIER: z.string().min(1),
  OBJECTS_PER_MESSAGE: z.coerce.number().int().min(1).max(100),
  S3_BUCKET_NAME: z.string().min(1),
  SQS_QUEUE_URL: z.url(),
});

export type BatcherEnv = z.infer<typeof EnvSchema>;
