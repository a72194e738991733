import {
  createLogger,
  encodeS3Key,
  InvalidEventError,
  RETRO_DELTA_EVENT,
  s3EventRecord,
} from '@binaryalert/core';
import { parseAnalyzerInput } from './input';

function quietLog() {
  const lines: Record<string, unknown>[] = [];
  const log = createLogger('test', (line) =>
    lines.push(JSON.parse(line) as Record<string, unknown>),
  );
  return { log, lines };
}

const record = (key: string, size?: number) =>
  s3EventRecord({ bucket: 'bucket', key, ...(size === undefined ? {} : { size }) });

describe('parseAnalyzerInput', () => {
  it('reads a dispatcher payload and maps one record per receipt', () => {
    const { log } = quietLog();

    const input = parseAnalyzerInput(
      { Records: [record('a.exe', 3), record('b.exe')], SQSReceipts: ['r1', 'r2'] },
      log,
    );

    expect(input.kind).toBe('dispatcher');
    expect(input.groups).toEqual([
      { id: 'r1', receipt: 'r1' },
      { id: 'r2', receipt: 'r2' },
    ]);
    expect(input.tasks).toEqual([
      { ref: { bucket: 'bucket', key: 'a.exe', size: 3 }, groups: [0] },
      { ref: { bucket: 'bucket', key: 'b.exe' }, groups: [1] },
    ]);
  });

  it('uses RecordReceipts to map records of multi-object messages to their receipt', () => {
    const { log } = quietLog();

    const input = parseAnalyzerInput(
      {
        Records: [record('a'), record('b'), record('c')],
        SQSReceipts: ['r1', 'r2'],
        RecordReceipts: [0, 0, 1],
      },
      log,
    );

    expect(input.tasks.map((task) => task.groups)).toEqual([[0], [0], [1]]);
  });

  it('makes every receipt depend on every object when records cannot be mapped to receipts', () => {
    const { log } = quietLog();

    const input = parseAnalyzerInput(
      { Records: [record('a'), record('b'), record('c')], SQSReceipts: ['r1', 'r2'] },
      log,
    );

    expect(input.tasks.map((task) => task.groups)).toEqual([
      [0, 1],
      [0, 1],
      [0, 1],
    ]);
  });

  it('reads a plain S3 event and decodes URL-encoded keys with spaces, unicode and +', () => {
    const { log } = quietLog();
    const key = 'dir with space/ünï 文件+plus.exe';
    const raw = {
      Records: [
        {
          eventSource: 'aws:s3',
          eventName: 'ObjectCreated:Put',
          s3: { bucket: { name: 'bucket' }, object: { key: encodeS3Key(key), size: 7 } },
        },
      ],
    };
    expect(raw.Records[0]!.s3.object.key).toBe(
      'dir+with+space/%C3%BCn%C3%AF+%E6%96%87%E4%BB%B6%2Bplus.exe',
    );

    const input = parseAnalyzerInput(raw, log);

    expect(input).toEqual({
      kind: 's3',
      groups: [],
      tasks: [{ ref: { bucket: 'bucket', key, size: 7 }, groups: [] }],
    });
  });

  it('reads an SQS event-source batch whose bodies are S3 notifications', () => {
    const { log, lines } = quietLog();
    const sqsRecord = (messageId: string, body: string) => ({
      messageId,
      receiptHandle: `rh-${messageId}`,
      body,
      attributes: { ApproximateReceiveCount: '1' },
      messageAttributes: {},
      md5OfBody: 'x',
      eventSource: 'aws:sqs',
      eventSourceARN: 'arn:aws:sqs:us-east-1:123456789012:queue',
      awsRegion: 'us-east-1',
    });

    const input = parseAnalyzerInput(
      {
        Records: [
          sqsRecord('m1', JSON.stringify({ Records: [record('a'), record('b')] })),
          sqsRecord('m2', JSON.stringify({ Service: 'Amazon S3', Event: 's3:TestEvent' })),
          sqsRecord('m3', 'not json'),
          sqsRecord('m4', JSON.stringify({ Records: [] })),
          sqsRecord('m5', JSON.stringify({ Records: [record('c')] })),
        ],
      },
      log,
    );

    expect(input.kind).toBe('sqs');
    expect(input.groups.map((group) => group.id)).toEqual(['m1', 'm2', 'm3', 'm4', 'm5']);
    expect(input.tasks).toEqual([
      { ref: { bucket: 'bucket', key: 'a' }, groups: [0] },
      { ref: { bucket: 'bucket', key: 'b' }, groups: [0] },
      { ref: { bucket: 'bucket', key: 'c' }, groups: [4] },
    ]);
    expect(lines.map((line) => line.message)).toEqual([
      'dropping S3 test event',
      'dropping message that is not an S3 event notification',
      'dropping message that is not an S3 event notification',
    ]);
    expect(lines.map((line) => line.reason).filter(Boolean)).toEqual([
      expect.stringMatching(/^body is not JSON/),
      'an S3 event notification without records',
    ]);
  });

  it('analyzes an object named twice only once, for all its messages', () => {
    const { log } = quietLog();

    const input = parseAnalyzerInput(
      {
        Records: [record('same'), record('other'), record('same')],
        SQSReceipts: ['r1', 'r2', 'r3'],
      },
      log,
    );

    expect(input.tasks).toEqual([
      { ref: { bucket: 'bucket', key: 'same' }, groups: [0, 2] },
      { ref: { bucket: 'bucket', key: 'other' }, groups: [1] },
    ]);
  });

  it('analyzes an object in full when one of its messages asks for it and another for a delta re-scan', () => {
    const { log } = quietLog();
    const delta = s3EventRecord({ bucket: 'bucket', key: 'same' }, RETRO_DELTA_EVENT);

    const input = parseAnalyzerInput(
      { Records: [delta, record('same'), delta], SQSReceipts: ['r1', 'r2', 'r3'] },
      log,
    );
    const onlyDelta = parseAnalyzerInput({ Records: [delta] }, log);

    expect(input.tasks).toEqual([{ ref: { bucket: 'bucket', key: 'same' }, groups: [0, 1, 2] }]);
    expect(onlyDelta.tasks).toEqual([
      { ref: { bucket: 'bucket', key: 'same', retro: 'delta' }, groups: [] },
    ]);
  });

  it('drops a direct S3 test event', () => {
    const { log, lines } = quietLog();

    const input = parseAnalyzerInput({ Service: 'Amazon S3', Event: 's3:TestEvent' }, log);

    expect(input.tasks).toEqual([]);
    expect(lines[0]?.message).toBe('dropping S3 test event');
  });

  it.each([
    ['null', null],
    ['a string', 'hello'],
    ['records of no known shape', { Records: [{ hello: 'world' }] }],
    ['receipts that are not strings', { Records: [record('a')], SQSReceipts: [1] }],
    ['an empty record list', { Records: [] }],
    [
      'an EventBridge S3 event',
      { source: 'aws.s3', 'detail-type': 'Object Created', detail: { object: { key: 'a' } } },
    ],
  ])('rejects %s', (_name, event) => {
    expect(() => parseAnalyzerInput(event, quietLog().log)).toThrow(InvalidEventError);
  });
});
