import type { BinaryAlertConfig } from './tfvars';

/** Alias every worker is invoked through (Terraform publishes a version per change). */
export const PRODUCTION_ALIAS = 'Production';

export interface ResourceNames {
  bucket: string;
  logBucket: string;
  queue: string;
  deadLetterQueue: string;
  table: string;
  /** The verdict ledger: one item per S3 object. */
  verdictTable: string;
  /** Where `deploy-rules` uploads rules releases. */
  rulesBucket: string;
  /** The dispatcher's slots: one item per analyzer invocation that may be in flight. */
  dispatchSlotsTable: string;
  matchesTopic: string;
  negativeMatchesTopic: string;
  alarmTopic: string;
  analyzerFunction: string;
  dispatcherFunction: string;
  batcherFunction: string;
}

function binariesBucketName(prefix: string, region: string): string {
  return `${prefix.replaceAll('_', '.')}.binaryalert-binaries.${region}`;
}

/** The names Terraform gives each resource (terraform/locals.tf builds the same). */
export function resourceNames(config: BinaryAlertConfig): ResourceNames {
  const base = `${config.name_prefix}_binaryalert`;
  const dotted = config.name_prefix.replaceAll('_', '.');
  return {
    bucket: binariesBucketName(config.name_prefix, config.aws_region),
    logBucket: config.s3_log_bucket || `${dotted}.binaryalert-s3-access-logs.${config.aws_region}`,
    queue: `${base}_analyzer_queue`,
    deadLetterQueue: `${base}_analyzer_dead_letter_queue`,
    table: `${base}_matches`,
    verdictTable: `${base}_verdicts`,
    rulesBucket: `${dotted}.binaryalert-rules.${config.aws_region}`,
    dispatchSlotsTable: `${base}_dispatch_slots`,
    matchesTopic: `${base}_yara_match_alerts`,
    negativeMatchesTopic: `${base}_no_yara_match_alerts`,
    alarmTopic: `${base}_metric_alarms`,
    analyzerFunction: `${base}_analyzer`,
    dispatcherFunction: `${base}_dispatcher`,
    batcherFunction: `${base}_batcher`,
  };
}
