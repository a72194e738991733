import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import {
  DEFAULT_TFVARS_PATH,
  TfvarsError,
  functionEnvironments,
  loadTfvars,
  parseTfvars,
  resourceNames,
  validateTfvars,
} from './index';
import { ConfigError } from '@binaryalert/core';

let dir: string;
let original: string;

beforeAll(async () => {
  original = await readFile(DEFAULT_TFVARS_PATH, 'utf8');
});
beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'binaryalert-config-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Writes a copy of the repository's terraform.tfvars with one line replaced. */
async function tfvarsWith(setting: string, value: string): Promise<string> {
  const pattern = new RegExp(`^${setting}\\s*=.*$`, 'm');
  expect(original).toMatch(pattern);
  const file = path.join(dir, 'terraform.tfvars');
  await writeFile(file, original.replace(pattern, `${setting} = ${value}`));
  return file;
}

async function loadError(file: string): Promise<TfvarsError> {
  const error: unknown = await loadTfvars(file).catch((e: unknown) => e);
  expect(error).toBeInstanceOf(TfvarsError);
  return error as TfvarsError;
}

describe('loadTfvars', () => {
  it('loads and validates the repository terraform.tfvars by default', async () => {
    const config = await loadTfvars();

    expect(config.aws_region).toMatch(/^[a-z]{2}-/);
    expect(config.lambda_runtime).toBe('nodejs22.x');
    expect(config.external_s3_bucket_resources).toEqual([]);
    expect(config.tags).toEqual({ Application: 'BinaryAlert' });
    expect(typeof config.force_destroy).toBe('boolean');
  });

  it('names the setting and its expected format when a number is a string', async () => {
    const file = await tfvarsWith('max_file_size_mb', '"abc"');

    const error = await loadError(file);

    expect(error).toBeInstanceOf(ConfigError);
    expect(error.message).toBe(
      'terraform.tfvars: max_file_size_mb must be a positive integer (got "abc")',
    );
  });

  it('rejects an invalid name prefix with the expected format', async () => {
    const file = await tfvarsWith('name_prefix', '"My-Org"');

    const error = await loadError(file);

    expect(error.message).toContain('name_prefix must be lowercase letters, digits');
    expect(error.message).toContain('(got "My-Org")');
  });

  it('reports every invalid setting, one line each', async () => {
    const file = path.join(dir, 'terraform.tfvars');
    await writeFile(
      file,
      original
        .replace(/^aws_region\s*=.*$/m, 'aws_region = "Mars"')
        .replace(/^lambda_log_retention_days\s*=.*$/m, 'lambda_log_retention_days = 13')
        .replace(/^dynamo_billing_mode\s*=.*$/m, 'dynamo_billing_mode = "ON_DEMAND"'),
    );

    const error = await loadError(file);

    expect(error.problems).toEqual([
      { setting: 'aws_region', message: expect.stringContaining('must be an AWS region name') },
      {
        setting: 'lambda_log_retention_days',
        message: expect.stringContaining('must be one of 1, 3, 5, 7, 14'),
      },
      {
        setting: 'dynamo_billing_mode',
        message: 'must be "PAY_PER_REQUEST" or "PROVISIONED" (got "ON_DEMAND")',
      },
    ]);
    expect(error.message.split('\n')).toEqual(
      error.problems.map((problem) => `terraform.tfvars: ${problem.setting} ${problem.message}`),
    );
  });

  it('rejects a missing setting and an undeclared one', async () => {
    const file = path.join(dir, 'terraform.tfvars');
    await writeFile(
      file,
      original.replace(/^max_receives\s*=.*$/m, '') + '\nenable_carbon_black_downloader = true\n',
    );

    const error = await loadError(file);

    expect(error.problems).toEqual(
      expect.arrayContaining([
        { setting: 'max_receives', message: 'is missing (expected an integer from 1 to 1000)' },
        {
          setting: 'enable_carbon_black_downloader',
          message: expect.stringContaining('is not a known setting'),
        },
      ]),
    );
  });

  it('rejects settings that contradict each other', async () => {
    const file = await tfvarsWith('scan_timeout_seconds', '300');

    const error = await loadError(file);

    expect(error.message).toBe(
      'terraform.tfvars: scan_timeout_seconds must be less than lambda_analyze_timeout_sec (300) (got 300)',
    );
  });

  it('rejects a reservation smaller than the analyzers the trigger may start', async () => {
    const file = await tfvarsWith('lambda_analyze_reserved_concurrency', '4');

    const error = await loadError(file);

    expect(error.message).toBe(
      'terraform.tfvars: lambda_analyze_reserved_concurrency must be -1 or at least lambda_analyze_concurrency_limit (8): fewer reserved than started means throttled analyzers (got 4)',
    );
  });

  it('accepts no reservation or one that covers the concurrency limit', async () => {
    for (const reserved of ['-1', '8', '100']) {
      const config = await loadTfvars(
        await tfvarsWith('lambda_analyze_reserved_concurrency', reserved),
      );

      expect(config.lambda_analyze_reserved_concurrency).toBe(Number(reserved));
    }
  });

  it.each([
    ['lambda_runtime', '"nodejs26.x"', 'one of "nodejs20.x", "nodejs22.x", "nodejs24.x"'],
    ['lambda_runtime', '"nodejs18.x"', 'one of "nodejs20.x", "nodejs22.x", "nodejs24.x"'],
    ['analyzer_trigger', '"kinesis"', '"dispatcher" or "sqs"'],
    ['lambda_analyze_concurrency_limit', '1', 'an integer from 2 to 1000'],
    ['external_kms_key_resources', '["alias/aws/s3"]', 'a list of KMS key ARNs'],
  ])('rejects %s = %s', async (setting, value, expected) => {
    const error = await loadError(await tfvarsWith(setting, value));

    expect(error.message).toContain(`${setting} must be ${expected}`);
  });

  it('rejects a name prefix that makes the bucket name too long', async () => {
    const file = await tfvarsWith('name_prefix', `"${'a'.repeat(40)}"`);

    const error = await loadError(file);

    expect(error.message).toContain('name_prefix is too long');
  });

  it('checks the created log bucket name too, which is longer', async () => {
    // 30 + 22 + 9 = 61 characters for the binaries bucket, 30 + 28 + 9 = 67 for the log bucket.
    const prefix = 'a'.repeat(30);
    const file = await tfvarsWith('name_prefix', `"${prefix}"`);

    const error = await loadError(file);

    expect(error.message).toContain(
      `the bucket name "${prefix}.binaryalert-s3-access-logs.us-east-1" exceeds`,
    );
  });

  it('reports a file that is not HCL and a file that does not exist', async () => {
    const file = path.join(dir, 'terraform.tfvars');
    await writeFile(file, 'aws_region = "us-east-1\n');

    const syntax = await loadError(file);
    const missing = await loadError(path.join(dir, 'nope.tfvars'));

    expect(syntax.message).toMatch(/^terraform\.tfvars: not valid HCL/);
    expect(missing.message).toContain('cannot read');
  });
});

describe('resourceNames and functionEnvironments', () => {
  async function config(overrides: Record<string, unknown> = {}) {
    return validateTfvars({ ...(await parseTfvars(original)), ...overrides });
  }

  it('names resources "<prefix>_binaryalert_<part>" and the bucket with dots', async () => {
    const names = resourceNames(
      await config({ name_prefix: 'acme_prod', aws_region: 'eu-west-1' }),
    );

    expect(names.bucket).toBe('acme.prod.binaryalert-binaries.eu-west-1');
    expect(names.logBucket).toBe('acme.prod.binaryalert-s3-access-logs.eu-west-1');
    expect(names.analyzerFunction).toBe('acme_prod_binaryalert_analyzer');
    expect(names.queue).toBe('acme_prod_binaryalert_analyzer_queue');
    expect(names.table).toBe('acme_prod_binaryalert_matches');
    for (const name of (Object.values(names) as string[]).filter((n) => !n.includes('.'))) {
      expect(name).toMatch(/^acme_prod_binaryalert_[a-z_]+$/);
    }
  });

  it('uses an existing log bucket when s3_log_bucket names one', async () => {
    const names = resourceNames(await config({ s3_log_bucket: 'corp-logs' }));

    expect(names.logBucket).toBe('corp-logs');
  });

  it('builds each function environment from the settings', async () => {
    const settings = await config({
      name_prefix: 'acme',
      aws_region: 'us-west-2',
      max_file_size_mb: 42,
      lambda_dispatch_limit: 7,
      objects_per_retro_message: 3,
    });
    const queueUrl =
      'https://sqs.us-west-2.amazonaws.com/123456789012/acme_binaryalert_analyzer_queue';

    const env = functionEnvironments(settings, { accountId: '123456789012', queueUrl });

    expect(env.analyzer).toEqual({
      YARA_MATCHES_DYNAMO_TABLE_NAME: 'acme_binaryalert_matches',
      VERDICTS_DYNAMO_TABLE_NAME: 'acme_binaryalert_verdicts',
      VERDICT_TTL_DAYS: String(settings.verdict_ttl_days),
      RULES_BUCKET_NAME: 'acme.binaryalert-rules.us-west-2',
      RULES_REFRESH_SECONDS: String(settings.rules_refresh_seconds),
      YARA_ALERTS_SNS_TOPIC_ARN:
        'arn:aws:sns:us-west-2:123456789012:acme_binaryalert_yara_match_alerts',
      NEGATIVE_ALERTS_SNS_TOPIC_ARN: '',
      SQS_QUEUE_URL: queueUrl,
      MAX_FILE_SIZE_MB: '42',
      SCAN_TIMEOUT_SECONDS: String(settings.scan_timeout_seconds),
      ARCHIVE_PASSWORDS: '["infected","malware","virus"]',
      ARCHIVE_MAX_DEPTH: '5',
      ARCHIVE_MAX_MEMBERS: '10000',
      ARCHIVE_MAX_EXPANDED_MB: '512',
      ARCHIVE_MAX_RATIO: '250',
      CONTENT_PREFILTER: 'true',
      DISPATCH_SLOTS_TABLE: 'acme_binaryalert_dispatch_slots',
    });
    expect(env.dispatcher).toMatchObject({
      ANALYZER_FUNCTION_NAME: 'acme_binaryalert_analyzer',
      ANALYZER_FUNCTION_QUALIFIER: 'Production',
      MAX_INVOCATIONS: '7',
      DISPATCH_SLOTS_TABLE: 'acme_binaryalert_dispatch_slots',
      ANALYZER_CONCURRENCY_LIMIT: String(settings.lambda_analyze_concurrency_limit),
      // A long poll + the analyzer's 60 s event age + its timeout + 30 s.
      DISPATCH_SLOT_LEASE_SECONDS: String(
        settings.lambda_dispatch_wait_time_seconds + 60 + settings.lambda_analyze_timeout_sec + 30,
      ),
    });
    expect(env.batcher).toEqual({
      BATCH_LAMBDA_NAME: 'acme_binaryalert_batcher',
      BATCH_LAMBDA_QUALIFIER: 'Production',
      OBJECTS_PER_MESSAGE: '3',
      S3_BUCKET_NAME: 'acme.binaryalert-binaries.us-west-2',
      SQS_QUEUE_URL: queueUrl,
    });
  });

  it('sets the negative-match topic only when negative alerts are enabled', async () => {
    const ids = { accountId: '000000000000', queueUrl: 'http://127.0.0.1:1/q' };

    const off = functionEnvironments(await config(), ids);
    const on = functionEnvironments(await config({ enable_negative_match_alerts: true }), {
      ...ids,
      negativeMatchesTopicArn: 'arn:aws:sns:us-east-1:000000000000:local-negative',
    });

    expect(off.analyzer.NEGATIVE_ALERTS_SNS_TOPIC_ARN).toBe('');
    expect(on.analyzer.NEGATIVE_ALERTS_SNS_TOPIC_ARN).toBe(
      'arn:aws:sns:us-east-1:000000000000:local-negative',
    );
  });
});
