import 'aws-sdk-client-mock-jest';
import { CloudWatchClient, PutMetricDataCommand } from '@aws-sdk/client-cloudwatch';
import { mockClient } from 'aws-sdk-client-mock';
import { createLogger } from './logger';
import { METRIC_NAMESPACE, MetricsBatch } from './metrics';

describe('MetricsBatch', () => {
  const cloudwatchMock = mockClient(CloudWatchClient);
  const cloudwatch = new CloudWatchClient({ region: 'us-east-1' });
  let lines: string[];
  const log = () => createLogger('test', (line) => lines.push(line));

  beforeEach(() => {
    cloudwatchMock.reset();
    lines = [];
  });

  it('sends everything collected in one PutMetricData', async () => {
    const metrics = new MetricsBatch();
    metrics.add('AnalyzedBinaries', 3);
    metrics.addStatistics('S3DownloadLatency', [10, 30, 20], 'Milliseconds');
    metrics.addStatistics('ScanLatency', [], 'Milliseconds');

    await metrics.flush(cloudwatch, log());

    expect(cloudwatchMock).toHaveReceivedCommandTimes(PutMetricDataCommand, 1);
    expect(cloudwatchMock).toHaveReceivedCommandWith(PutMetricDataCommand, {
      Namespace: METRIC_NAMESPACE,
      MetricData: [
        { MetricName: 'AnalyzedBinaries', Value: 3, Unit: 'Count' },
        {
          MetricName: 'S3DownloadLatency',
          Unit: 'Milliseconds',
          StatisticValues: { SampleCount: 3, Sum: 60, Minimum: 10, Maximum: 30 },
        },
      ],
    });
  });

  it('sends nothing when empty', async () => {
    await new MetricsBatch().flush(cloudwatch, log());

    expect(cloudwatchMock).toHaveReceivedCommandTimes(PutMetricDataCommand, 0);
  });

  it('logs a failure instead of throwing', async () => {
    cloudwatchMock.on(PutMetricDataCommand).rejects(new Error('throttled'));
    const metrics = new MetricsBatch();
    metrics.add('YaraRules', 10);

    await expect(metrics.flush(cloudwatch, log())).resolves.toBeUndefined();

    expect(lines.map((line) => JSON.parse(line) as Record<string, unknown>)).toEqual([
      expect.objectContaining({ level: 'error', message: 'failed to publish metrics' }),
    ]);
  });
});
