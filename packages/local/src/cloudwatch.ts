import type { IncomingMessage, ServerResponse } from 'node:http';

import {
  parseQueryParams,
  readBody,
  sendJson,
  sendJsonError,
  sendQueryError,
  sendQueryResult,
} from './protocol';

const CLOUDWATCH_XMLNS = 'http://monitoring.amazonaws.com/doc/2010-08-01/';

/** Running totals of one metric over all PutMetricData calls. */
export interface MetricTotal {
  sum: number;
  sampleCount: number;
  min: number;
  max: number;
  unit?: string;
}

/** Aggregates every metric the workers put, by namespace/name (dimensions ignored). */
export class MetricStore {
  private readonly totals = new Map<string, MetricTotal>();

  add(namespace: string, name: string, stats: Omit<MetricTotal, 'unit'>, unit?: string): void {
    const key = `${namespace}/${name}`;
    const total = this.totals.get(key);
    if (!total) {
      this.totals.set(key, { ...stats, ...(unit ? { unit } : {}) });
      return;
    }
    total.sum += stats.sum;
    total.sampleCount += stats.sampleCount;
    total.min = Math.min(total.min, stats.min);
    total.max = Math.max(total.max, stats.max);
  }

  /** Sum of a metric's values (0 when never put). */
  sum(name: string, namespace = 'BinaryAlert'): number {
    return this.totals.get(`${namespace}/${name}`)?.sum ?? 0;
  }

  /** Every metric seen, keyed `namespace/name`. */
  snapshot(): Record<string, MetricTotal> {
    return Object.fromEntries([...this.totals].map(([key, total]) => [key, { ...total }]));
  }
}

interface MetricDatum {
  MetricName?: unknown;
  Value?: unknown;
  Values?: unknown;
  Counts?: unknown;
  StatisticValues?: { SampleCount?: unknown; Sum?: unknown; Minimum?: unknown; Maximum?: unknown };
  Unit?: unknown;
}

function statsOf(datum: MetricDatum): Omit<MetricTotal, 'unit'> | undefined {
  const num = (value: unknown): number => Number(value);
  if (datum.StatisticValues) {
    const s = datum.StatisticValues;
    return {
      sum: num(s.Sum),
      sampleCount: num(s.SampleCount),
      min: num(s.Minimum),
      max: num(s.Maximum),
    };
  }
  if (Array.isArray(datum.Values)) {
    const values = datum.Values.map(num);
    const counts = Array.isArray(datum.Counts) ? datum.Counts.map(num) : values.map(() => 1);
    if (values.length === 0) return undefined;
    return {
      sum: values.reduce((acc, value, i) => acc + value * (counts[i] ?? 1), 0),
      sampleCount: counts.reduce((acc, count) => acc + count, 0),
      min: Math.min(...values),
      max: Math.max(...values),
    };
  }
  if (datum.Value === undefined) return undefined;
  const value = num(datum.Value);
  return { sum: value, sampleCount: 1, min: value, max: value };
}

/**
 * Handles CloudWatch PutMetricData in the awsJson1.0 protocol (SDK v3) and the query protocol
 * (aws CLI 2.9), adding every datum to `store`.
 */
export function createCloudWatchHandler(
  store: MetricStore,
): (req: IncomingMessage, res: ServerResponse) => Promise<void> {
  return async (req, res) => {
    const target = req.headers['x-amz-target'];
    const json = typeof target === 'string';
    if (String(req.headers['smithy-protocol'] ?? '') === 'rpc-v2-cbor') {
      sendJsonError(
        res,
        400,
        'UnsupportedProtocol',
        'the local stack speaks awsJson1.0 and query to CloudWatch',
      );
      return;
    }
    const body = await readBody(req);
    const params: Record<string, unknown> = json
      ? (JSON.parse(body.toString('utf8') || '{}') as Record<string, unknown>)
      : parseQueryParams(new URLSearchParams(body.toString('utf8')));
    const action = json ? target.split('.').pop() : params.Action;
    if (action !== 'PutMetricData') {
      const message = `the local stack's CloudWatch supports PutMetricData only, not ${String(action)}`;
      if (json) sendJsonError(res, 400, 'InvalidAction', message);
      else sendQueryError(res, 400, 'InvalidAction', message);
      return;
    }
    const namespace = typeof params.Namespace === 'string' ? params.Namespace : '';
    const data = Array.isArray(params.MetricData) ? (params.MetricData as MetricDatum[]) : [];
    for (const datum of data) {
      const stats = datum && typeof datum.MetricName === 'string' ? statsOf(datum) : undefined;
      if (stats && Number.isFinite(stats.sum)) {
        store.add(
          namespace,
          datum.MetricName as string,
          stats,
          typeof datum.Unit === 'string' ? datum.Unit : undefined,
        );
      }
    }
    if (json) sendJson(res, 200, {});
    else sendQueryResult(res, CLOUDWATCH_XMLNS, 'PutMetricData', undefined);
  };
}
