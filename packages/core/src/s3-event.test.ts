import { InvalidEventError } from './errors';
import {
  decodeS3Key,
  encodeS3Key,
  parseS3Notification,
  s3EventRecord,
  S3EventRecordSchema,
} from './s3-event';

// A record as S3 really sends it (documentation example, key with a space and unicode).
const realRecord = {
  eventVersion: '2.1',
  eventSource: 'aws:s3',
  awsRegion: 'us-west-2',
  eventTime: '2026-01-01T00:00:00.000Z',
  eventName: 'ObjectCreated:Put',
  userIdentity: { principalId: 'AWS:AIDAJDPLRKLG7UEXAMPLE' },
  requestParameters: { sourceIPAddress: '127.0.0.1' },
  responseElements: { 'x-amz-request-id': 'C3D13FE58DE4C810' },
  s3: {
    s3SchemaVersion: '1.0',
    configurationId: 'testConfigRule',
    bucket: {
      name: 'mybucket',
      ownerIdentity: { principalId: 'A3NL1KOZZKExample' },
      arn: 'arn:aws:s3:::mybucket',
    },
    object: {
      key: 'dir/red+flower%C3%A9%2B1.jpg',
      size: 1024,
      eTag: 'd41d8cd98f00b204e9800998ecf8427e',
      sequencer: '0055AED6DCD90281E5',
    },
  },
};

describe('decodeS3Key / encodeS3Key', () => {
  it('decodes + as space and %XX as UTF-8, keeping a literal + encoded as %2B', () => {
    expect(decodeS3Key('dir/red+flower%C3%A9%2B1.jpg')).toBe('dir/red floweré+1.jpg');
  });

  it('keeps malformed escapes literally', () => {
    expect(decodeS3Key('100%+sure%zz%C3')).toBe('100% sure%zz%C3');
  });

  it.each([
    'plain.exe',
    'with space/and+plus.txt',
    'unicode/ünïcødé 文件 🚀.bin',
    'a=b&c?d#e%f:g@h,i;j',
    'quotes\'"and\\back`slash',
  ])('round-trips %p', (key) => {
    const encoded = encodeS3Key(key);
    expect(encoded).not.toMatch(/[ \u0080-\uffff]/);
    expect(decodeS3Key(encoded)).toBe(key);
  });

  it('encodes the way S3 notifications do', () => {
    expect(encodeS3Key('year=2020/red flower+é.jpg')).toBe('year%3D2020/red+flower%2B%C3%A9.jpg');
  });
});

describe('parseS3Notification', () => {
  it('parses a JSON body with records and decodes keys', () => {
    const body = JSON.stringify({ Records: [realRecord] });

    expect(parseS3Notification(body)).toEqual({
      isTestEvent: false,
      records: [{ bucket: 'mybucket', key: 'dir/red floweré+1.jpg', size: 1024 }],
    });
  });

  it('accepts an already parsed object', () => {
    expect(parseS3Notification({ Records: [realRecord, realRecord] }).records).toHaveLength(2);
  });

  it('recognizes the s3:TestEvent', () => {
    const body = JSON.stringify({
      Service: 'Amazon S3',
      Event: 's3:TestEvent',
      Time: '2026-01-01T00:00:00.000Z',
      Bucket: 'mybucket',
      RequestId: 'x',
      HostId: 'y',
    });

    expect(parseS3Notification(body)).toEqual({ records: [], isTestEvent: true });
  });

  it('unwraps an SNS envelope', () => {
    const body = JSON.stringify({
      Type: 'Notification',
      MessageId: 'm',
      Message: JSON.stringify({ Records: [realRecord] }),
    });

    expect(parseS3Notification(body).records[0]?.key).toBe('dir/red floweré+1.jpg');
  });

  it.each([
    ['not JSON', '{oops'],
    ['no records', JSON.stringify({ hello: 'world' })],
    [
      'a record without a key',
      JSON.stringify({ Records: [{ s3: { bucket: { name: 'b' }, object: {} } }] }),
    ],
    ['null', null],
  ])('rejects %s with InvalidEventError', (_name, body) => {
    expect(() => parseS3Notification(body)).toThrow(InvalidEventError);
  });
});

describe('s3EventRecord', () => {
  it('builds a record that parses back to the same object', () => {
    const record = s3EventRecord({ bucket: 'b', key: 'x y/ü+.exe', size: 5 });

    expect(S3EventRecordSchema.parse(record)).toEqual(record);
    expect(record.eventName).toBe('ObjectCreated:Put');
    expect(parseS3Notification({ Records: [record] }).records).toEqual([
      { bucket: 'b', key: 'x y/ü+.exe', size: 5 },
    ]);
  });
});
