import {
  BatchExecuteStatementCommand,
  ConditionalCheckFailedException,
  GetItemCommand,
  UpdateItemCommand,
  type AttributeValue,
  type DynamoDBClient,
} from '@aws-sdk/client-dynamodb';
import {
  hasVerdict,
  verdictAttributes,
  verdictFromItem,
  matchedStringIds,
  ruleId,
  type FileAnalysis,
  type LedgerRuleMatch,
  type S3ObjectRef,
  type VerdictReason,
  type VerdictRecord,
} from '@binaryalert/core';
import { ScanError, ScanTimeoutError, YaraError } from '@binaryalert/yara';
import { DownloadError, MatchBookkeepingError, VerdictLedgerError } from './errors';

/** What one object's analysis found, before it becomes a ledger record. */
export type LedgerOutcome =
  | {
      status: 'analyzed';
      result: { analysis: FileAnalysis };
      object: S3ObjectFacts;
      /** Set when some content could not be scanned (the verdict is then `partial`). */
      unscanned?: VerdictReason;
      decision?: { alert: boolean; reason: string };
    }
  | { status: 'skipped'; reason: VerdictReason; object?: Partial<S3ObjectFacts> }
  | { status: 'failed'; error: unknown };

/** What S3 said about the object the analyzer read. */
export interface S3ObjectFacts {
  size: number;
  lastModified: string;
  etag?: string;
  versionId?: string;
}

/** Why an analysis failed, as a ledger reason. */
export function failureReason(error: unknown): VerdictReason {
  if (error instanceof ScanTimeoutError) return 'scan-timeout';
  if (error instanceof ScanError || error instanceof YaraError) return 'scan-error';
  if (error instanceof DownloadError) return 'download-error';
  if (error instanceof MatchBookkeepingError || error instanceof VerdictLedgerError) {
    return 'bookkeeping-error';
  }
  return 'internal-error';
}

function ledgerMatches(analysis: FileAnalysis): LedgerRuleMatch[] {
  return analysis.matches.map((match) => ({
    id: ruleId(match),
    tags: [...match.tags],
    meta: { ...match.meta },
    strings: matchedStringIds(match),
    ...(match.member ? { memberPath: match.member.path, memberSha256: match.member.sha256 } : {}),
  }));
}

/** When DynamoDB's TTL may delete a verdict written at `analyzedAt` (none with ttlDays 0). */
export function ledgerExpiry(analyzedAt: Date, ttlDays: number): number | undefined {
  return ttlDays > 0 ? Math.floor(analyzedAt.getTime() / 1000) + ttlDays * 86_400 : undefined;
}

/**
 * The ledger record of one finished object. `analyzedAt` is when the analyzer began reading it:
 * a later read saw content at least as new, so it orders the writes.
 */
export function verdictRecord(
  ref: S3ObjectRef,
  outcome: LedgerOutcome,
  context: { analyzedAt: Date; analyzerVersion: number; rulesVersion?: string; ttlDays: number },
): VerdictRecord {
  const base = {
    bucket: ref.bucket,
    key: ref.key,
    analyzedAt: context.analyzedAt.toISOString(),
    analyzerVersion: context.analyzerVersion,
    ...(context.rulesVersion ? { rulesVersion: context.rulesVersion } : {}),
    ...(context.ttlDays > 0
      ? { expiresAt: ledgerExpiry(context.analyzedAt, context.ttlDays) }
      : {}),
    rules: [] as string[],
    matches: [] as LedgerRuleMatch[],
  };
  switch (outcome.status) {
    case 'analyzed': {
      const { analysis } = outcome.result;
      const matches = ledgerMatches(analysis);
      const verdict = outcome.unscanned ? 'partial' : matches.length > 0 ? 'matched' : 'clean';
      return {
        ...base,
        verdict,
        ...(outcome.unscanned ? { reason: outcome.unscanned } : {}),
        sha256: analysis.sha256,
        md5: analysis.md5,
        ...outcome.object,
        rules: matches.map((match) => match.id),
        matches,
        ...(outcome.decision
          ? { alerted: outcome.decision.alert, alertReason: outcome.decision.reason }
          : {}),
      };
    }
    case 'skipped':
      return {
        ...base,
        verdict: 'skipped',
        reason: outcome.reason,
        ...(ref.size === undefined ? {} : { size: ref.size }),
        ...outcome.object,
      };
    case 'failed':
      return { ...base, verdict: 'failed', reason: failureReason(outcome.error) };
  }
}

/**
 * What a carried verdict leaves as the item has it: the facts of the bytes (the write happens only
 * while the item holds the same SHA-256). The fewer attributes, the cheaper the request: a delta
 * re-scan writes one per object.
 */
const CARRY_KEEPS = new Set(['SHA256', 'MD5', 'Size', 'ETag', 'VersionId', 'LastModified']);

export type VerdictWrite =
  { written: true; previous?: VerdictRecord } | { written: false; reason: 'newer verdict exists' };

/**
 * Writes an object's verdict unless the ledger already holds a newer one: one conditional UpdateItem,
 * so a slow analysis (or an older analyzer) that finishes after a newer one can never overwrite
 * it. Newer means a later `analyzedAt`; for equal times, a higher analyzer version. Returns the
 * verdict it replaced when asked (`returnPrevious`: the whole old item comes back, its content
 * signature included).
 */
export async function recordVerdict(
  dynamo: DynamoDBClient,
  table: string,
  record: VerdictRecord,
  options: { returnPrevious?: boolean } = {},
): Promise<VerdictWrite> {
  // An update, not a put: the alert decision keeps each object's alert state on the same item.
  const names: Record<string, string> = {
    '#at': 'AnalyzedAt',
    '#version': 'AnalyzerVersion',
  };
  const values: Record<string, AttributeValue> = {
    ':at': { S: record.analyzedAt },
    ':version': { N: String(record.analyzerVersion) },
  };
  const set: string[] = [];
  const remove: string[] = [];
  Object.entries(verdictAttributes(record)).forEach(([name, value], index) => {
    if (name === 'Bucket' || name === 'Key') return;
    names[`#a${index}`] = name;
    if (value === undefined) remove.push(`#a${index}`);
    else {
      values[`:a${index}`] = value;
      set.push(`#a${index} = :a${index}`);
    }
  });
  try {
    const response = await dynamo.send(
      new UpdateItemCommand({
        TableName: table,
        Key: { Bucket: { S: record.bucket }, Key: { S: record.key } },
        UpdateExpression: `SET ${set.join(', ')}${remove.length ? ` REMOVE ${remove.join(', ')}` : ''}`,
        ConditionExpression:
          'attribute_not_exists(#at) OR #at < :at OR (#at = :at AND #version <= :version)',
        ExpressionAttributeNames: names,
        ExpressionAttributeValues: values,
        ReturnValues: options.returnPrevious ? 'ALL_OLD' : 'NONE',
      }),
    );
    const old = response.Attributes;
    return old && Object.keys(old).length > 0
      ? { written: true, previous: verdictFromItem(old) }
      : { written: true };
  } catch (error) {
    if (error instanceof ConditionalCheckFailedException) {
      return { written: false, reason: 'newer verdict exists' };
    }
    throw new VerdictLedgerError('could not record the verdict in DynamoDB', { cause: error });
  }
}

/** A carried verdict's write: as recordVerdict's, or failed (the object is retried). */
export type CarryWrite = VerdictWrite | { written: false; reason: 'failed'; error: Error };

/** BatchExecuteStatement's limit. */
const STATEMENTS_PER_BATCH = 25;

/** A PartiQL identifier: double quotes, a quote inside doubled. */
const quoted = (name: string): string => `"${name.replace(/"/g, '""')}"`;

/**
 * The conditional UPDATE that carries a verdict over to a new release, as recordVerdict's write
 * but only while the item holds the record's bytes (same SHA-256) and sending only what a carry
 * changes (CARRY_KEEPS stay as the item has them).
 */
export function carryStatement(
  table: string,
  record: VerdictRecord,
): { Statement: string; Parameters: AttributeValue[] } {
  const clauses: string[] = [];
  const parameters: AttributeValue[] = [];
  for (const [name, value] of Object.entries(verdictAttributes(record))) {
    if (name === 'Bucket' || name === 'Key' || CARRY_KEEPS.has(name)) continue;
    if (value === undefined) clauses.push(`REMOVE ${quoted(name)}`);
    else {
      clauses.push(`SET ${quoted(name)} = ?`);
      parameters.push(value);
    }
  }
  parameters.push(
    { S: record.bucket },
    { S: record.key },
    { S: record.sha256 ?? '' },
    { S: record.analyzedAt },
    { S: record.analyzedAt },
    { N: String(record.analyzerVersion) },
  );
  return {
    Statement:
      `UPDATE ${quoted(table)} ${clauses.join(' ')} WHERE "Bucket" = ? AND "Key" = ? AND ` +
      '"SHA256" = ? AND ("AnalyzedAt" < ? OR ("AnalyzedAt" = ? AND "AnalyzerVersion" <= ?))',
    Parameters: parameters,
  };
}

/**
 * Writes verdicts carried over to a new release, 25 to a request (BatchExecuteStatement): a delta
 * re-scan carries most objects, and one request each would cost more than deciding them. Each
 * write stands alone (none is undone when another fails); the results are in the records' order.
 */
export async function recordCarriedVerdicts(
  dynamo: DynamoDBClient,
  table: string,
  records: VerdictRecord[],
): Promise<CarryWrite[]> {
  const batches: VerdictRecord[][] = [];
  for (let start = 0; start < records.length; start += STATEMENTS_PER_BATCH) {
    batches.push(records.slice(start, start + STATEMENTS_PER_BATCH));
  }
  const results = await Promise.all(
    batches.map(async (batch): Promise<CarryWrite[]> => {
      try {
        const { Responses = [] } = await dynamo.send(
          new BatchExecuteStatementCommand({
            Statements: batch.map((record) => carryStatement(table, record)),
          }),
        );
        return batch.map((_record, index): CarryWrite => {
          const error = Responses[index]?.Error;
          if (!Responses[index]) {
            return {
              written: false,
              reason: 'failed',
              error: new VerdictLedgerError('no response'),
            };
          }
          if (!error) return { written: true };
          if (error.Code === 'ConditionalCheckFailed') {
            return { written: false, reason: 'newer verdict exists' };
          }
          return {
            written: false,
            reason: 'failed',
            error: new VerdictLedgerError(
              `could not record the carried verdict: ${error.Code ?? '?'} ${error.Message ?? ''}`,
            ),
          };
        });
      } catch (cause) {
        const error = new VerdictLedgerError('could not record the carried verdicts in DynamoDB', {
          cause,
        });
        return batch.map(() => ({ written: false, reason: 'failed', error }));
      }
    }),
  );
  return results.flat();
}

/**
 * The ledger's current verdict of one object (strongly consistent), or undefined: e.g. for an
 * alert decision that depends on what the object was before.
 */
export async function readVerdict(
  dynamo: DynamoDBClient,
  table: string,
  object: Pick<S3ObjectRef, 'bucket' | 'key'>,
): Promise<VerdictRecord | undefined> {
  const { Item } = await dynamo.send(
    new GetItemCommand({
      TableName: table,
      Key: { Bucket: { S: object.bucket }, Key: { S: object.key } },
      ConsistentRead: true,
    }),
  );
  return Item && hasVerdict(Item) ? verdictFromItem(Item) : undefined;
}
