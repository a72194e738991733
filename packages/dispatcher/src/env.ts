import { z } from 'zod';

/** The dispatcher's environment, exactly as Terraform (and the local stack) sets it. */
export const EnvSchema = z.object({
  SQS_QUEUE_URL: z.url(),
  ANALYZER_FUNCTION_NAME: z.string().min(1),
  ANALYZER_FUNCTION_QUALIFIER: z.string().min(1),
  MAX_INVOCATIONS: z.coerce.number().int().positive(),
  SQS_WAIT_TIME_SECONDS: z.coerce.number().int().min(0).max(20),
  RECEIVE_CONCURRENCY: z.coerce.number().int().positive().max(100),
  DISPATCH_SLOTS_TABLE: z.string().min(1),
  ANALYZER_CONCURRENCY_LIMIT: z.coerce.number().int().positive(),
  DISPATCH_SLOT_LEASE_SECONDS: z.coerce.number().int().positive(),
});

export type DispatcherEnv = z.infer<typeof EnvSchema>;
