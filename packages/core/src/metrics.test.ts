import { captureEmf, type EmfCapture } from '@binaryalert/testing';
import { createLogger } from './logger';
import { addMetric, createMetrics, METRIC_NAMESPACE, publishMetrics } from './metrics';

describe('Powertools Metrics in embedded metric format', () => {
  let emf: EmfCapture;
  let logLines: Record<string, unknown>[];
  const log = () =>
    createLogger('test', (line) => logLines.push(JSON.parse(line) as Record<string, unknown>));

  beforeEach(() => {
    emf = captureEmf();
    logLines = [];
  });
  afterEach(() => emf.restore());

  it('writes one EMF line: namespace BinaryAlert, the service dimension, units and samples', () => {
    const metrics = createMetrics('p_binaryalert_analyzer', log());
    addMetric(metrics, 'AnalyzedBinaries', 3);
    addMetric(metrics, 'S3DownloadLatency', [10, 30, 20]);
    addMetric(metrics, 'ScanLatency', []);

    publishMetrics(metrics, log());

    expect(emf.lines).toHaveLength(1);
    const line = JSON.parse(emf.lines[0]!) as {
      _aws: { Timestamp: number; CloudWatchMetrics: unknown[] };
    };
    expect(Math.abs(line._aws.Timestamp - Date.now())).toBeLessThan(60_000);
    expect(line._aws.CloudWatchMetrics).toEqual([
      {
        Namespace: METRIC_NAMESPACE,
        Dimensions: [['service']],
        Metrics: [
          { Name: 'AnalyzedBinaries', Unit: 'Count' },
          { Name: 'S3DownloadLatency', Unit: 'Milliseconds' },
        ],
      },
    ]);
    expect(emf.metrics()).toEqual([
      {
        namespace: 'BinaryAlert',
        name: 'AnalyzedBinaries',
        unit: 'Count',
        dimensionSets: [{ service: 'p_binaryalert_analyzer' }],
        values: [3],
      },
      {
        namespace: 'BinaryAlert',
        name: 'S3DownloadLatency',
        unit: 'Milliseconds',
        dimensionSets: [{ service: 'p_binaryalert_analyzer' }],
        values: [10, 30, 20],
      },
    ]);
  });

  it('starts empty after publishing: the next invocation writes only its own metrics', () => {
    const metrics = createMetrics('f', log());
    addMetric(metrics, 'YaraRules', 10);
    publishMetrics(metrics, log());
    addMetric(metrics, 'YaraRules', 12);
    publishMetrics(metrics, log());

    expect(emf.metrics().map((metric) => metric.values)).toEqual([[10], [12]]);
  });

  it('keeps every sample of a long list (Powertools writes a line per 100 values)', () => {
    const metrics = createMetrics('f', log());
    const samples = Array.from({ length: 250 }, (_, i) => i);
    addMetric(metrics, 'ScanLatency', samples);
    publishMetrics(metrics, log());

    expect(emf.metrics().flatMap((metric) => metric.values)).toEqual(samples);
  });

  it('logs a failure to publish instead of throwing', () => {
    const metrics = createMetrics('f', log());
    addMetric(metrics, 'YaraRules', 10);
    jest.spyOn(metrics, 'publishStoredMetrics').mockImplementation(() => {
      throw new Error('stdout closed');
    });

    expect(() => publishMetrics(metrics, log())).not.toThrow();

    expect(logLines).toEqual([
      expect.objectContaining({ level: 'ERROR', message: 'failed to publish metrics' }),
    ]);
  });
});
