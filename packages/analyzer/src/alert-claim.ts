// The claim on one alert: a conditional write with an expiry on a DynamoDB item; taken, released.
import {
  ConditionalCheckFailedException,
  GetItemCommand,
  UpdateItemCommand,
  type AttributeValue,
  type DynamoDBClient,
  type UpdateItemCommandInput,
} from '@aws-sdk/client-dynamodb';

/** Where the claim of one alert is written: the object (a new copy) or the binary (new rules). */
export interface Claim {
  table: string;
  key: Record<string, AttributeValue>;
  token: string;
}

export type ClaimCondition = { expression: string; values: Record<string, AttributeValue> };

/** Takes the claim when it is free (none, or expired) and `extraCondition` holds; false if not. */
export async function takeClaim(
  dynamo: DynamoDBClient,
  claim: Claim,
  now: number,
  claimMs: number,
  extraCondition: ClaimCondition,
): Promise<boolean> {
  const free = '(attribute_not_exists(AlertClaimToken) OR AlertClaimExpiresAt < :now)';
  return updateClaimItem(dynamo, claim, {
    UpdateExpression: 'SET AlertClaimToken = :token, AlertClaimExpiresAt = :expires',
    ConditionExpression: `${free} AND (${extraCondition.expression})`,
    ExpressionAttributeValues: {
      ':token': { S: claim.token },
      ':expires': { N: String(now + claimMs) },
      ':now': { N: String(now) },
      ...extraCondition.values,
    },
  });
}

/** Pushes the claim's expiry to `now + claimMs` while we still hold it; false if we do not. */
export async function renewClaim(
  dynamo: DynamoDBClient,
  claim: Claim,
  now: number,
  claimMs: number,
): Promise<boolean> {
  return updateClaimItem(dynamo, claim, {
    UpdateExpression: 'SET AlertClaimExpiresAt = :expires',
    ConditionExpression: 'AlertClaimToken = :token',
    ExpressionAttributeValues: {
      ':token': { S: claim.token },
      ':expires': { N: String(now + claimMs) },
    },
  });
}

/**
 * Keeps a claim alive while its holder works (every `everyMs`, the expiry moves `claimMs` ahead)
 * until the returned function is called. A live holder however slow keeps it; a dead one renews
 * nothing, so its claim expires `claimMs` after its last renewal. A failed renewal is tried again
 * at the next one.
 */
export function holdClaim(
  dynamo: DynamoDBClient,
  claim: Claim,
  now: () => number,
  claimMs: number,
  everyMs: number,
): () => void {
  const timer = setInterval(() => {
    renewClaim(dynamo, claim, now(), claimMs).catch(() => undefined);
  }, everyMs);
  timer.unref(); // the holder's own work keeps the process alive, not its lease
  return () => clearInterval(timer);
}

/** Gives a claim back (after a failed publish) unless someone else holds it by now. */
export async function releaseClaim(dynamo: DynamoDBClient, claim: Claim): Promise<void> {
  await updateClaimItem(dynamo, claim, {
    UpdateExpression: 'REMOVE AlertClaimToken, AlertClaimExpiresAt',
    ConditionExpression: 'AlertClaimToken = :token',
    ExpressionAttributeValues: { ':token': { S: claim.token } },
  });
}

/** One conditional update of the claim's item: false when its condition did not hold. */
async function updateClaimItem(
  dynamo: DynamoDBClient,
  claim: Claim,
  update: Pick<
    UpdateItemCommandInput,
    'UpdateExpression' | 'ConditionExpression' | 'ExpressionAttributeValues'
  >,
): Promise<boolean> {
  try {
    await dynamo.send(new UpdateItemCommand({ TableName: claim.table, Key: claim.key, ...update }));
    return true;
  } catch (error) {
    if (isConditionFailure(error)) return false;
    throw error;
  }
}

/** When the claim on an item expires (epoch ms), if it holds one. */
export async function claimExpiry(
  dynamo: DynamoDBClient,
  claim: Claim,
): Promise<number | undefined> {
  const { Item } = await dynamo.send(
    new GetItemCommand({
      TableName: claim.table,
      Key: claim.key,
      ProjectionExpression: 'AlertClaimExpiresAt',
      ConsistentRead: true,
    }),
  );
  const expires = Number(Item?.AlertClaimExpiresAt?.N);
  return Number.isFinite(expires) ? expires : undefined;
}

/** The object has not been recorded as a copy of this binary by whoever finished before us. */
export function stillNewCopy(sha256: string): ClaimCondition {
  return {
    expression: 'attribute_not_exists(MatchAlertSha256) OR MatchAlertSha256 <> :sha',
    values: { ':sha': { S: sha256 } },
  };
}

/**
 * Pairs a claim's condition names at most: DynamoDB refuses a condition over 4 KB (about 110 such
 * terms), which dynalite does not check. A release adding hundreds of rules a known binary matches
 * would otherwise fail its alert on every retry.
 */
const MAX_CLAIM_CONDITION_PAIRS = 64;

/**
 * At least one of the pairs is still not alerted (another copy may have finished meanwhile). Of
 * many pairs only the first MAX_CLAIM_CONDITION_PAIRS are named: when those were all alerted
 * meanwhile the claim is refused, and the retry's decision names only the pairs still new.
 */
export function stillNewRules(pairs: string[]): ClaimCondition {
  const values: Record<string, AttributeValue> = {};
  const missing = pairs.slice(0, MAX_CLAIM_CONDITION_PAIRS).map((pair, index) => {
    values[`:pair${index}`] = { S: pair };
    return `NOT contains(AlertedRules, :pair${index})`;
  });
  return { expression: ['attribute_not_exists(AlertedRules)', ...missing].join(' OR '), values };
}

function isConditionFailure(error: unknown): boolean {
  return (
    error instanceof ConditionalCheckFailedException ||
    (error as { name?: string }).name === 'ConditionalCheckFailedException'
  );
}
