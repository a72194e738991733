import {
  BatchGetItemCommand,
  type AttributeValue,
  type DynamoDBClient,
} from '@aws-sdk/client-dynamodb';

type Item = Record<string, AttributeValue>;

/** DynamoDB's limit of keys in one BatchGetItem request. */
const KEYS_PER_REQUEST = 100;

export interface BatchGetOptions {
  consistentRead?: boolean;
  projection?: string;
  names?: Record<string, string>;
  /** Requests per chunk of 100 keys, the first included (default 5; Infinity: until all are read). */
  maxAttempts?: number;
  /** Wait before asking again for UnprocessedKeys: this, doubled each time, at most 2 s. */
  backoffMs?: number;
}

/**
 * Reads items of one table by key: BatchGetItem, 100 keys a request, asking again (with backoff)
 * for the keys DynamoDB left unprocessed (throttling, the 16 MB response limit), at most
 * `maxAttempts` times. Returns the items found and the keys still unprocessed, which the caller
 * reads another way or treats as unknown; a key with no item is simply absent from `items`.
 */
export async function batchGetItems(
  dynamo: DynamoDBClient,
  table: string,
  keys: Item[],
  options: BatchGetOptions = {},
): Promise<{ items: Item[]; unprocessed: Item[] }> {
  const maxAttempts = options.maxAttempts ?? 5;
  const backoffMs = options.backoffMs ?? 50;
  const items: Item[] = [];
  const unprocessed: Item[] = [];
  for (let offset = 0; offset < keys.length; offset += KEYS_PER_REQUEST) {
    let pending = keys.slice(offset, offset + KEYS_PER_REQUEST);
    for (let attempt = 0; pending.length > 0 && attempt < maxAttempts; attempt++) {
      if (attempt > 0) {
        await new Promise((resolve) =>
          setTimeout(resolve, Math.min(2000, backoffMs * 2 ** (attempt - 1))),
        );
      }
      const response = await dynamo.send(
        new BatchGetItemCommand({
          RequestItems: {
            [table]: {
              Keys: pending,
              ...(options.consistentRead ? { ConsistentRead: true } : {}),
              ...(options.projection ? { ProjectionExpression: options.projection } : {}),
              ...(options.names ? { ExpressionAttributeNames: options.names } : {}),
            },
          },
        }),
      );
      items.push(...(response.Responses?.[table] ?? []));
      pending = response.UnprocessedKeys?.[table]?.Keys ?? [];
    }
    unprocessed.push(...pending);
  }
  return { items, unprocessed };
}
