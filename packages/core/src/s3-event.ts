import { z } from 'zod';
import { InvalidEventError, unreachable } from './errors';

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
  /** Named by a re-scan after a rules release that may build on the object's last verdict. */
  retro?: 'delta';
  /** What the batcher's listing said of the object (delta re-scans only): no HEAD needed. */
  listed?: ListingFacts;
}

/** One object as ListObjectsV2 described it, and when the listing was asked for. */
export interface ListingFacts {
  /** As S3 sends it in a listing (quoted). */
  etag: string;
  size: number;
  /** ISO 8601 (a listing has millisecond precision, a GET's Last-Modified header seconds). */
  lastModified: string;
  /** ISO 8601: before the ListObjectsV2 request was sent (so the facts are at least this new). */
  listedAt: string;
}

/** An ETag without its quotes: listings and GETs quote it, S3 event records do not. */
export function unquotedEtag(etag: string): string {
  return etag.replace(/^"(.*)"$/, '$1');
}

function isoDate(value: unknown): string | undefined {
  if (typeof value !== 'string' || value === '') return undefined;
  const time = Date.parse(value);
  return Number.isNaN(time) ? undefined : new Date(time).toISOString();
}

/** The listing facts of a delta re-scan record; undefined when any is missing or malformed. */
function listedObject(record: S3EventRecord): ListingFacts | undefined {
  const { eTag, size, lastModified } = record.s3.object;
  const modified = isoDate(lastModified);
  const listedAt = isoDate(record.eventTime);
  if (typeof eTag !== 'string' || !/^[0-9A-Za-z-]+$/.test(eTag)) return undefined;
  if (size === undefined || modified === undefined || listedAt === undefined) return undefined;
  return { etag: `"${eTag}"`, size, lastModified: modified, listedAt };
}

/**
 * The eventName of the batcher's records for a re-scan after a rules release (not `--full`): the
 * analyzer may then scan with the release's delta only, or carry the verdict over (analyzer
 * delta.ts). Anything else, including S3's own notifications, is analyzed in full.
 */
export const RETRO_DELTA_EVENT = 'BinaryAlert:RetroDelta';

// ignoreBOM keeps a U+FEFF that starts a run of escapes: a key may hold one (it is invisible).
const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

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

/**
 * Builds one S3 event record (used by the batcher, the analyzer's re-queue and the local stack);
 * a ref of a delta re-scan gives a RETRO_DELTA_EVENT record, so s3ObjectRef reads it back as is.
 * A delta ref's listing facts travel as S3's own fields (eTag, size, eventTime = when it was
 * listed) plus `lastModified`.
 */
export function s3EventRecord(
  ref: { bucket: string; key: string; size?: number; retro?: 'delta'; listed?: ListingFacts },
  eventName = ref.retro === 'delta' ? RETRO_DELTA_EVENT : 'ObjectCreated:Put',
): S3EventRecord {
  const listed = eventName === RETRO_DELTA_EVENT ? ref.listed : undefined;
  const size = listed?.size ?? ref.size;
  return {
    eventVersion: '2.1',
    eventSource: 'aws:s3',
    eventTime: listed?.listedAt ?? new Date().toISOString(),
    eventName,
    s3: {
      s3SchemaVersion: '1.0',
      bucket: { name: ref.bucket, arn: `arn:aws:s3:::${ref.bucket}` },
      object: {
        key: encodeS3Key(ref.key),
        ...(size === undefined ? {} : { size }),
        ...(listed ? { eTag: unquotedEtag(listed.etag), lastModified: listed.lastModified } : {}),
      },
    },
  };
}

/** The decoded object reference named by one record. */
export function s3ObjectRef(record: S3EventRecord): S3ObjectRef {
  const { name } = record.s3.bucket;
  const { key, size } = record.s3.object;
  const delta = record.eventName === RETRO_DELTA_EVENT;
  const listed = delta ? listedObject(record) : undefined;
  return {
    bucket: name,
    key: decodeS3Key(key),
    ...(size === undefined ? {} : { size }),
    ...(delta ? { retro: 'delta' as const } : {}),
    ...(listed ? { listed } : {}),
  };
}

const TestEventSchema = z.looseObject({ Event: z.literal('s3:TestEvent') });
const NotificationSchema = z.looseObject({ Records: z.array(S3EventRecordSchema) });
// S3 -> SNS -> SQS wraps the notification in an SNS envelope (a topic fanned out to another: two).
const MAX_SNS_ENVELOPES = 2;
const SnsEnvelopeSchema = z.looseObject({ Type: z.literal('Notification'), Message: z.string() });
// S3 -> EventBridge events look alike but are not what the bucket sends to the queue.
const EventBridgeSchema = z.looseObject({ source: z.literal('aws.s3'), 'detail-type': z.string() });

/** What one S3-notification message (an SQS body or a direct invocation event) says. */
export type S3Notification =
  /** S3 event records, as S3 sent them (keys still URL-encoded; see s3ObjectRef). */
  | { kind: 'records'; records: S3EventRecord[] }
  /** The `s3:TestEvent` S3 sends when a notification is configured: nothing to analyze. */
  | { kind: 'test' }
  /** Anything else, with the reason in words. */
  | { kind: 'invalid'; reason: string };

/**
 * The one parser of S3 event notifications: an SQS message body (JSON string) or an already
 * parsed object, optionally inside SNS envelopes (S3 -> SNS -> SQS). Never throws.
 */
export function parseS3Notification(body: unknown): S3Notification {
  let value = body;
  for (let envelopes = 0; ; envelopes++) {
    if (typeof value === 'string') {
      try {
        value = JSON.parse(value) as unknown;
      } catch (error) {
        return { kind: 'invalid', reason: `body is not JSON: ${(error as Error).message}` };
      }
    }
    const envelope = SnsEnvelopeSchema.safeParse(value);
    if (!envelope.success) break;
    if (envelopes === MAX_SNS_ENVELOPES) {
      return { kind: 'invalid', reason: `more than ${MAX_SNS_ENVELOPES} nested SNS envelopes` };
    }
    value = envelope.data.Message;
  }
  if (TestEventSchema.safeParse(value).success) return { kind: 'test' };
  const eventBridge = EventBridgeSchema.safeParse(value);
  if (eventBridge.success) {
    return {
      kind: 'invalid',
      reason: `an EventBridge event ("${eventBridge.data['detail-type']}"), not an S3 event notification`,
    };
  }
  const parsed = NotificationSchema.safeParse(value);
  if (!parsed.success) {
    const issues = parsed.error.issues
      .slice(0, 3)
      .map((issue) => `${issue.path.join('.') || '(body)'}: ${issue.message}`)
      .join('; ');
    return { kind: 'invalid', reason: `not an S3 event notification: ${issues}` };
  }
  if (parsed.data.Records.length === 0) {
    return { kind: 'invalid', reason: 'an S3 event notification without records' };
  }
  return { kind: 'records', records: parsed.data.Records };
}

/**
 * The objects a notification names (none for a test event); InvalidEventError for anything that
 * is not an S3 event notification.
 */
export function objectsOfNotification(body: unknown): S3ObjectRef[] {
  const notification = parseS3Notification(body);
  switch (notification.kind) {
    case 'records':
      return notification.records.map(s3ObjectRef);
    case 'test':
      return [];
    case 'invalid':
      throw new InvalidEventError(notification.reason);
    default:
      return unreachable(notification);
  }
}
