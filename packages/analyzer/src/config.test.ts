import os from 'node:os';
import path from 'node:path';
import { ConfigError } from '@binaryalert/core';
import { loadConfig } from './config';

const ENV = {
  YARA_MATCHES_DYNAMO_TABLE_NAME: 'prefix_binaryalert_matches',
  VERDICTS_DYNAMO_TABLE_NAME: 'prefix_binaryalert_verdicts',
  YARA_ALERTS_SNS_TOPIC_ARN: 'arn:aws:sns:us-east-1:123456789012:alerts',
  NEGATIVE_ALERTS_SNS_TOPIC_ARN: '',
  SQS_QUEUE_URL: 'https://sqs.us-east-1.amazonaws.com/123456789012/queue',
  MAX_FILE_SIZE_MB: '64',
  SCAN_TIMEOUT_SECONDS: '60',
  ARCHIVE_PASSWORDS: '["infected","s3cr3t"]',
  ARCHIVE_MAX_DEPTH: '5',
  ARCHIVE_MAX_MEMBERS: '10000',
  ARCHIVE_MAX_EXPANDED_MB: '512',
  ARCHIVE_MAX_RATIO: '250',
};

describe('loadConfig', () => {
  it('reads the environment Terraform sets, with defaults for the optional variables', () => {
    const config = loadConfig(ENV, '/var/task');

    expect(config).toEqual({
      settings: {
        matchesTable: 'prefix_binaryalert_matches',
        verdictTable: 'prefix_binaryalert_verdicts',
        verdictTtlDays: 0,
        alertsTopicArn: 'arn:aws:sns:us-east-1:123456789012:alerts',
        negativeAlertsTopicArn: '',
        queueUrl: 'https://sqs.us-east-1.amazonaws.com/123456789012/queue',
        maxFileBytes: 64 * 1024 * 1024,
        scanTimeoutSeconds: 60,
        archives: {
          passwords: ['infected', 's3cr3t'],
          maxDepth: 5,
          maxMembers: 10000,
          maxExpandedBytes: 512 * 1024 * 1024,
          maxRatio: 250,
        },
        contentSignatures: true,
        concurrency: os.availableParallelism(),
        inMemoryBytes: 16 * 1024 * 1024,
      },
      rulesPath: path.join('/var/task', 'compiled_yara_rules.bin'),
      manifestPath: path.join('/var/task', 'rules_manifest.json'),
    });
  });

  it('turns content signatures off with CONTENT_PREFILTER=false and refuses anything but true/false', () => {
    expect(loadConfig({ ...ENV, CONTENT_PREFILTER: 'false' }).settings.contentSignatures).toBe(
      false,
    );
    expect(loadConfig({ ...ENV, CONTENT_PREFILTER: 'true' }).settings.contentSignatures).toBe(true);
    expect(() => loadConfig({ ...ENV, CONTENT_PREFILTER: 'no' })).toThrow(ConfigError);
  });

  it('reads the rules bucket and its refresh interval', () => {
    const config = loadConfig({
      ...ENV,
      RULES_BUCKET_NAME: 'prefix.binaryalert-rules.us-east-1',
      RULES_REFRESH_SECONDS: '30',
    });

    expect(config.rulesBucket).toEqual({
      bucket: 'prefix.binaryalert-rules.us-east-1',
      refreshSeconds: 30,
    });
  });

  it('honours ANALYSIS_CONCURRENCY and COMPILED_RULES_PATH', () => {
    const config = loadConfig({
      ...ENV,
      ANALYSIS_CONCURRENCY: '6',
      COMPILED_RULES_PATH: '/opt/rules.bin',
      NEGATIVE_ALERTS_SNS_TOPIC_ARN: 'arn:negative',
    });

    expect(config.settings.concurrency).toBe(6);
    expect(config.settings.negativeAlertsTopicArn).toBe('arn:negative');
    expect(config.rulesPath).toBe('/opt/rules.bin');
  });

  it.each([
    ['128', 4],
    ['256', 8],
    ['1024', 16],
    ['10240', 16],
  ])(
    'reads objects into memory below a bound that fits the function (%s MB: under %d MiB)',
    (memoryMb, mib) => {
      const config = loadConfig({ ...ENV, AWS_LAMBDA_FUNCTION_MEMORY_SIZE: memoryMb });

      expect(config.settings.inMemoryBytes).toBe(mib * 1024 * 1024);
    },
  );

  it('treats empty optional variables as unset', () => {
    const config = loadConfig({ ...ENV, ANALYSIS_CONCURRENCY: '', COMPILED_RULES_PATH: '' }, '/x');

    expect(config.settings.concurrency).toBe(os.availableParallelism());
    expect(config.rulesPath).toBe('/x/compiled_yara_rules.bin');
  });

  it.each([
    ['YARA_MATCHES_DYNAMO_TABLE_NAME', undefined],
    ['VERDICTS_DYNAMO_TABLE_NAME', undefined],
    ['VERDICT_TTL_DAYS', '-3'],
    ['SQS_QUEUE_URL', ''],
    ['MAX_FILE_SIZE_MB', 'big'],
    ['SCAN_TIMEOUT_SECONDS', '0'],
    ['ANALYSIS_CONCURRENCY', '-1'],
    ['AWS_LAMBDA_FUNCTION_MEMORY_SIZE', 'lots'],
  ])('fails naming %s when it is %p', (name, value) => {
    const env: NodeJS.ProcessEnv = { ...ENV, [name]: value };
    if (value === undefined) delete env[name];

    expect(() => loadConfig(env)).toThrow(ConfigError);
    expect(() => loadConfig(env)).toThrow(new RegExp(name));
  });

  it.each([['not json'], ['"infected"'], ['[1, 2]']])(
    'fails naming ARCHIVE_PASSWORDS when it is %p',
    (value) => {
      expect(() => loadConfig({ ...ENV, ARCHIVE_PASSWORDS: value })).toThrow(/ARCHIVE_PASSWORDS/);
    },
  );
});
