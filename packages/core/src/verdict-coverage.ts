import { QueryCommand, type AttributeValue, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import { hasVerdict, VERDICTS, type Verdict } from './verdict-ledger';

/** An object as the bucket listing shows it. */
export interface ListedObject {
  key: string;
  etag?: string;
  size?: number;
  /** ISO 8601 */
  lastModified?: string;
}

/** The part of a ledger item that says whether an object's verdict is current. */
export interface LedgerEntry {
  key: string;
  verdict: Verdict;
  analyzedAt: string;
  analyzerVersion: number;
  etag?: string;
  /** The rules release the verdict was made with ('0': the analyzer's baked-in rules). */
  rulesVersion?: string;
}

/** Every object of the bucket (under `prefix`), page by page. */
export async function* listObjects(
  s3: S3Client,
  bucket: string,
  prefix?: string,
): AsyncGenerator<ListedObject> {
  let ContinuationToken: string | undefined;
  do {
    const page = await s3.send(
      new ListObjectsV2Command({
        Bucket: bucket,
        ...(prefix ? { Prefix: prefix } : {}),
        ...(ContinuationToken ? { ContinuationToken } : {}),
      }),
    );
    for (const object of page.Contents ?? []) {
      if (object.Key === undefined) continue;
      yield {
        key: object.Key,
        ...(object.ETag ? { etag: object.ETag } : {}),
        ...(object.Size === undefined ? {} : { size: object.Size }),
        ...(object.LastModified ? { lastModified: object.LastModified.toISOString() } : {}),
      };
    }
    ContinuationToken = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (ContinuationToken);
}

/**
 * The ledger entries of one bucket (under `prefix`): one Query on the table's key, page by page,
 * reading only the attributes that decide whether a verdict is current.
 */
export async function* ledgerEntries(
  dynamo: DynamoDBClient,
  table: string,
  bucket: string,
  prefix?: string,
): AsyncGenerator<LedgerEntry> {
  let ExclusiveStartKey: Record<string, AttributeValue> | undefined;
  do {
    const page = await dynamo.send(
      new QueryCommand({
        TableName: table,
        KeyConditionExpression: prefix
          ? '#bucket = :bucket AND begins_with(#key, :prefix)'
          : '#bucket = :bucket',
        ExpressionAttributeNames: {
          '#bucket': 'Bucket',
          '#key': 'Key',
          '#verdict': 'Verdict',
          '#at': 'AnalyzedAt',
          '#version': 'AnalyzerVersion',
          '#etag': 'ETag',
          '#rules': 'RulesVersion',
        },
        ExpressionAttributeValues: {
          ':bucket': { S: bucket },
          ...(prefix ? { ':prefix': { S: prefix } } : {}),
        },
        ProjectionExpression: '#key, #verdict, #at, #version, #etag, #rules',
        ...(ExclusiveStartKey ? { ExclusiveStartKey } : {}),
      }),
    );
    for (const item of page.Items ?? []) {
      if (!hasVerdict(item)) continue;
      const verdict = item.Verdict?.S as Verdict | undefined;
      yield {
        key: item.Key?.S ?? '',
        verdict: verdict && VERDICTS.includes(verdict) ? verdict : 'failed',
        analyzedAt: item.AnalyzedAt?.S ?? '',
        analyzerVersion: Number(item.AnalyzerVersion?.N ?? '0'),
        ...(item.ETag?.S ? { etag: item.ETag.S } : {}),
        ...(item.RulesVersion?.S ? { rulesVersion: item.RulesVersion.S } : {}),
      };
    }
    ExclusiveStartKey = page.LastEvaluatedKey;
  } while (ExclusiveStartKey);
}

/** Why a listed object counts as not covered. */
export type GapReason =
  'no verdict' | 'content changed' | 'older analyzer' | 'before start' | 'failed';

export interface CoverageOptions {
  bucket: string;
  table: string;
  prefix?: string;
  /** Verdicts of older analyzer versions count as gaps. */
  minAnalyzerVersion?: number;
  /** Verdicts from before this time (ISO 8601) count as gaps. */
  since?: string;
  /**
   * With `since`: `matched` and `clean` verdicts made with this rules release count whenever they
   * were made (a delta re-scan confirms such a verdict without writing it again).
   */
  rulesVersion?: number;
  /** `failed` verdicts count as gaps: their analysis is to be tried again. */
  retryFailed?: boolean;
  /** Called for each listed object that lacks a current verdict, as the listing reaches it. */
  onGap?: (object: ListedObject, reason: GapReason) => void | Promise<void>;
}

export interface VerdictCoverage {
  /** Objects listed in the bucket (under the prefix). */
  listed: number;
  /** Listed objects with a current verdict. */
  covered: number;
  /** The current verdicts of the covered objects, by verdict. */
  verdicts: Record<Verdict, number>;
  /** Listed objects without one, by reason. */
  gaps: Record<GapReason, number>;
  /** Ledger entries whose object is no longer in the bucket. */
  gone: number;
}

const unquote = (etag: string | undefined) => etag?.replace(/^"|"$/g, '');

/**
 * Whether the object was replaced after its verdict: by ETag when both have one, otherwise (e.g. a
 * verdict of a deleted object, or a skip before download) by its Last-Modified.
 */
function changedSince(entry: LedgerEntry, object: ListedObject): boolean {
  if (entry.etag && object.etag) return unquote(entry.etag) !== unquote(object.etag);
  return object.lastModified !== undefined && entry.analyzedAt < object.lastModified;
}

/** Whether a verdict is one a delta re-scan with release `rulesVersion` leaves as it is. */
function madeWith(entry: LedgerEntry, rulesVersion: number | undefined): boolean {
  return (
    rulesVersion !== undefined &&
    entry.rulesVersion === String(rulesVersion) &&
    (entry.verdict === 'matched' || entry.verdict === 'clean')
  );
}

/**
 * Compares the bucket listing with the verdict ledger: which objects have no current verdict (none
 * at all, one for other content, one from an older analyzer or from before `since`), and which
 * ledger entries name objects that are gone. Reads the ledger once by key (memory grows with the
 * number of entries under the prefix), then streams the listing.
 */
export async function verdictCoverage(
  clients: { s3: S3Client; dynamo: DynamoDBClient },
  options: CoverageOptions,
): Promise<VerdictCoverage> {
  const entries = new Map<string, LedgerEntry>();
  for await (const entry of ledgerEntries(
    clients.dynamo,
    options.table,
    options.bucket,
    options.prefix,
  )) {
    entries.set(entry.key, entry);
  }
  const coverage: VerdictCoverage = {
    listed: 0,
    covered: 0,
    verdicts: { matched: 0, clean: 0, skipped: 0, failed: 0, partial: 0 },
    gaps: {
      'no verdict': 0,
      'content changed': 0,
      'older analyzer': 0,
      'before start': 0,
      failed: 0,
    },
    gone: 0,
  };
  const seen = new Set<string>();
  for await (const object of listObjects(clients.s3, options.bucket, options.prefix)) {
    coverage.listed += 1;
    seen.add(object.key);
    const entry = entries.get(object.key);
    let gap: GapReason | undefined;
    if (!entry) gap = 'no verdict';
    else if (changedSince(entry, object)) gap = 'content changed';
    else if (
      options.minAnalyzerVersion !== undefined &&
      entry.analyzerVersion < options.minAnalyzerVersion
    ) {
      gap = 'older analyzer';
    } else if (
      options.since !== undefined &&
      entry.analyzedAt < options.since &&
      !madeWith(entry, options.rulesVersion)
    ) {
      gap = 'before start';
    } else if (options.retryFailed && entry.verdict === 'failed') {
      gap = 'failed';
    }
    if (!entry || gap) {
      const reason = gap ?? 'no verdict';
      coverage.gaps[reason] += 1;
      await options.onGap?.(object, reason);
    } else {
      coverage.covered += 1;
      coverage.verdicts[entry.verdict] += 1;
    }
  }
  for (const key of entries.keys()) if (!seen.has(key)) coverage.gone += 1;
  return coverage;
}
