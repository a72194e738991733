import { loadAnalyzerConfig } from '@binaryalert/analyzer';
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
  });
});
