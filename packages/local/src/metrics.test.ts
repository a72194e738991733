import { MetricStore, parseEmfLine } from './metrics';

const line = (aws: unknown, fields: Record<string, unknown> = {}) =>
  JSON.stringify({ _aws: aws, ...fields });

describe('parseEmfLine', () => {
  it('reads every directive, with each dimension set resolved and array values as samples', () => {
    const text = line(
      {
        Timestamp: 1,
        CloudWatchMetrics: [
          {
            Namespace: 'BinaryAlert',
            Dimensions: [['service'], []],
            Metrics: [{ Name: 'ScanLatency', Unit: 'Milliseconds' }],
          },
          { Namespace: 'Other', Dimensions: [['service', 'stage']], Metrics: [{ Name: 'Hits' }] },
        ],
      },
      { service: 'fn', stage: 'prod', ScanLatency: [5, 7], Hits: 1 },
    );

    expect(parseEmfLine(text)).toEqual([
      {
        namespace: 'BinaryAlert',
        name: 'ScanLatency',
        unit: 'Milliseconds',
        dimensionSets: [{ service: 'fn' }, {}],
        values: [5, 7],
      },
      {
        namespace: 'Other',
        name: 'Hits',
        dimensionSets: [{ service: 'fn', stage: 'prod' }],
        values: [1],
      },
    ]);
  });

  it('ignores plain log lines and what CloudWatch rejects', () => {
    const directive = (extra: object = {}) => ({
      CloudWatchMetrics: [
        { Namespace: 'N', Dimensions: [['service']], Metrics: [{ Name: 'M' }], ...extra },
      ],
    });

    expect(parseEmfLine('{"level":"INFO","message":"M 1","M":1}')).toEqual([]);
    expect(parseEmfLine('not json "_aws"')).toEqual([]);
    expect(parseEmfLine(line('x', { M: 1 }))).toEqual([]);
    expect(parseEmfLine(line({ CloudWatchMetrics: {} }, { M: 1 }))).toEqual([]);
    // A dimension that has no string value, or no Dimensions at all.
    expect(parseEmfLine(line(directive(), { M: 1 }))).toEqual([]);
    expect(parseEmfLine(line(directive(), { M: 1, service: 3 }))).toEqual([]);
    expect(parseEmfLine(line(directive({ Dimensions: undefined }), { M: 1 }))).toEqual([]);
    // Values that are not finite numbers.
    expect(parseEmfLine(line(directive(), { M: '1', service: 's' }))).toEqual([]);
    expect(parseEmfLine(line(directive(), { M: [null, 'x'], service: 's' }))).toEqual([]);
    expect(parseEmfLine(line(directive(), { M: [2, 'x'], service: 's' }))[0]?.values).toEqual([2]);
  });
});

describe('MetricStore', () => {
  it('sums each metric over every line and dimension', () => {
    const store = new MetricStore();
    const emf = (service: string, value: number | number[]) =>
      line(
        {
          CloudWatchMetrics: [
            { Namespace: 'BinaryAlert', Dimensions: [['service']], Metrics: [{ Name: 'A' }] },
          ],
        },
        { service, A: value },
      );

    expect(store.addLogLine(emf('one', 2))).toBe(true);
    expect(store.addLogLine(emf('two', [1, 4]))).toBe(true);
    expect(store.addLogLine('{"level":"INFO"}')).toBe(false);

    expect(store.sum('A')).toBe(7);
    expect(store.sum('B')).toBe(0);
    expect(store.snapshot()).toEqual({
      'BinaryAlert/A': { sum: 7, sampleCount: 3, min: 1, max: 4 },
    });
  });
});
