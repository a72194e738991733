import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { S3Client } from '@aws-sdk/client-s3';
import { SNSClient } from '@aws-sdk/client-sns';
import { SQSClient } from '@aws-sdk/client-sqs';
import { createMetrics, type Logger } from '@binaryalert/core';
import type { AnalyzerDeps } from './analyze';
import type { AnalyzerConfig } from './config';
import { fixedRules, loadBakedRules, rulesFromBucket } from './rules-release';

/**
 * The analyzer's DynamoDB client settings. Binary attributes (content signatures, 0.5-64 KiB
 * each, 50 to a delta re-scan's batch read) are decoded with Buffer's base64 decoder: the SDK's
 * default checks each string against a regular expression first, which cost more than the
 * decoding; what DynamoDB sends is its own encoding.
 */
export const DYNAMO_CLIENT_OPTIONS = {
  base64Decoder: (text: string): Uint8Array => {
    const bytes = Buffer.from(text, 'base64');
    return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  },
} as const;

/**
 * Builds the SDK clients (region and endpoint from the standard AWS variables) and loads the
 * baked-in rules; with a rules bucket, the newest release there replaces them at the first scan.
 */
export async function createDeps(config: AnalyzerConfig, log: Logger): Promise<AnalyzerDeps> {
  const baked = await loadBakedRules(config.rulesPath, config.manifestPath);
  log.info('loaded the baked-in YARA rules', {
    rulesPath: config.rulesPath,
    ruleCount: baked.compiled.ruleCount,
  });
  const s3 = new S3Client({});
  const rules = config.rulesBucket
    ? rulesFromBucket(s3, { ...config.rulesBucket, tempRoot: config.settings.tempRoot }, baked, log)
    : fixedRules(baked);
  return {
    s3,
    dynamo: new DynamoDBClient(DYNAMO_CLIENT_OPTIONS),
    sns: new SNSClient({}),
    sqs: new SQSClient({}),
    metrics: createMetrics(config.service, log),
    rules,
    log,
  };
}
