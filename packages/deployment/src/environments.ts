import type { BinaryAlertConfig } from './tfvars';
import { PRODUCTION_ALIAS, resourceNames } from './names';
import { dispatchSlotLeaseSeconds } from './queueing';

/** Where the deployed (or emulated) resources live; topic ARNs default to the account's. */
export interface DeploymentIds {
  accountId: string;
  queueUrl: string;
  partition?: string;
  matchesTopicArn?: string;
  negativeMatchesTopicArn?: string;
}

export type FunctionName = 'analyzer' | 'dispatcher' | 'batcher';

/**
 * The environment of each Lambda function, exactly as Terraform sets it (terraform/lambda.tf);
 * the local stack runs the handlers with the same maps.
 */
export function functionEnvironments(
  config: BinaryAlertConfig,
  ids: DeploymentIds,
): Record<FunctionName, Record<string, string>> {
  const names = resourceNames(config);
  const topicArn = (topic: string) =>
    `arn:${ids.partition ?? 'aws'}:sns:${config.aws_region}:${ids.accountId}:${topic}`;
  const negativeTopic = config.enable_negative_match_alerts
    ? (ids.negativeMatchesTopicArn ?? topicArn(names.negativeMatchesTopic))
    : '';
  return {
    analyzer: {
      YARA_MATCHES_DYNAMO_TABLE_NAME: names.table,
      VERDICTS_DYNAMO_TABLE_NAME: names.verdictTable,
      VERDICT_TTL_DAYS: String(config.verdict_ttl_days),
      RULES_BUCKET_NAME: names.rulesBucket,
      RULES_REFRESH_SECONDS: String(config.rules_refresh_seconds),
      YARA_ALERTS_SNS_TOPIC_ARN: ids.matchesTopicArn ?? topicArn(names.matchesTopic),
      NEGATIVE_ALERTS_SNS_TOPIC_ARN: negativeTopic,
      SQS_QUEUE_URL: ids.queueUrl,
      MAX_FILE_SIZE_MB: String(config.max_file_size_mb),
      SCAN_TIMEOUT_SECONDS: String(config.scan_timeout_seconds),
      ARCHIVE_PASSWORDS: JSON.stringify(config.archive_passwords),
      ARCHIVE_MAX_DEPTH: String(config.archive_max_depth),
      ARCHIVE_MAX_MEMBERS: String(config.archive_max_members),
      ARCHIVE_MAX_EXPANDED_MB: String(config.archive_max_expanded_mb),
      ARCHIVE_MAX_RATIO: String(config.archive_max_ratio),
      DISPATCH_SLOTS_TABLE: names.dispatchSlotsTable,
    },
    dispatcher: {
      SQS_QUEUE_URL: ids.queueUrl,
      ANALYZER_FUNCTION_NAME: names.analyzerFunction,
      ANALYZER_FUNCTION_QUALIFIER: PRODUCTION_ALIAS,
      MAX_INVOCATIONS: String(config.lambda_dispatch_limit),
      SQS_WAIT_TIME_SECONDS: String(config.lambda_dispatch_wait_time_seconds),
      RECEIVE_CONCURRENCY: String(config.lambda_dispatch_receive_concurrency),
      DISPATCH_SLOTS_TABLE: names.dispatchSlotsTable,
      ANALYZER_CONCURRENCY_LIMIT: String(config.lambda_analyze_concurrency_limit),
      DISPATCH_SLOT_LEASE_SECONDS: String(dispatchSlotLeaseSeconds(config)),
    },
    batcher: {
      BATCH_LAMBDA_NAME: names.batcherFunction,
      BATCH_LAMBDA_QUALIFIER: PRODUCTION_ALIAS,
      OBJECTS_PER_MESSAGE: String(config.objects_per_retro_message),
      S3_BUCKET_NAME: names.bucket,
      SQS_QUEUE_URL: ids.queueUrl,
    },
  };
}
