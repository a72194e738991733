import os from 'node:os';
import path from 'node:path';
import { CloudWatchClient } from '@aws-sdk/client-cloudwatch';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { S3Client } from '@aws-sdk/client-s3';
import { SNSClient } from '@aws-sdk/client-sns';
import { SQSClient } from '@aws-sdk/client-sqs';
import { createLogger, parseEnv, type Logger } from '@binaryalert/core';
import { loadRules } from '@binaryalert/yara';
import { z } from 'zod';
import type { AnalyzerDeps, AnalyzerSettings } from './analyze';

const emptyAsUndefined = (value: unknown) => (value === '' ? undefined : value);

/** The analyzer's environment, as Terraform and the local stack set it. */
export const AnalyzerEnvSchema = z.object({
  YARA_MATCHES_DYNAMO_TABLE_NAME: z.string().min(1),
  VERDICTS_DYNAMO_TABLE_NAME: z.string().min(1),
  VERDICT_TTL_DAYS: z.coerce.number().int().nonnegative().default(0),
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
  ANALYSIS_CONCURRENCY: z.preprocess(
    emptyAsUndefined,
    z.coerce.number().int().positive().optional(),
  ),
  COMPILED_RULES_PATH: z.preprocess(emptyAsUndefined, z.string().optional()),
});

export interface AnalyzerConfig {
  settings: AnalyzerSettings;
  rulesPath: string;
}

/**
 * Reads the analyzer's configuration from the environment; throws ConfigError naming the variable.
 * The compiled rules default to `compiled_yara_rules.bin` beside the handler (in the Lambda zip,
 * beside index.js).
 */
export function loadAnalyzerConfig(
  env: NodeJS.ProcessEnv = process.env,
  handlerDir: string = __dirname,
): AnalyzerConfig {
  const parsed = parseEnv(AnalyzerEnvSchema, env);
  return {
    settings: {
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
      concurrency: parsed.ANALYSIS_CONCURRENCY ?? os.availableParallelism(),
    },
    rulesPath: parsed.COMPILED_RULES_PATH ?? path.join(handlerDir, 'compiled_yara_rules.bin'),
  };
}

/** Builds the SDK clients (region and endpoint from the standard AWS variables) and loads the rules. */
export async function createDeps(
  rulesPath: string,
  log: Logger = createLogger('analyzer'),
): Promise<AnalyzerDeps> {
  const rules = await loadRules(rulesPath);
  log.info('loaded compiled YARA rules', { rulesPath, ruleCount: rules.ruleCount });
  return {
    s3: new S3Client({}),
    dynamo: new DynamoDBClient({}),
    sns: new SNSClient({}),
    sqs: new SQSClient({}),
    cloudwatch: new CloudWatchClient({}),
    rules,
    log,
  };
}
