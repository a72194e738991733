import { loadAnalyzerConfig } from '@binaryalert/analyzer';
import { DEFAULT_ARCHIVE_SETTINGS } from '@binaryalert/core';
import { functionEnvironments } from './environments';
import { loadTfvars } from './tfvars';

describe('functionEnvironments', () => {
  it('gives the analyzer an environment its loadAnalyzerConfig turns into the settings', async () => {
    const config = await loadTfvars();
    const env = functionEnvironments(config, {
      accountId: '123456789012',
      queueUrl: 'https://sqs.us-east-1.amazonaws.com/123456789012/q',
    }).analyzer;

    const parsed = loadAnalyzerConfig(env, '/var/task');

    expect(parsed.settings.maxFileBytes).toBe(config.max_file_size_mb * 1024 * 1024);
    expect(parsed.settings.scanTimeoutSeconds).toBe(config.scan_timeout_seconds);
    expect(parsed.settings.negativeAlertsTopicArn !== '').toBe(config.enable_negative_match_alerts);
    expect(parsed.settings.archives).toEqual({
      passwords: config.archive_passwords,
      maxDepth: config.archive_max_depth,
      maxMembers: config.archive_max_members,
      maxExpandedBytes: config.archive_max_expanded_mb * 1024 * 1024,
      maxRatio: config.archive_max_ratio,
    });
    // `manage.ts scan` opens containers with the runtime's defaults: the shipped tfvars' values.
    expect(parsed.settings.archives).toEqual(DEFAULT_ARCHIVE_SETTINGS);
  });
});
