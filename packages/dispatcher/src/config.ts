import { functionService, parseEnv } from '@binaryalert/core';
import { z } from 'zod';
import type { DispatchConfig } from './dispatch';
import type { SlotsConfig } from './slots';

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

export interface DispatcherConfig extends DispatchConfig {
  slots: SlotsConfig;
  /** The `service` of its logs (the function's name; see functionService). */
  service: string | undefined;
}

/** Reads the dispatcher's configuration from the environment; throws ConfigError naming the variable. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): DispatcherConfig {
  const parsed = parseEnv(EnvSchema, env);
  return {
    queueUrl: parsed.SQS_QUEUE_URL,
    analyzerFunctionName: parsed.ANALYZER_FUNCTION_NAME,
    analyzerQualifier: parsed.ANALYZER_FUNCTION_QUALIFIER,
    maxInvocations: parsed.MAX_INVOCATIONS,
    waitTimeSeconds: parsed.SQS_WAIT_TIME_SECONDS,
    receiveConcurrency: parsed.RECEIVE_CONCURRENCY,
    service: functionService(env),
    slots: {
      table: parsed.DISPATCH_SLOTS_TABLE,
      capacity: parsed.ANALYZER_CONCURRENCY_LIMIT,
      leaseSeconds: parsed.DISPATCH_SLOT_LEASE_SECONDS,
    },
  };
}
