import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';

type Unit = (typeof MetricUnit)[keyof typeof MetricUnit];
import type { Logger } from './logger';

export { Metrics };

/** The CloudWatch namespace of BinaryAlert's own metrics (terraform/locals.tf `metric_namespace`). */
export const METRIC_NAMESPACE = 'BinaryAlert';

/** The functions that emit custom metrics (the manifest's names in @binaryalert/deployment). */
export type MetricEmitter = 'analyzer' | 'batcher';

/**
 * Every custom metric: the function that emits it and its unit. Each EMF line carries one
 * dimension, `service` = the emitting function's deployed name (`functionService`); the Terraform
 * contract test checks that every alarm and dashboard widget selects exactly that.
 */
export const METRICS = {
  AnalyzedBinaries: { emitter: 'analyzer', unit: MetricUnit.Count },
  MatchedBinaries: { emitter: 'analyzer', unit: MetricUnit.Count },
  YaraRules: { emitter: 'analyzer', unit: MetricUnit.Count },
  S3DownloadLatency: { emitter: 'analyzer', unit: MetricUnit.Milliseconds },
  ScanLatency: { emitter: 'analyzer', unit: MetricUnit.Milliseconds },
  SkippedBinaries: { emitter: 'analyzer', unit: MetricUnit.Count },
  PartialBinaries: { emitter: 'analyzer', unit: MetricUnit.Count },
  AnalysisErrors: { emitter: 'analyzer', unit: MetricUnit.Count },
  // Content inside objects that a bound, a password or damage kept from being scanned.
  UnscannedContent: { emitter: 'analyzer', unit: MetricUnit.Count },
  // Re-scans after a rules release settled from the ledger, without a full analysis.
  CarriedOverVerdicts: { emitter: 'analyzer', unit: MetricUnit.Count },
  // Of those, the ones the content prefilter settled without reading the object.
  PrefilterExcludedObjects: { emitter: 'analyzer', unit: MetricUnit.Count },
  BatchEnqueueFailures: { emitter: 'batcher', unit: MetricUnit.Count },
} as const satisfies Record<string, { emitter: MetricEmitter; unit: Unit }>;

export type MetricName = keyof typeof METRICS;

/**
 * Powertools Metrics for one function: CloudWatch embedded metric format written to stdout (the
 * function's log), so no PutMetricData call and no cloudwatch permission. Its own warnings go to
 * `log`.
 */
export function createMetrics(serviceName: string | undefined, log: Logger): Metrics {
  return new Metrics({
    namespace: METRIC_NAMESPACE,
    ...(serviceName ? { serviceName } : {}),
    logger: log,
  });
}

/** Adds a catalogued metric: one value, or one sample per value (none for an empty list). */
export function addMetric(metrics: Metrics, name: MetricName, value: number | number[]): void {
  for (const sample of Array.isArray(value) ? value : [value]) {
    metrics.addMetric(name, METRICS[name].unit, sample);
  }
}

/** Writes the stored metrics as one EMF line; never throws (a failure is logged, not raised). */
export function publishMetrics(metrics: Metrics, log: Logger): void {
  try {
    metrics.publishStoredMetrics();
  } catch (error) {
    log.error('failed to publish metrics', { error });
  }
}
