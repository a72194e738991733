import {
  QueryCommand,
  UpdateItemCommand,
  type AttributeValue,
  type DynamoDBClient,
} from '@aws-sdk/client-dynamodb';

/** What one analysis of a matching object contributes to the match table. */
export interface MatchRecord {
  sha256: string;
  md5: string;
  /** `S3:<bucket>:<key>` */
  objectId: string;
  /** `namespace:rule` of every matched rule (non-empty). */
  ruleIds: string[];
  lastModified: string;
  metadata: Record<string, string>;
  /** Rules that matched inside the object: where (path inside it) and the member's SHA-256. */
  memberMatches?: { ruleId: string; memberPath: string; memberSha256: string }[];
}

export interface MatchDecision {
  alert: boolean;
  /** Why (not) alert, for the logs. */
  reason:
    'first match' | 'new rule matched' | 'new object' | 'already known' | 'older analyzer version';
  /** Whether this call added the object to the running version's item. */
  recordedObject: boolean;
}

interface StoredItem {
  version: number;
  rules: Set<string>;
  objects: Set<string>;
}

function stringSet(value: AttributeValue | undefined): Set<string> {
  return new Set(value?.SS ?? []);
}

function toItem(raw: Record<string, AttributeValue>): StoredItem {
  return {
    version: Number(raw.AnalyzerVersion?.N ?? '0'),
    rules: stringSet(raw.MatchedRules),
    objects: stringSet(raw.S3Objects),
  };
}

/** The two newest items of a SHA256, newest first (strongly consistent). */
async function newestItems(dynamo: DynamoDBClient, table: string, sha256: string) {
  const response = await dynamo.send(
    new QueryCommand({
      TableName: table,
      KeyConditionExpression: 'SHA256 = :sha',
      ExpressionAttributeValues: { ':sha': { S: sha256 } },
      ProjectionExpression: 'AnalyzerVersion, MatchedRules, S3Objects',
      ScanIndexForward: false,
      Limit: 2,
      ConsistentRead: true,
    }),
  );
  return (response.Items ?? []).map(toItem);
}

/**
 * Atomically adds the object and rules to the running version's item, creating it when missing,
 * and returns the item's attributes as they were before (empty when it did not exist).
 */
async function addToVersion(
  dynamo: DynamoDBClient,
  table: string,
  record: MatchRecord,
  version: number,
): Promise<{ existed: boolean; rules: Set<string>; objects: Set<string> }> {
  const metadata: Record<string, AttributeValue> = {};
  for (const [name, value] of Object.entries(record.metadata)) metadata[name] = { S: value };
  // The same content holds the same members, so the first analysis's list stands for the item.
  const members = (record.memberMatches ?? []).map((m): AttributeValue => ({
    M: {
      RuleId: { S: m.ruleId },
      MemberPath: { S: m.memberPath },
      MemberSHA256: { S: m.memberSha256 },
    },
  }));
  const response = await dynamo.send(
    new UpdateItemCommand({
      TableName: table,
      Key: { SHA256: { S: record.sha256 }, AnalyzerVersion: { N: String(version) } },
      UpdateExpression:
        'ADD S3Objects :object, MatchedRules :rules ' +
        'SET MD5 = if_not_exists(MD5, :md5), ' +
        'S3LastModified = if_not_exists(S3LastModified, :lastModified), ' +
        'S3Metadata = if_not_exists(S3Metadata, :metadata)' +
        (members.length > 0 ? ', MatchedMembers = if_not_exists(MatchedMembers, :members)' : ''),
      ExpressionAttributeValues: {
        ':object': { SS: [record.objectId] },
        ':rules': { SS: [...new Set(record.ruleIds)] },
        ':md5': { S: record.md5 },
        ':lastModified': { S: record.lastModified },
        ':metadata': { M: metadata },
        ...(members.length > 0 ? { ':members': { L: members } } : {}),
      },
      ReturnValues: 'UPDATED_OLD',
    }),
  );
  const old = response.Attributes ?? {};
  return {
    existed: Object.keys(old).length > 0,
    rules: stringSet(old.MatchedRules),
    objects: stringSet(old.S3Objects),
  };
}

function hasNewRule(rules: string[], known: Set<string>): boolean {
  return rules.some((rule) => !known.has(rule));
}

/**
 * Records a matching object in the match table (keys SHA256 + AnalyzerVersion) and decides, as the
 * original BinaryAlert did, whether to alert: on a SHA256 never matched before; on a rule the newest
 * item lacks; on an object in neither the newest item nor the previous version's. Never when a newer
 * version already analyzed the SHA256. The object is added with one atomic ADD whose old value is
 * what the decision uses, so duplicate deliveries and concurrent analyzers of the same file never
 * both see the object as new.
 */
export async function recordMatch(
  dynamo: DynamoDBClient,
  table: string,
  record: MatchRecord,
  version: number,
): Promise<MatchDecision> {
  const items = await newestItems(dynamo, table, record.sha256);
  const before = await addToVersion(dynamo, table, record, version);
  const recordedObject = !before.objects.has(record.objectId);

  if (items[0] && items[0].version > version) {
    return { alert: false, reason: 'older analyzer version', recordedObject };
  }
  const olderItems = items.filter((item) => item.version < version);
  const previous = olderItems[0];

  if (!before.existed) {
    // The running version's first item for this SHA256: compare with the newest older version.
    if (!previous) return { alert: true, reason: 'first match', recordedObject };
    if (hasNewRule(record.ruleIds, previous.rules)) {
      return { alert: true, reason: 'new rule matched', recordedObject };
    }
    const known = new Set([...previous.objects, ...(olderItems[1]?.objects ?? [])]);
    if (!known.has(record.objectId)) return { alert: true, reason: 'new object', recordedObject };
    return { alert: false, reason: 'already known', recordedObject };
  }

  if (hasNewRule(record.ruleIds, before.rules)) {
    return { alert: true, reason: 'new rule matched', recordedObject };
  }
  if (recordedObject && !previous?.objects.has(record.objectId)) {
    return { alert: true, reason: 'new object', recordedObject };
  }
  return { alert: false, reason: 'already known', recordedObject };
}

/**
 * Takes the object back out of the running version's item, after an alert could not be sent, so the
 * retried message finds it new again and alerts then.
 */
export async function forgetObject(
  dynamo: DynamoDBClient,
  table: string,
  record: Pick<MatchRecord, 'sha256' | 'objectId'>,
  version: number,
): Promise<void> {
  await dynamo.send(
    new UpdateItemCommand({
      TableName: table,
      Key: { SHA256: { S: record.sha256 }, AnalyzerVersion: { N: String(version) } },
      UpdateExpression: 'DELETE S3Objects :object',
      ExpressionAttributeValues: { ':object': { SS: [record.objectId] } },
    }),
  );
}
