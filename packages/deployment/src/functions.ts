import {
  EnvSchema as AnalyzerEnvSchema,
  loadConfig as loadAnalyzerConfig,
} from '@binaryalert/analyzer/config';
import {
  EnvSchema as BatcherEnvSchema,
  loadConfig as loadBatcherConfig,
} from '@binaryalert/batcher/config';
import {
  EnvSchema as DispatcherEnvSchema,
  loadConfig as loadDispatcherConfig,
} from '@binaryalert/dispatcher/config';
import type { z } from 'zod';
import { PRODUCTION_ALIAS, resourceNames, type ResourceNames } from './names';
import { dispatchSlotLeaseSeconds } from './queueing';
import type { BinaryAlertConfig } from './tfvars';

export type FunctionName = 'analyzer' | 'dispatcher' | 'batcher';
export type SettingName = keyof BinaryAlertConfig;

/** Where the deployed (or emulated) resources live; topic ARNs default to the account's. */
export interface DeploymentIds {
  accountId: string;
  queueUrl: string;
  partition?: string;
  matchesTopicArn?: string;
  negativeMatchesTopicArn?: string;
}

/** What an environment is built from besides the settings: names and addresses of resources. */
export interface DeploymentContext {
  names: ResourceNames;
  queueUrl: string;
  matchesTopicArn: string;
  negativeMatchesTopicArn: string;
}

/** Files a zip carries beside `index.js` and its source map (the build produces each kind). */
export type ZipAsset =
  /** `lib*.so*` shipped beside the yara addon (the addon itself comes with the bundle). */
  | 'native-libraries'
  /** libmagic's database, for rules that `import "magic"`. */
  | 'magic-database'
  /** The repository's rules, compiled. */
  | 'compiled-rules'
  /** 7-Zip in WebAssembly (`7zz.wasm`), which opens encrypted 7z archives; loaded from beside index.js. */
  | 'seven-zip-wasm';

/** One Lambda function: everything the build, `apply`, the local stack and the contract tests need. */
export interface FunctionSpec {
  name: FunctionName;
  /** The workspace package under packages/; the build bundles its `src/handler.ts`. */
  packageDir: string;
  description: string;
  /** Its name in AWS, from the resource names. */
  functionName(names: ResourceNames): string;
  memoryMbSetting: SettingName;
  timeoutSecSetting: SettingName;
  /**
   * The terraform.tfvars settings its modules/lambda instance uses, besides COMMON_SETTINGS
   * (terraform.test.ts checks the list against terraform/lambda.tf).
   */
  settings: readonly SettingName[];
  /** Its environment, exactly as terraform/lambda.tf sets it. */
  environment(config: BinaryAlertConfig, context: DeploymentContext): Record<string, string>;
  /** The zod schema its handler parses the environment with. */
  envSchema: z.ZodObject<Record<string, z.ZodType>>;
  /** Its handler's own configuration loader (throws ConfigError on a bad environment). */
  loadConfig(env: NodeJS.ProcessEnv): unknown;
  zipAssets: readonly ZipAsset[];
  /** The IAM actions its code may call (terraform/iam.tf grants exactly these). */
  actions: readonly string[];
}

/** The handler of every function inside its zip. */
export const HANDLER = 'index.handler';

/** Settings every function's module instance uses. */
export const COMMON_SETTINGS: readonly SettingName[] = [
  'lambda_runtime',
  'lambda_log_retention_days',
  'metric_alarm_sns_topic_arn',
];

/** The Lambda functions, in build order. */
export const FUNCTIONS: readonly FunctionSpec[] = [
  {
    name: 'analyzer',
    packageDir: 'packages/analyzer',
    description: 'BinaryAlert: downloads, hashes and YARA-scans S3 objects',
    functionName: (names) => names.analyzerFunction,
    memoryMbSetting: 'lambda_analyze_memory_mb',
    timeoutSecSetting: 'lambda_analyze_timeout_sec',
    settings: [
      'lambda_analyze_memory_mb',
      'lambda_analyze_timeout_sec',
      'lambda_analyze_ephemeral_storage_mb',
      'lambda_analyze_reserved_concurrency',
      'max_file_size_mb',
      'scan_timeout_seconds',
      'enable_negative_match_alerts',
      'verdict_ttl_days',
      'rules_refresh_seconds',
      'archive_passwords',
      'archive_max_depth',
      'archive_max_members',
      'archive_max_expanded_mb',
      'archive_max_ratio',
      'content_prefilter',
    ],
    environment: (config, { names, queueUrl, matchesTopicArn, negativeMatchesTopicArn }) => ({
      YARA_MATCHES_DYNAMO_TABLE_NAME: names.table,
      VERDICTS_DYNAMO_TABLE_NAME: names.verdictTable,
      VERDICT_TTL_DAYS: String(config.verdict_ttl_days),
      RULES_BUCKET_NAME: names.rulesBucket,
      RULES_REFRESH_SECONDS: String(config.rules_refresh_seconds),
      YARA_ALERTS_SNS_TOPIC_ARN: matchesTopicArn,
      NEGATIVE_ALERTS_SNS_TOPIC_ARN: config.enable_negative_match_alerts
        ? negativeMatchesTopicArn
        : '',
      SQS_QUEUE_URL: queueUrl,
      MAX_FILE_SIZE_MB: String(config.max_file_size_mb),
      SCAN_TIMEOUT_SECONDS: String(config.scan_timeout_seconds),
      ARCHIVE_PASSWORDS: JSON.stringify(config.archive_passwords),
      ARCHIVE_MAX_DEPTH: String(config.archive_max_depth),
      ARCHIVE_MAX_MEMBERS: String(config.archive_max_members),
      ARCHIVE_MAX_EXPANDED_MB: String(config.archive_max_expanded_mb),
      ARCHIVE_MAX_RATIO: String(config.archive_max_ratio),
      CONTENT_PREFILTER: String(config.content_prefilter),
      DISPATCH_SLOTS_TABLE: names.dispatchSlotsTable,
    }),
    envSchema: AnalyzerEnvSchema,
    loadConfig: (env) => loadAnalyzerConfig(env),
    zipAssets: ['native-libraries', 'magic-database', 'compiled-rules', 'seven-zip-wasm'],
    actions: [
      'dynamodb:BatchGetItem',
      'dynamodb:GetItem',
      'dynamodb:PartiQLUpdate',
      'dynamodb:UpdateItem',
      's3:GetObject',
      'sns:Publish',
      'sqs:ChangeMessageVisibility',
      'sqs:DeleteMessage',
      'sqs:SendMessage',
    ],
  },
  {
    name: 'dispatcher',
    packageDir: 'packages/dispatcher',
    description: 'BinaryAlert: polls the analyzer queue and invokes analyzers',
    functionName: (names) => names.dispatcherFunction,
    memoryMbSetting: 'lambda_dispatch_memory_mb',
    timeoutSecSetting: 'lambda_dispatch_timeout_sec',
    settings: [
      'lambda_dispatch_memory_mb',
      'lambda_dispatch_timeout_sec',
      'lambda_dispatch_limit',
      'lambda_dispatch_wait_time_seconds',
      'lambda_dispatch_receive_concurrency',
      'lambda_analyze_concurrency_limit',
      'lambda_analyze_timeout_sec',
    ],
    environment: (config, { names, queueUrl }) => ({
      SQS_QUEUE_URL: queueUrl,
      ANALYZER_FUNCTION_NAME: names.analyzerFunction,
      ANALYZER_FUNCTION_QUALIFIER: PRODUCTION_ALIAS,
      MAX_INVOCATIONS: String(config.lambda_dispatch_limit),
      SQS_WAIT_TIME_SECONDS: String(config.lambda_dispatch_wait_time_seconds),
      RECEIVE_CONCURRENCY: String(config.lambda_dispatch_receive_concurrency),
      DISPATCH_SLOTS_TABLE: names.dispatchSlotsTable,
      ANALYZER_CONCURRENCY_LIMIT: String(config.lambda_analyze_concurrency_limit),
      DISPATCH_SLOT_LEASE_SECONDS: String(dispatchSlotLeaseSeconds(config)),
    }),
    envSchema: DispatcherEnvSchema,
    loadConfig: (env) => loadDispatcherConfig(env),
    zipAssets: [],
    actions: [
      'dynamodb:Scan',
      'dynamodb:UpdateItem',
      'lambda:InvokeFunction',
      'sqs:DeleteMessage',
      'sqs:ReceiveMessage',
    ],
  },
  {
    name: 'batcher',
    packageDir: 'packages/batcher',
    description: 'BinaryAlert: enqueues every object of the bucket for retroactive analysis',
    functionName: (names) => names.batcherFunction,
    memoryMbSetting: 'lambda_batch_memory_mb',
    timeoutSecSetting: 'lambda_batch_timeout_sec',
    settings: ['lambda_batch_memory_mb', 'lambda_batch_timeout_sec', 'objects_per_retro_message'],
    environment: (config, { names, queueUrl }) => ({
      BATCH_LAMBDA_NAME: names.batcherFunction,
      BATCH_LAMBDA_QUALIFIER: PRODUCTION_ALIAS,
      OBJECTS_PER_MESSAGE: String(config.objects_per_retro_message),
      S3_BUCKET_NAME: names.bucket,
      SQS_QUEUE_URL: queueUrl,
    }),
    envSchema: BatcherEnvSchema,
    loadConfig: (env) => loadBatcherConfig(env),
    zipAssets: [],
    actions: ['lambda:InvokeFunction', 's3:ListBucket', 'sqs:SendMessage'],
  },
];

/** The names of the functions, in build order. */
export const FUNCTION_NAMES: readonly FunctionName[] = FUNCTIONS.map((fn) => fn.name);

/** The manifest entry of one function. */
export function functionSpec(name: FunctionName): FunctionSpec {
  const spec = FUNCTIONS.find((fn) => fn.name === name);
  if (!spec) throw new RangeError(`no Lambda function named ${name}`);
  return spec;
}

/** Resource names and addresses the environments are built from. */
export function deploymentContext(
  config: BinaryAlertConfig,
  ids: DeploymentIds,
): DeploymentContext {
  const names = resourceNames(config);
  const topicArn = (topic: string) =>
    `arn:${ids.partition ?? 'aws'}:sns:${config.aws_region}:${ids.accountId}:${topic}`;
  return {
    names,
    queueUrl: ids.queueUrl,
    matchesTopicArn: ids.matchesTopicArn ?? topicArn(names.matchesTopic),
    negativeMatchesTopicArn: ids.negativeMatchesTopicArn ?? topicArn(names.negativeMatchesTopic),
  };
}

/**
 * The environment of each Lambda function, exactly as Terraform sets it (terraform/lambda.tf);
 * the local stack runs the handlers with the same maps.
 */
export function functionEnvironments(
  config: BinaryAlertConfig,
  ids: DeploymentIds,
): Record<FunctionName, Record<string, string>> {
  const context = deploymentContext(config, ids);
  return Object.fromEntries(
    FUNCTIONS.map((fn) => [fn.name, fn.environment(config, context)]),
  ) as Record<FunctionName, Record<string, string>>;
}
