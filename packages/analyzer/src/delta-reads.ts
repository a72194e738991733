// The delta re-scans' DynamoDB reads and writes: ledger verdicts and per-binary delta outcomes.
import {
  ConditionalCheckFailedException,
  GetItemCommand,
  UpdateItemCommand,
  type DynamoDBClient,
} from '@aws-sdk/client-dynamodb';
import {
  batchGetItems,
  excludedByPrefilter,
  hasVerdict,
  objectId,
  verdictFromItem,
  type S3ObjectRef,
  type VerdictRecord,
} from '@binaryalert/core';
import type { AnalyzerDeps, AnalyzerSettings } from './analyze';
import { buildsOn } from './delta-carry';

/** What the delta re-scans of one invocation share. */
export interface DeltaRescans {
  /** Ledger verdicts by object id; null: no verdict; absent: not read (read per object). */
  verdicts: Map<string, VerdictRecord | null>;
  /** Delta outcomes of the current release known before the invocation, by SHA-256. */
  outcomes: Map<string, boolean>;
  /** This invocation's delta scans by SHA-256 (undefined: the scan could not decide). */
  scans: Map<string, Promise<boolean | undefined>>;
}

/** No shared reads: every object reads for itself. */
export const emptyRescans = (): DeltaRescans => ({
  verdicts: new Map(),
  outcomes: new Map(),
  scans: new Map(),
});

/**
 * Reads, for the delta re-scans of one invocation, the objects' ledger verdicts (one
 * BatchGetItem per 100 objects) and the delta outcomes of their binaries (one per 100 distinct
 * SHA-256); never throws (what it could not read is read per object later).
 */
export async function prepareDeltaRescans(
  deps: AnalyzerDeps,
  settings: AnalyzerSettings,
  refs: S3ObjectRef[],
): Promise<DeltaRescans> {
  const shared = emptyRescans();
  if (refs.length === 0) return shared;
  try {
    const { manifest } = await deps.rules.current();
    const delta = manifest.delta;
    if (!delta) return shared;
    const keys = new Map(
      refs.map((ref) => [
        objectId(ref.bucket, ref.key),
        { Bucket: { S: ref.bucket }, Key: { S: ref.key } },
      ]),
    );
    const ledger = await batchGetItems(deps.dynamo, settings.verdictTable, [...keys.values()], {
      consistentRead: true,
    });
    const unread = new Set(ledger.unprocessed.map((key) => objectId(key.Bucket!.S!, key.Key!.S!)));
    for (const id of keys.keys()) if (!unread.has(id)) shared.verdicts.set(id, null);
    for (const item of ledger.items) {
      if (!hasVerdict(item)) continue;
      const record = verdictFromItem(item);
      shared.verdicts.set(objectId(record.bucket, record.key), record);
    }
    if (delta.namespaces.length === 0 || delta.usesExternals) return shared;
    const binaries = new Set<string>();
    for (const record of shared.verdicts.values()) {
      if (
        record?.sha256 &&
        buildsOn(record, manifest.version, delta.baseVersion) &&
        // Decided by the content prefilter: its outcome is not needed.
        !excludedByPrefilter(record.contentSignature, delta.prefilter)
      ) {
        binaries.add(record.sha256);
      }
    }
    const known = await batchGetItems(
      deps.dynamo,
      settings.matchesTable,
      [...binaries].map((sha256) => ({ SHA256: { S: sha256 } })),
      { consistentRead: true, projection: 'SHA256, DeltaScanVersion, DeltaScanMatched' },
    );
    for (const item of known.items) {
      const matched = item.DeltaScanMatched?.BOOL;
      if (
        item.SHA256?.S &&
        item.DeltaScanVersion?.N === String(manifest.version) &&
        matched !== undefined
      ) {
        shared.outcomes.set(item.SHA256.S, matched);
      }
    }
  } catch (error) {
    deps.log.warn('could not read the delta re-scans in batches; reading per object', { error });
  }
  return shared;
}

/** What the delta of `rulesVersion` found in these bytes, when some analyzer recorded it. */
export async function knownDeltaOutcome(
  dynamo: DynamoDBClient,
  table: string,
  sha256: string,
  rulesVersion: number,
): Promise<boolean | undefined> {
  const { Item } = await dynamo.send(
    new GetItemCommand({
      TableName: table,
      Key: { SHA256: { S: sha256 } },
      ProjectionExpression: 'DeltaScanVersion, DeltaScanMatched',
      ConsistentRead: true,
    }),
  );
  if (Item?.DeltaScanVersion?.N !== String(rulesVersion)) return undefined;
  return Item.DeltaScanMatched?.BOOL;
}

/** Records the delta's outcome for these bytes (never over a newer release's). */
export async function rememberDeltaOutcome(
  dynamo: DynamoDBClient,
  table: string,
  sha256: string,
  rulesVersion: number,
  matched: boolean,
): Promise<void> {
  try {
    await dynamo.send(
      new UpdateItemCommand({
        TableName: table,
        Key: { SHA256: { S: sha256 } },
        UpdateExpression: 'SET DeltaScanVersion = :version, DeltaScanMatched = :matched',
        ConditionExpression:
          'attribute_not_exists(DeltaScanVersion) OR DeltaScanVersion <= :version',
        ExpressionAttributeValues: {
          ':version': { N: String(rulesVersion) },
          ':matched': { BOOL: matched },
        },
      }),
    );
  } catch (error) {
    if (!(error instanceof ConditionalCheckFailedException)) throw error;
  }
}
