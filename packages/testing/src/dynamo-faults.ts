import type {
  AttributeValue,
  BatchGetItemCommandInput,
  BatchGetItemCommandOutput,
  DynamoDBClient,
} from '@aws-sdk/client-dynamodb';

type Item = Record<string, AttributeValue>;

const sameKey = (key: Item, item: Item) =>
  Object.entries(key).every(
    ([name, value]) => JSON.stringify(item[name]) === JSON.stringify(value),
  );

/**
 * Makes the client's BatchGetItem answers leave keys unprocessed, as DynamoDB does when it
 * throttles or reaches 16 MB: of the n-th call's requested keys (n from 0), the first
 * `leave(n, requested)` of each table come back in UnprocessedKeys and their items are dropped
 * from Responses. Returns what removes the fault.
 */
export function leaveKeysUnprocessed(
  client: DynamoDBClient,
  leave: (call: number, requested: number) => number,
): () => void {
  const name = `leaveKeysUnprocessed-${Math.random().toString(36).slice(2)}`;
  let calls = 0;
  client.middlewareStack.add(
    (next, context) => async (args) => {
      const result = await next(args);
      if (context.commandName !== 'BatchGetItemCommand') return result;
      const input = args.input as BatchGetItemCommandInput;
      const output = result.output as BatchGetItemCommandOutput;
      const call = calls++;
      for (const [table, request] of Object.entries(input.RequestItems ?? {})) {
        const keys = request.Keys ?? [];
        const left = keys.slice(0, Math.min(keys.length, leave(call, keys.length)));
        if (left.length === 0) continue;
        output.Responses = {
          ...output.Responses,
          [table]: (output.Responses?.[table] ?? []).filter(
            (item) => !left.some((key) => sameKey(key, item)),
          ),
        };
        output.UnprocessedKeys = {
          ...output.UnprocessedKeys,
          [table]: {
            ...request,
            Keys: [...(output.UnprocessedKeys?.[table]?.Keys ?? []), ...left],
          },
        };
      }
      return result;
    },
    { step: 'initialize', name },
  );
  return () => {
    client.middlewareStack.remove(name);
  };
}
