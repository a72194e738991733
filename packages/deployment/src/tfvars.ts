import { readFile } from 'node:fs/promises';
import * as path from 'node:path';
import { ConfigError } from '@binaryalert/core';
import { z } from 'zod';
import { resourceNames } from './names';
import { DEFAULT_TFVARS_PATH } from './paths';

/** What is wrong with one setting: `message` reads after the setting's name. */
export interface SettingProblem {
  setting: string;
  message: string;
}

/** terraform.tfvars is missing, is not valid HCL, or holds invalid settings (`problems`). */
export class TfvarsError extends ConfigError {
  constructor(
    message: string,
    /** One entry per invalid setting; empty when the file itself could not be read or parsed. */
    readonly problems: readonly SettingProblem[] = [],
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** One problem as a line of text: `terraform.tfvars: max_file_size_mb must be ...`. */
export function describeProblem(problem: SettingProblem, source = 'terraform.tfvars'): string {
  return `${source}: ${problem.setting} ${problem.message}`;
}

// CloudWatch Logs accepts only these retention periods.
const LOG_RETENTION_DAYS = [
  1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288,
  3653,
] as const;

/**
 * The Lambda runtimes offered: every one is known to the AWS provider versions that
 * terraform/versions.tf accepts (nodejs24.x needs 6.19 or later).
 */
export const LAMBDA_RUNTIMES = ['nodejs20.x', 'nodejs22.x', 'nodejs24.x'] as const;

/** What invokes the analyzer: the scheduled dispatcher, or Lambda's SQS event source mapping. */
export const ANALYZER_TRIGGERS = ['dispatcher', 'sqs'] as const;
export type AnalyzerTrigger = (typeof ANALYZER_TRIGGERS)[number];

const REGION = /^[a-z]{2}(-[a-z]+)+-\d+$/;
// Single underscores only: the bucket name replaces them with dots, and S3 forbids "..".
const NAME_PREFIX = /^[a-z][a-z0-9]*(_[a-z0-9]+)*$/;
const EMAIL = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;

interface Setting<T extends z.ZodType = z.ZodType> {
  /** The format an error message asks for. */
  expected: string;
  schema: T;
}

function int(expected: string, min: number, max = Number.MAX_SAFE_INTEGER) {
  return { expected, schema: z.number().int().min(min).max(max) };
}
function bool() {
  return { expected: 'true or false', schema: z.boolean() };
}
function str(expected: string, pattern: RegExp) {
  return { expected, schema: z.string().regex(pattern) };
}
function emails() {
  return {
    expected: 'a list of email addresses, e.g. ["security@example.com"]',
    schema: z.array(z.string().regex(EMAIL)),
  };
}

// Every terraform.tfvars setting with the format an error message asks for.
const SETTINGS = {
  aws_region: str('an AWS region name such as "us-east-1"', REGION),
  name_prefix: str(
    'lowercase letters, digits and single underscores, starting with a letter (e.g. "myorg")',
    NAME_PREFIX,
  ),
  tags: {
    expected: 'a map of strings, e.g. { Application = "BinaryAlert" }',
    schema: z.record(z.string(), z.string()),
  },
  lambda_runtime: {
    expected: `one of ${LAMBDA_RUNTIMES.map((runtime) => `"${runtime}"`).join(', ')}`,
    schema: z.enum(LAMBDA_RUNTIMES),
  },
  analyzer_trigger: {
    expected: '"dispatcher" or "sqs"',
    schema: z.enum(ANALYZER_TRIGGERS),
  },
  lambda_analyze_memory_mb: int('an integer number of MB from 128 to 10240', 128, 10240),
  lambda_analyze_timeout_sec: int('an integer number of seconds from 1 to 900', 1, 900),
  lambda_analyze_ephemeral_storage_mb: int('an integer number of MB from 512 to 10240', 512, 10240),
  // The event source mapping's maximum concurrency allows 2-1000.
  lambda_analyze_concurrency_limit: int('an integer from 2 to 1000', 2, 1000),
  lambda_analyze_reserved_concurrency: int('-1 (no reservation) or a non-negative integer', -1),
  lambda_dispatch_memory_mb: int('an integer number of MB from 128 to 10240', 128, 10240),
  lambda_dispatch_timeout_sec: int('an integer number of seconds from 1 to 900', 1, 900),
  lambda_dispatch_frequency_minutes: int('an integer number of minutes from 1 to 1440', 1, 1440),
  lambda_dispatch_limit: int('a positive integer', 1),
  lambda_dispatch_wait_time_seconds: int('an integer number of seconds from 0 to 20', 0, 20),
  lambda_dispatch_receive_concurrency: int('an integer from 1 to 50', 1, 50),
  lambda_batch_memory_mb: int('an integer number of MB from 128 to 10240', 128, 10240),
  lambda_batch_timeout_sec: int('an integer number of seconds from 1 to 900', 1, 900),
  objects_per_retro_message: int('an integer from 1 to 100', 1, 100),
  lambda_log_retention_days: {
    expected: `one of ${LOG_RETENTION_DAYS.join(', ')}`,
    schema: z.number().refine((value) => (LOG_RETENTION_DAYS as readonly number[]).includes(value)),
  },
  max_file_size_mb: int('a positive integer', 1),
  scan_timeout_seconds: int('a positive integer', 1),
  archive_passwords: {
    expected: 'a list of strings, e.g. ["infected", "malware", "virus"]',
    schema: z.array(z.string().min(1)),
  },
  archive_max_depth: int('an integer from 0 to 32', 0, 32),
  archive_max_members: int('a positive integer', 1),
  archive_max_expanded_mb: int('a positive integer', 1),
  archive_max_ratio: int('0 (off) or a positive integer', 0),
  enable_negative_match_alerts: bool(),
  external_s3_bucket_resources: {
    expected: 'a list of S3 ARNs, e.g. ["arn:aws:s3:::other-bucket/*"]',
    schema: z.array(z.string().regex(/^arn:aws[a-z-]*:s3:::\S+$/)),
  },
  external_kms_key_resources: {
    expected:
      'a list of KMS key ARNs, e.g. ["arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"]',
    schema: z.array(z.string().regex(/^arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key\/[\w-]+$/)),
  },
  sqs_retention_minutes: int('an integer number of minutes from 1 to 20160', 1, 20160),
  max_receives: int('an integer from 1 to 1000', 1, 1000),
  s3_log_bucket: str(
    '"" or an S3 bucket name (3-63 lowercase letters, digits, dots, hyphens)',
    /^$|^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/,
  ),
  s3_log_prefix: str('a key prefix (no leading "/"), e.g. "s3-access-logs/"', /^(?!\/)\S*$/),
  s3_log_expiration_days: int('a positive integer', 1),
  s3_noncurrent_version_expiration_days: int('a positive integer', 1),
  force_destroy: bool(),
  dynamo_billing_mode: {
    expected: '"PAY_PER_REQUEST" or "PROVISIONED"',
    schema: z.enum(['PAY_PER_REQUEST', 'PROVISIONED']),
  },
  dynamo_read_capacity: int('a positive integer', 1),
  dynamo_write_capacity: int('a positive integer', 1),
  verdict_ttl_days: int('0 (keep verdicts forever) or a positive number of days', 0),
  yara_match_alert_emails: emails(),
  negative_match_alert_emails: emails(),
  metric_alarm_sns_topic_arn: str(
    '"" or an SNS topic ARN such as "arn:aws:sns:us-east-1:123456789012:alarms"',
    /^$|^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[\w-]+$/,
  ),
  metric_alarm_emails: emails(),
  expected_analysis_frequency_minutes: int('an integer number of minutes from 1 to 1440', 1, 1440),
  queue_age_alarm_minutes: int('a positive integer', 1),
  yara_rules_min_count: int('a non-negative integer', 0),
  content_prefilter: bool(),
  rules_refresh_seconds: int('an integer number of seconds from 0 to 3600', 0, 3600),
} satisfies Record<string, Setting>;

type SettingName = keyof typeof SETTINGS;

type Shape = { [K in SettingName]: (typeof SETTINGS)[K]['schema'] };
const shape = Object.fromEntries(
  Object.entries(SETTINGS).map(([name, setting]) => [name, setting.schema]),
) as Shape;

/** Every terraform.tfvars setting, snake_case as in the file. */
export const BinaryAlertConfigSchema = z.strictObject(shape).superRefine((config, ctx) => {
  // Runs only once every setting is valid on its own.
  if (config.scan_timeout_seconds >= config.lambda_analyze_timeout_sec) {
    ctx.addIssue({
      code: 'custom',
      params: { crossSetting: true },
      path: ['scan_timeout_seconds'],
      message: `must be less than lambda_analyze_timeout_sec (${config.lambda_analyze_timeout_sec})`,
    });
  }
  if (config.max_file_size_mb >= config.lambda_analyze_ephemeral_storage_mb) {
    ctx.addIssue({
      code: 'custom',
      params: { crossSetting: true },
      path: ['max_file_size_mb'],
      message: `must be less than lambda_analyze_ephemeral_storage_mb (${config.lambda_analyze_ephemeral_storage_mb})`,
    });
  }
  if (
    config.max_file_size_mb + config.archive_max_expanded_mb >
    config.lambda_analyze_ephemeral_storage_mb
  ) {
    ctx.addIssue({
      code: 'custom',
      params: { crossSetting: true },
      path: ['archive_max_expanded_mb'],
      message: `plus max_file_size_mb (${config.max_file_size_mb}) must not exceed lambda_analyze_ephemeral_storage_mb (${config.lambda_analyze_ephemeral_storage_mb})`,
    });
  }
  if (config.lambda_dispatch_wait_time_seconds >= config.lambda_dispatch_timeout_sec) {
    ctx.addIssue({
      code: 'custom',
      params: { crossSetting: true },
      path: ['lambda_dispatch_wait_time_seconds'],
      message: `must be less than lambda_dispatch_timeout_sec (${config.lambda_dispatch_timeout_sec})`,
    });
  }
  if (
    config.lambda_analyze_reserved_concurrency >= 0 &&
    config.lambda_analyze_reserved_concurrency < config.lambda_analyze_concurrency_limit
  ) {
    ctx.addIssue({
      code: 'custom',
      params: { crossSetting: true },
      path: ['lambda_analyze_reserved_concurrency'],
      message: `must be -1 or at least lambda_analyze_concurrency_limit (${config.lambda_analyze_concurrency_limit}): fewer reserved than started means throttled analyzers`,
    });
  }
  const names = resourceNames(config);
  const buckets = config.s3_log_bucket ? [names.bucket] : [names.bucket, names.logBucket];
  const tooLong = buckets.find((bucket) => bucket.length > 63);
  if (tooLong) {
    ctx.addIssue({
      code: 'custom',
      params: { crossSetting: true },
      path: ['name_prefix'],
      message: `is too long: the bucket name "${tooLong}" exceeds S3's 63 characters`,
    });
  }
});

export type BinaryAlertConfig = z.infer<typeof BinaryAlertConfigSchema>;

function problemsOf(issue: z.core.$ZodIssue, input: Record<string, unknown>): SettingProblem[] {
  if (issue.code === 'unrecognized_keys') {
    return issue.keys.map((setting) => ({
      setting,
      message: 'is not a known setting (not declared in terraform/variables.tf)',
    }));
  }
  const name = String(issue.path[0] ?? '');
  const setting = (SETTINGS as Record<string, Setting | undefined>)[name];
  if (!(name in input)) {
    return [{ setting: name, message: `is missing (expected ${setting?.expected ?? 'a value'})` }];
  }
  const message =
    issue.code === 'custom' && issue.params?.crossSetting
      ? issue.message
      : `must be ${setting?.expected ?? '?'}`;
  return [{ setting: name, message: `${message} (got ${JSON.stringify(input[name])})` }];
}

/** Validates already-parsed tfvars values; throws TfvarsError naming every invalid setting. */
export function validateTfvars(input: unknown, source = 'terraform.tfvars'): BinaryAlertConfig {
  const result = BinaryAlertConfigSchema.safeParse(input);
  if (result.success) return result.data;
  const values = (typeof input === 'object' && input !== null ? input : {}) as Record<
    string,
    unknown
  >;
  // Type errors and format errors may both report one setting: keep the first per setting.
  const problems = new Map<string, SettingProblem>();
  for (const issue of result.error.issues) {
    for (const problem of problemsOf(issue, values)) {
      if (!problems.has(problem.setting)) problems.set(problem.setting, problem);
    }
  }
  const list = [...problems.values()];
  throw new TfvarsError(list.map((problem) => describeProblem(problem, source)).join('\n'), list);
}

/** Parses terraform.tfvars text (HCL) into plain values. */
export async function parseTfvars(content: string, filename = 'terraform.tfvars') {
  try {
    // Loaded on first use: the HCL parser is a large WebAssembly module that most callers never need.
    const { parse: parseHcl } = await import('@cdktf/hcl2json');
    return (await parseHcl(filename, content)) as Record<string, unknown>;
  } catch (error) {
    throw new TfvarsError(
      `${path.basename(filename)}: not valid HCL: ${error instanceof Error ? error.message : String(error)}`,
      undefined,
      { cause: error },
    );
  }
}

/** Reads, parses and validates terraform.tfvars (default: the repository's top-level file). */
export async function loadTfvars(tfvarsPath = DEFAULT_TFVARS_PATH): Promise<BinaryAlertConfig> {
  let content: string;
  try {
    content = await readFile(tfvarsPath, 'utf8');
  } catch (error) {
    throw new TfvarsError(`cannot read ${tfvarsPath}: ${(error as Error).message}`, undefined, {
      cause: error,
    });
  }
  return validateTfvars(await parseTfvars(content, tfvarsPath), path.basename(tfvarsPath));
}
