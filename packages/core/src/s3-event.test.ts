import { InvalidEventError } from './errors';
import {
  decodeS3Key,
  encodeS3Key,
  objectsOfNotification,
  parseS3Notification,
  RETRO_DELTA_EVENT,
  s3EventRecord,
  S3EventRecordSchema,
  s3ObjectRef,
  type S3EventRecord,
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
    // U+FEFF (zero-width no-break space) is a byte order mark only to a stream decoder.
    '\uFEFFleading-bom.exe',
    'invoice\uFEFF.exe',
  ])('round-trips %p', (key) => {
    const encoded = encodeS3Key(key);
    expect(encoded).not.toMatch(/[ \u0080-\uffff]/);
    expect(decodeS3Key(encoded)).toBe(key);
  });

  it('encodes the way S3 notifications do', () => {
    expect(encodeS3Key('year=2020/red flower+é.jpg')).toBe('year%3D2020/red+flower%2B%C3%A9.jpg');
  });
});

describe('s3EventRecord / s3ObjectRef', () => {
  it('keeps a delta re-scan a delta re-scan through a record (re-queued objects too), and nothing else', () => {
    const delta = { bucket: 'b', key: 'dir/a b.exe', size: 3, retro: 'delta' as const };

    const record = s3EventRecord(delta);
    const plain = s3EventRecord({ bucket: 'b', key: 'k' });

    expect(record.eventName).toBe(RETRO_DELTA_EVENT);
    expect(s3ObjectRef(record)).toEqual(delta);
    expect(plain.eventName).toBe('ObjectCreated:Put');
    expect(s3ObjectRef(plain)).toEqual({ bucket: 'b', key: 'k' });
    expect(s3ObjectRef({ ...realRecord, eventName: 'ObjectCreated:Put' }).retro).toBeUndefined();
  });

  const listed = {
    etag: '"9e107d9d372bb6826bd81d3542a419d6"',
    size: 3,
    lastModified: '2026-11-30T10:00:00.123Z',
    listedAt: '2026-12-01T03:00:00.000Z',
  };

  it("carries a delta re-scan's listing facts in S3's own fields (unquoted eTag, size, eventTime) and reads them back", () => {
    const ref = { bucket: 'b', key: 'k', size: 3, retro: 'delta' as const, listed };

    const record = s3EventRecord(ref);

    expect(record.eventTime).toBe(listed.listedAt);
    expect(record.s3.object).toMatchObject({
      eTag: '9e107d9d372bb6826bd81d3542a419d6',
      size: 3,
      lastModified: listed.lastModified,
    });
    expect(s3ObjectRef(JSON.parse(JSON.stringify(record)) as S3EventRecord)).toEqual(ref);
    // A full request never carries them.
    expect(s3EventRecord({ ...ref, retro: undefined }).s3.object.eTag).toBeUndefined();
  });

  it.each([
    ['an eTag with a quote in it', { eTag: 'abc"def' }],
    ['an empty eTag', { eTag: '' }],
    ['a Last-Modified that is no date', { lastModified: 'yesterday' }],
    ['a Last-Modified that is a number', { lastModified: 5 }],
    ['no size', { size: undefined }],
  ])(
    'drops the listing facts of a record with %s (the object is then checked with a HEAD)',
    (_label, change) => {
      const record = s3EventRecord({ bucket: 'b', key: 'k', retro: 'delta', listed });
      const garbage = {
        ...record,
        s3: { ...record.s3, object: { ...record.s3.object, ...change } },
      };

      const ref = s3ObjectRef(garbage);

      expect(ref.retro).toBe('delta');
      expect(ref.listed).toBeUndefined();
    },
  );

  it('drops the listing facts when the listing time is no date', () => {
    const record = s3EventRecord({ bucket: 'b', key: 'k', retro: 'delta', listed });

    expect(s3ObjectRef({ ...record, eventTime: 'soon' }).listed).toBeUndefined();
    expect(s3ObjectRef({ ...record, eventName: 'ObjectCreated:Put' }).listed).toBeUndefined();
  });
});

describe('parseS3Notification', () => {
  const notificationOf = (key: string) =>
    JSON.stringify({ Records: [{ ...realRecord, s3: { ...realRecord.s3, object: { key } } }] });

  it('gives the records of a JSON body as S3 sent them, extra fields kept', () => {
    const body = JSON.stringify({ Records: [realRecord] });

    expect(parseS3Notification(body)).toEqual({ kind: 'records', records: [realRecord] });
    expect(objectsOfNotification(body)).toEqual([
      { bucket: 'mybucket', key: 'dir/red floweré+1.jpg', size: 1024 },
    ]);
  });

  it('accepts an already parsed object', () => {
    expect(objectsOfNotification({ Records: [realRecord, realRecord] })).toHaveLength(2);
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

    expect(parseS3Notification(body)).toEqual({ kind: 'test' });
    expect(objectsOfNotification(body)).toEqual([]);
  });

  it('unwraps SNS envelopes (S3 -> SNS -> SQS), a test event too', () => {
    const wrap = (message: unknown) =>
      JSON.stringify({ Type: 'Notification', MessageId: 'm', Message: JSON.stringify(message) });

    expect(objectsOfNotification(wrap({ Records: [realRecord] }))[0]?.key).toBe(
      'dir/red floweré+1.jpg',
    );
    expect(parseS3Notification(wrap({ Event: 's3:TestEvent' }))).toEqual({ kind: 'test' });
    expect(parseS3Notification(wrap('{not json'))).toMatchObject({ kind: 'invalid' });
  });

  it('refuses an EventBridge-shaped S3 event by name instead of guessing its key encoding', () => {
    const eventBridge = {
      version: '0',
      'detail-type': 'Object Created',
      source: 'aws.s3',
      detail: { bucket: { name: 'mybucket' }, object: { key: 'a.exe', size: 1 } },
    };

    expect(parseS3Notification(JSON.stringify(eventBridge))).toEqual({
      kind: 'invalid',
      reason: 'an EventBridge event ("Object Created"), not an S3 event notification',
    });
  });

  it.each([
    ['an encoded plus and a space', 'a%2Bb+c', 'a+b c'],
    [
      'an encoded slash-dot-dot (kept as a key, never a path)',
      '..%2F..%2Fetc%2Fpasswd',
      '../../etc/passwd',
    ],
    ['unicode', '%E6%96%87%E4%BB%B6+%F0%9F%9A%80.bin', '文件 🚀.bin'],
    ['1,024 bytes (the longest key S3 allows)', '%C3%A9'.repeat(512), 'é'.repeat(512)],
    ['an escaped percent and a lone one', '100%25+sure%', '100% sure%'],
    ['a NUL byte', 'a%00b', 'a\u0000b'],
  ])('decodes a hostile key: %s', (_name, encoded, decoded) => {
    const [ref] = objectsOfNotification(notificationOf(encoded));

    expect(ref?.key).toBe(decoded);
    if (decoded.startsWith('é')) expect(Buffer.byteLength(ref!.key)).toBe(1024);
  });

  it.each([
    ['not JSON', '{oops', /^body is not JSON/],
    ['an empty body', '', /^body is not JSON/],
    ['JSON null', 'null', /\(body\)/],
    ['a JSON array', '[]', /\(body\)/],
    ['a number', 42, /\(body\)/],
    ['no records', JSON.stringify({ hello: 'world' }), /Records/],
    ['records that are not a list', JSON.stringify({ Records: 'x' }), /Records/],
    ['an empty record list', JSON.stringify({ Records: [] }), /without records/],
    [
      'a record without a key',
      JSON.stringify({ Records: [{ s3: { bucket: { name: 'b' }, object: {} } }] }),
      /Records\.0\.s3\.object\.key/,
    ],
    [
      'an empty key',
      JSON.stringify({ Records: [{ s3: { bucket: { name: 'b' }, object: { key: '' } } }] }),
      /key/,
    ],
    [
      'an SQS event source record',
      JSON.stringify({ Records: [{ messageId: 'm', body: '{}', eventSource: 'aws:sqs' }] }),
      /s3/,
    ],
    [
      'three nested SNS envelopes',
      JSON.stringify(
        [1, 2, 3].reduce<unknown>(
          (message) => ({ Type: 'Notification', Message: JSON.stringify(message) }),
          { Records: [realRecord] },
        ),
      ),
      /more than 2 nested SNS envelopes/,
    ],
  ])('says why %s is not a notification', (_name, body, reason) => {
    const notification = parseS3Notification(body);

    expect(notification.kind).toBe('invalid');
    expect(notification.kind === 'invalid' && notification.reason).toMatch(reason);
    expect(() => objectsOfNotification(body)).toThrow(InvalidEventError);
  });
});

describe('s3EventRecord', () => {
  it('builds a record that parses back to the same object', () => {
    const record = s3EventRecord({ bucket: 'b', key: 'x y/ü+.exe', size: 5 });

    expect(S3EventRecordSchema.parse(record)).toEqual(record);
    expect(record.eventName).toBe('ObjectCreated:Put');
    expect(objectsOfNotification({ Records: [record] })).toEqual([
      { bucket: 'b', key: 'x y/ü+.exe', size: 5 },
    ]);
  });
});
