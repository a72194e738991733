import { z } from 'zod';
import { InvalidEventError } from './errors';

/** One record of an S3 event notification, as S3 sends it (key URL-encoded). */
export interface S3EventRecord {
  eventVersion?: string;
  eventSource?: string;
  awsRegion?: string;
  eventTime?: string;
  eventName?: string;
  s3: {
    s3SchemaVersion?: string;
    configurationId?: string;
    bucket: { name: string; arn?: string; [extra: string]: unknown };
    object: {
      key: string;
      size?: number;
      eTag?: string;
      versionId?: string;
      sequencer?: string;
      [extra: string]: unknown;
    };
    [extra: string]: unknown;
  };
  [extra: string]: unknown;
}

export const S3EventRecordSchema: z.ZodType<S3EventRecord> = z.looseObject({
  eventVersion: z.string().optional(),
  eventSource: z.string().optional(),
  awsRegion: z.string().optional(),
  eventTime: z.string().optional(),
  eventName: z.string().optional(),
  s3: z.looseObject({
    s3SchemaVersion: z.string().optional(),
    configurationId: z.string().optional(),
    bucket: z.looseObject({ name: z.string().min(1), arn: z.string().optional() }),
    object: z.looseObject({
      key: z.string().min(1),
      size: z.number().int().nonnegative().optional(),
      eTag: z.string().optional(),
      versionId: z.string().optional(),
      sequencer: z.string().optional(),
    }),
  }),
});

/** An S3 object named by an event, key decoded. */
export interface S3ObjectRef {
  bucket: string;
  key: string;
  size?: number;
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Decodes a key as S3 writes it in event notifications: `+` is a space, `%XX` are UTF-8 bytes.
 * Malformed escapes are kept literally (as Python's unquote_plus does) instead of failing.
 */
export function decodeS3Key(encodedKey: string): string {
  return encodedKey.replace(/\+/g, ' ').replace(/(?:%[0-9A-Fa-f]{2})+/g, (run) => {
    try {
      return strictUtf8.decode(Buffer.from(run.replace(/%/g, ''), 'hex'));
    } catch {
      return run;
    }
  });
}

/** Encodes a key the way S3 does in event notifications (space as `+`, `/` kept, rest %XX). */
export function encodeS3Key(key: string): string {
  let out = '';
  for (const byte of Buffer.from(key, 'utf8')) {
    const char = String.fromCharCode(byte);
    if (/[A-Za-z0-9\-_.~*/]/.test(char)) out += char;
    else if (char === ' ') out += '+';
    else out += `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/** Builds one S3 event record (used by the batcher and the local stack). */
export function s3EventRecord(
  ref: { bucket: string; key: string; size?: number },
  eventName = 'ObjectCreated:Put',
): S3EventRecord {
  return {
    eventVersion: '2.1',
    eventSource: 'aws:s3',
    eventTime: new Date().toISOString(),
    eventName,
    s3: {
      s3SchemaVersion: '1.0',
      bucket: { name: ref.bucket, arn: `arn:aws:s3:::${ref.bucket}` },
      object: {
        key: encodeS3Key(ref.key),
        ...(ref.size === undefined ? {} : { size: ref.size }),
      },
    },
  };
}

/** The decoded object reference named by one record. */
export function s3ObjectRef(record: S3EventRecord): S3ObjectRef {
  const { name } = record.s3.bucket;
  const { key, size } = record.s3.object;
  return { bucket: name, key: decodeS3Key(key), ...(size === undefined ? {} : { size }) };
}

const TestEventSchema = z.looseObject({ Event: z.literal('s3:TestEvent') });
const NotificationSchema = z.looseObject({ Records: z.array(S3EventRecordSchema) });
// S3 -> SNS -> SQS wraps the notification in an SNS envelope.
const SnsEnvelopeSchema = z.looseObject({ Type: z.literal('Notification'), Message: z.string() });

/**
 * Parses an S3 event notification: an SQS message body (JSON string) or an already parsed object,
 * optionally inside an SNS envelope. `s3:TestEvent` gives no records and `isTestEvent: true`.
 * Throws InvalidEventError for anything else.
 */
export function parseS3Notification(body: unknown): {
  records: S3ObjectRef[];
  isTestEvent: boolean;
} {
  let value = body;
  for (let unwrap = 0; unwrap < 3; unwrap++) {
    if (typeof value === 'string') {
      try {
        value = JSON.parse(value) as unknown;
      } catch (error) {
        throw new InvalidEventError('message body is not JSON', { cause: error });
      }
    }
    const envelope = SnsEnvelopeSchema.safeParse(value);
    if (!envelope.success) break;
    value = envelope.data.Message;
  }
  if (TestEventSchema.safeParse(value).success) return { records: [], isTestEvent: true };
  const parsed = NotificationSchema.safeParse(value);
  if (!parsed.success) {
    throw new InvalidEventError(
      `not an S3 event notification: ${parsed.error.issues
        .slice(0, 3)
        .map((issue) => `${issue.path.join('.') || '(body)'}: ${issue.message}`)
        .join('; ')}`,
      { cause: parsed.error },
    );
  }
  return { records: parsed.data.Records.map(s3ObjectRef), isTestEvent: false };
}
