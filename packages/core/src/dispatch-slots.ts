import {
  ConditionalCheckFailedException,
  ScanCommand,
  UpdateItemCommand,
  type AttributeValue,
  type CreateTableCommandInput,
  type DynamoDBClient,
} from '@aws-sdk/client-dynamodb';

/**
 * The dispatcher's slots, as terraform/dynamo.tf defines the table: one item per slot number
 * (`Slot`) naming who holds it (`Holder`) and until when (`HeldUntil`, epoch seconds). An
 * analyzer invocation started by the dispatcher holds one slot from before its messages are
 * received until it ends, so the analyzers in flight across all dispatcher runs never exceed the
 * number of slots. A slot whose analyzer never released it (dropped event, crash) frees itself at
 * `HeldUntil`. The local stack and the tests create the table from here.
 */
export function dispatchSlotsTableDefinition(tableName: string): CreateTableCommandInput {
  return {
    TableName: tableName,
    AttributeDefinitions: [{ AttributeName: 'Slot', AttributeType: 'N' }],
    KeySchema: [{ AttributeName: 'Slot', KeyType: 'HASH' }],
    BillingMode: 'PAY_PER_REQUEST',
  };
}

/** One held slot; the dispatcher passes it to the analyzer, which releases it when done. */
export interface SlotLease {
  slot: number;
  holder: string;
}

/** The slots held right now (HeldUntil in the future), read with a strongly consistent scan. */
export async function heldSlots(
  dynamo: DynamoDBClient,
  table: string,
  nowMs: number,
): Promise<Set<number>> {
  const held = new Set<number>();
  let startKey: Record<string, AttributeValue> | undefined;
  do {
    const page = await dynamo.send(
      new ScanCommand({ TableName: table, ConsistentRead: true, ExclusiveStartKey: startKey }),
    );
    for (const item of page.Items ?? []) {
      if (Number(item.HeldUntil?.N ?? 0) * 1000 > nowMs) held.add(Number(item.Slot?.N));
    }
    startKey = page.LastEvaluatedKey;
  } while (startKey);
  return held;
}

/**
 * Takes `slot` for `leaseSeconds` if it is free (never held, or its hold ran out). Returns false
 * when another dispatcher got it first.
 */
export async function takeSlot(
  dynamo: DynamoDBClient,
  table: string,
  lease: SlotLease,
  leaseSeconds: number,
  nowMs: number,
): Promise<boolean> {
  const now = Math.floor(nowMs / 1000);
  try {
    await dynamo.send(
      new UpdateItemCommand({
        TableName: table,
        Key: { Slot: { N: String(lease.slot) } },
        UpdateExpression: 'SET HeldUntil = :until, Holder = :holder',
        ConditionExpression: 'attribute_not_exists(HeldUntil) OR HeldUntil <= :now',
        ExpressionAttributeValues: {
          ':until': { N: String(now + Math.ceil(leaseSeconds)) },
          ':holder': { S: lease.holder },
          ':now': { N: String(now) },
        },
      }),
    );
    return true;
  } catch (error) {
    if (error instanceof ConditionalCheckFailedException) return false;
    throw error;
  }
}

/**
 * Frees a slot if `lease` still holds it (a slot that ran out and was taken again is left alone).
 * Returns whether it was released.
 */
export async function releaseSlot(
  dynamo: DynamoDBClient,
  table: string,
  lease: SlotLease,
): Promise<boolean> {
  try {
    await dynamo.send(
      new UpdateItemCommand({
        TableName: table,
        Key: { Slot: { N: String(lease.slot) } },
        UpdateExpression: 'SET HeldUntil = :free REMOVE Holder',
        ConditionExpression: 'Holder = :holder',
        ExpressionAttributeValues: { ':free': { N: '0' }, ':holder': { S: lease.holder } },
      }),
    );
    return true;
  } catch (error) {
    if (error instanceof ConditionalCheckFailedException) return false;
    throw error;
  }
}
