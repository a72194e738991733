// The delta re-scans' DynamoDB reads and writes: ledger verdicts and per-binary delta outcomes.
import {
  ConditionalCheckFailedException,
  GetItemCommand,
  UpdateItemCommand,
  type AttributeValue,
  type DynamoDBClient,
} from '@aws-sdk/client-dynamodb';
import {
  batchGetItems,
  CONTENT_SIGNATURE_ATTRIBUTE,
  hasVerdict,
  objectId,
  verdictFromItem,
  type S3ObjectRef,
  type VerdictRecord,
} from '@binaryalert/core';
import type { AnalyzerDeps, AnalyzerSettings } from './analyze';
import { buildsOn } from './delta-carry';
import type { ActiveRules } from './rules-release';

/** What the delta re-scans of one invocation share. */
export interface DeltaRescans {
  /**
   * The release the invocation's delta re-scans are decided with, read once: the outcomes below
   * are its delta's, so a release loaded half-way through must not decide the others.
   */
  rules?: ActiveRules;
  /** Ledger verdicts by object id; null: no verdict; absent: not read (read per object). */
  verdicts: Map<string, VerdictRecord | null>;
  /** Delta outcomes of the current release known before the invocation, by SHA-256. */
  outcomes: Map<string, boolean>;
  /** Content signatures by SHA-256; null: the binary has none; absent: not read. */
  signatures: Map<string, Uint8Array | null>;
  /** This invocation's delta scans by SHA-256 (undefined: the scan could not decide). */
  scans: Map<string, Promise<boolean | undefined>>;
}

/** No shared reads: every object reads for itself. */
export const emptyRescans = (): DeltaRescans => ({
  verdicts: new Map(),
  outcomes: new Map(),
  signatures: new Map(),
  scans: new Map(),
});

/**
 * Reads, for the delta re-scans of one invocation, the objects' ledger verdicts (one
 * BatchGetItem per 100 objects), then their binaries' content signatures and delta outcomes (one
 * per 100 distinct SHA-256); never throws (what it could not read is read per object later).
 */
export async function prepareDeltaRescans(
  deps: AnalyzerDeps,
  settings: AnalyzerSettings,
  refs: S3ObjectRef[],
): Promise<DeltaRescans> {
  const shared = emptyRescans();
  if (refs.length === 0) return shared;
  try {
    // The release the re-scan was started for (or a newer one), not one loaded before it.
    shared.rules = await deps.rules.current({ latest: true });
    const { manifest } = shared.rules;
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
    if (delta.namespaces.length === 0) return shared;
    const binaries = new Set<string>();
    for (const record of shared.verdicts.values()) {
      if (record?.sha256 && buildsOn(record, manifest.version, delta.baseVersion)) {
        binaries.add(record.sha256);
      }
    }
    if (binaries.size === 0) return shared;
    const known = await batchGetItems(
      deps.dynamo,
      settings.matchesTable,
      [...binaries].map((sha256) => ({ SHA256: { S: sha256 } })),
      { consistentRead: true, projection: BINARY_FACTS },
    );
    const unreadBinaries = new Set(known.unprocessed.map((key) => key.SHA256!.S!));
    for (const sha256 of binaries)
      if (!unreadBinaries.has(sha256)) shared.signatures.set(sha256, null);
    for (const item of known.items) {
      const sha256 = item.SHA256?.S;
      if (!sha256) continue;
      const facts = binaryFacts(item, manifest.version);
      shared.signatures.set(sha256, facts.signature ?? null);
      // Outcomes of delta rules that read per-object externals hold for one key only.
      if (facts.matched !== undefined && !delta.usesExternals)
        shared.outcomes.set(sha256, facts.matched);
    }
  } catch (error) {
    deps.log.warn('could not read the delta re-scans in batches; reading per object', { error });
  }
  return shared;
}

/** What a binary's match-table item tells a delta re-scan. */
const BINARY_FACTS = `SHA256, DeltaScanVersion, DeltaScanMatched, ${CONTENT_SIGNATURE_ATTRIBUTE}`;

interface BinaryFacts {
  /** Its content signature, when a full analysis recorded one. */
  signature?: Uint8Array;
  /** What the delta of `rulesVersion` found in these bytes, when some analyzer recorded it. */
  matched?: boolean;
}

function binaryFacts(item: Record<string, AttributeValue>, rulesVersion: number): BinaryFacts {
  const signature = item[CONTENT_SIGNATURE_ATTRIBUTE]?.B;
  const matched =
    item.DeltaScanVersion?.N === String(rulesVersion) ? item.DeltaScanMatched?.BOOL : undefined;
  return {
    ...(signature ? { signature } : {}),
    ...(matched === undefined ? {} : { matched }),
  };
}

/** A binary's facts (prepareDeltaRescans's, for one that was not read with the batch). */
export async function readBinaryFacts(
  dynamo: DynamoDBClient,
  table: string,
  sha256: string,
  rulesVersion: number,
): Promise<BinaryFacts> {
  const { Item } = await dynamo.send(
    new GetItemCommand({
      TableName: table,
      Key: { SHA256: { S: sha256 } },
      ProjectionExpression: BINARY_FACTS,
      ConsistentRead: true,
    }),
  );
  return Item ? binaryFacts(Item, rulesVersion) : {};
}

/**
 * Records a binary's content signature (what a full analysis that scanned every byte inside
 * computed) on its match-table item, for later delta re-scans of any key holding these bytes.
 */
export async function recordContentSignature(
  dynamo: DynamoDBClient,
  table: string,
  sha256: string,
  signature: Uint8Array,
): Promise<void> {
  await dynamo.send(
    new UpdateItemCommand({
      TableName: table,
      Key: { SHA256: { S: sha256 } },
      UpdateExpression: 'SET #signature = :signature',
      ExpressionAttributeNames: { '#signature': CONTENT_SIGNATURE_ATTRIBUTE },
      ExpressionAttributeValues: { ':signature': { B: signature } },
    }),
  );
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
