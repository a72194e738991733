import os from 'node:os';
import path from 'node:path';
import { COMPILED_RULES_FILE, functionService, manifestPathFor, parseEnv } from '@binaryalert/core';
import { z } from 'zod';
import type { AnalyzerSettings } from './analyze';
import { IN_MEMORY_BYTES } from './download';
import type { RulesBucketSettings } from './rules-release';

const emptyAsUndefined = (value: unknown) => (value === '' ? undefined : value);

/** The analyzer's environment, as Terraform and the local stack set it. */
export const EnvSchema = z.object({
  YARA_MATCHES_DYNAMO_TABLE_NAME: z.string().min(1),
  VERDICTS_DYNAMO_TABLE_NAME: z.string().min(1),
  VERDICT_TTL_DAYS: z.coerce.number().int().nonnegative().default(0),
  /** Empty: no rules bucket, the baked-in rules only. */
  RULES_BUCKET_NAME: z.string().default(''),
  RULES_REFRESH_SECONDS: z.coerce.number().nonnegative().default(60),
  YARA_ALERTS_SNS_TOPIC_ARN: z.string().min(1),
  NEGATIVE_ALERTS_SNS_TOPIC_ARN: z.string().default(''),
  SQS_QUEUE_URL: z.string().min(1),
  MAX_FILE_SIZE_MB: z.coerce.number().positive(),
  SCAN_TIMEOUT_SECONDS: z.coerce.number().int().positive(),
  ARCHIVE_PASSWORDS: z
    .string()
    .transform((text, ctx) => {
      try {
        return JSON.parse(text) as unknown;
      } catch {
        ctx.addIssue({ code: 'custom', message: 'must be a JSON array of strings' });
        return z.NEVER;
      }
    })
    .pipe(z.array(z.string())),
  ARCHIVE_MAX_DEPTH: z.coerce.number().int().min(0),
  ARCHIVE_MAX_MEMBERS: z.coerce.number().int().positive(),
  ARCHIVE_MAX_EXPANDED_MB: z.coerce.number().positive(),
  ARCHIVE_MAX_RATIO: z.coerce.number().min(0),
  CONTENT_PREFILTER: z.enum(['true', 'false']).default('true'),
  ANALYSIS_CONCURRENCY: z.preprocess(
    emptyAsUndefined,
    z.coerce.number().int().positive().optional(),
  ),
  COMPILED_RULES_PATH: z.preprocess(emptyAsUndefined, z.string().optional()),
  // The dispatcher's slots table (empty: none, e.g. with the SQS event source mapping).
  DISPATCH_SLOTS_TABLE: z.preprocess(emptyAsUndefined, z.string().optional()),
  // Set by Lambda: the function's memory in MB (bounds the objects read into memory).
  AWS_LAMBDA_FUNCTION_MEMORY_SIZE: z.preprocess(
    emptyAsUndefined,
    z.coerce.number().int().positive().optional(),
  ),
});

/**
 * The size below which an object is read into memory: IN_MEMORY_BYTES, less on a small function,
 * so the objects held at once (one per scan slot and one downloading ahead) stay near a tenth of
 * its memory.
 */
export function inMemoryBytes(memoryMb: number | undefined): number {
  if (memoryMb === undefined) return IN_MEMORY_BYTES;
  return Math.min(IN_MEMORY_BYTES, Math.floor((memoryMb * 1024 * 1024) / 32));
}

export interface AnalyzerConfig {
  settings: AnalyzerSettings;
  /** The baked-in release: compiled rules and the manifest beside them. */
  rulesPath: string;
  manifestPath: string;
  rulesBucket?: RulesBucketSettings;
  /** The `service` of its logs and metrics (the function's name; see functionService). */
  service: string | undefined;
}

/**
 * Reads the analyzer's configuration from the environment; throws ConfigError naming the variable.
 * The compiled rules default to `compiled_yara_rules.bin` beside the handler (in the Lambda zip,
 * beside index.js).
 */
export function loadConfig(
  env: NodeJS.ProcessEnv = process.env,
  handlerDir: string = __dirname,
): AnalyzerConfig {
  const parsed = parseEnv(EnvSchema, env);
  const settings: AnalyzerSettings = {
    matchesTable: parsed.YARA_MATCHES_DYNAMO_TABLE_NAME,
    verdictTable: parsed.VERDICTS_DYNAMO_TABLE_NAME,
    verdictTtlDays: parsed.VERDICT_TTL_DAYS,
    alertsTopicArn: parsed.YARA_ALERTS_SNS_TOPIC_ARN,
    negativeAlertsTopicArn: parsed.NEGATIVE_ALERTS_SNS_TOPIC_ARN,
    queueUrl: parsed.SQS_QUEUE_URL,
    maxFileBytes: Math.floor(parsed.MAX_FILE_SIZE_MB * 1024 * 1024),
    scanTimeoutSeconds: parsed.SCAN_TIMEOUT_SECONDS,
    archives: {
      passwords: parsed.ARCHIVE_PASSWORDS,
      maxDepth: parsed.ARCHIVE_MAX_DEPTH,
      maxMembers: parsed.ARCHIVE_MAX_MEMBERS,
      maxExpandedBytes: Math.floor(parsed.ARCHIVE_MAX_EXPANDED_MB * 1024 * 1024),
      maxRatio: parsed.ARCHIVE_MAX_RATIO,
    },
    contentSignatures: parsed.CONTENT_PREFILTER === 'true',
    concurrency: parsed.ANALYSIS_CONCURRENCY ?? os.availableParallelism(),
    inMemoryBytes: inMemoryBytes(parsed.AWS_LAMBDA_FUNCTION_MEMORY_SIZE),
    ...(parsed.DISPATCH_SLOTS_TABLE ? { dispatchSlotsTable: parsed.DISPATCH_SLOTS_TABLE } : {}),
  };
  const rulesPath = parsed.COMPILED_RULES_PATH ?? path.join(handlerDir, COMPILED_RULES_FILE);
  return {
    settings,
    service: functionService(env),
    rulesPath,
    manifestPath: manifestPathFor(rulesPath),
    ...(parsed.RULES_BUCKET_NAME
      ? {
          rulesBucket: {
            bucket: parsed.RULES_BUCKET_NAME,
            refreshSeconds: parsed.RULES_REFRESH_SECONDS,
          },
        }
      : {}),
  };
}
