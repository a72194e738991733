import {
  PutMetricDataCommand,
  type CloudWatchClient,
  type MetricDatum,
  type StandardUnit,
} from '@aws-sdk/client-cloudwatch';
import type { Logger } from './logger';

export const METRIC_NAMESPACE = 'BinaryAlert';

// PutMetricData accepts up to 1000 metrics per request.
const MAX_METRICS_PER_REQUEST = 1000;

/** Metrics collected during one invocation and sent with one PutMetricData. */
export class MetricsBatch {
  private readonly data: MetricDatum[] = [];

  constructor(private readonly namespace: string = METRIC_NAMESPACE) {}

  add(name: string, value: number, unit: StandardUnit = 'Count'): void {
    this.data.push({ MetricName: name, Value: value, Unit: unit });
  }

  /** Adds a statistic set (min, max, count, sum); nothing when there are no values. */
  addStatistics(name: string, values: number[], unit: StandardUnit = 'Count'): void {
    if (values.length === 0) return;
    this.data.push({
      MetricName: name,
      Unit: unit,
      StatisticValues: {
        SampleCount: values.length,
        Sum: values.reduce((sum, value) => sum + value, 0),
        Minimum: Math.min(...values),
        Maximum: Math.max(...values),
      },
    });
  }

  /** The collected data (a copy), e.g. for logs and tests. */
  get metrics(): MetricDatum[] {
    return this.data.map((datum) => ({ ...datum }));
  }

  /** Sends and clears the collected metrics. Never throws: a failure is logged. */
  async flush(cloudwatch: CloudWatchClient, log: Logger): Promise<void> {
    const batch = this.data.splice(0, this.data.length);
    for (let start = 0; start < batch.length; start += MAX_METRICS_PER_REQUEST) {
      const chunk = batch.slice(start, start + MAX_METRICS_PER_REQUEST);
      try {
        await cloudwatch.send(
          new PutMetricDataCommand({ Namespace: this.namespace, MetricData: chunk }),
        );
      } catch (error) {
        log.error('failed to publish metrics', {
          error,
          metrics: chunk.map((datum) => datum.MetricName),
        });
      }
    }
  }
}
