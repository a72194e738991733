/** Running totals of one metric over all the EMF lines that carried it. */
export interface MetricTotal {
  sum: number;
  sampleCount: number;
  min: number;
  max: number;
  unit?: string;
}

/** One metric of an embedded-metric-format log line, as CloudWatch would extract it. */
export interface EmfMetric {
  namespace: string;
  name: string;
  unit?: string;
  /** Dimension name -> value, for each dimension set the line declares. */
  dimensionSets: Record<string, string>[];
  values: number[];
}

type JsonObject = Record<string, unknown>;

const isObject = (value: unknown): value is JsonObject =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/**
 * Extracts the metrics of one log line in CloudWatch embedded metric format
 * (`_aws.CloudWatchMetrics[]` directives, values and dimension values as top-level keys). Returns
 * [] for any other line, and skips what CloudWatch would reject: a metric without a numeric value,
 * a directive with a dimension without a string value. Lenient where the local status line does
 * not need strictness: a missing `Timestamp` is accepted.
 */
export function parseEmfLine(line: string): EmfMetric[] {
  if (!line.includes('"_aws"')) return [];
  let entry: unknown;
  try {
    entry = JSON.parse(line);
  } catch {
    return [];
  }
  if (!isObject(entry) || !isObject(entry._aws)) return [];
  const directives = entry._aws.CloudWatchMetrics;
  if (!Array.isArray(directives)) return [];
  const metrics: EmfMetric[] = [];
  for (const directive of directives) {
    if (!isObject(directive) || typeof directive.Namespace !== 'string') continue;
    const dimensionSets: Record<string, string>[] = [];
    let dimensionsValid = Array.isArray(directive.Dimensions);
    for (const set of Array.isArray(directive.Dimensions) ? directive.Dimensions : []) {
      const keys: unknown[] = Array.isArray(set) ? set : [undefined];
      const resolved: Record<string, string> = {};
      for (const key of keys) {
        const value = typeof key === 'string' ? entry[key] : undefined;
        if (typeof key !== 'string' || typeof value !== 'string') dimensionsValid = false;
        else resolved[key] = value;
      }
      dimensionSets.push(resolved);
    }
    if (!dimensionsValid || !Array.isArray(directive.Metrics)) continue;
    for (const definition of directive.Metrics) {
      if (!isObject(definition) || typeof definition.Name !== 'string') continue;
      const raw = entry[definition.Name];
      const values = (Array.isArray(raw) ? raw : [raw]).filter(
        (value): value is number => typeof value === 'number' && Number.isFinite(value),
      );
      if (values.length === 0) continue;
      metrics.push({
        namespace: directive.Namespace,
        name: definition.Name,
        ...(typeof definition.Unit === 'string' ? { unit: definition.Unit } : {}),
        dimensionSets,
        values,
      });
    }
  }
  return metrics;
}

/**
 * What CloudWatch would extract from the functions' EMF log lines, summed by namespace/name over
 * every dimension (the status line and tests want totals, not one function's series).
 */
export class MetricStore {
  private readonly totals = new Map<string, MetricTotal>();

  /** Adds the metrics of one log line; returns whether it was an EMF line with any. */
  addLogLine(line: string): boolean {
    const metrics = parseEmfLine(line);
    for (const metric of metrics) this.add(metric);
    return metrics.length > 0;
  }

  add(metric: Pick<EmfMetric, 'namespace' | 'name' | 'values' | 'unit'>): void {
    const key = `${metric.namespace}/${metric.name}`;
    const stats = {
      sum: metric.values.reduce((sum, value) => sum + value, 0),
      sampleCount: metric.values.length,
      min: Math.min(...metric.values),
      max: Math.max(...metric.values),
    };
    const total = this.totals.get(key);
    if (!total) {
      this.totals.set(key, { ...stats, ...(metric.unit ? { unit: metric.unit } : {}) });
      return;
    }
    total.sum += stats.sum;
    total.sampleCount += stats.sampleCount;
    total.min = Math.min(total.min, stats.min);
    total.max = Math.max(total.max, stats.max);
  }

  /** Sum of a metric's values (0 when never seen). */
  sum(name: string, namespace = 'BinaryAlert'): number {
    return this.totals.get(`${namespace}/${name}`)?.sum ?? 0;
  }

  /** Every metric seen, keyed `namespace/name`. */
  snapshot(): Record<string, MetricTotal> {
    return Object.fromEntries([...this.totals].map(([key, total]) => [key, { ...total }]));
  }
}
