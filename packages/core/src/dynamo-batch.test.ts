import { CreateTableCommand, PutItemCommand, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { leaveKeysUnprocessed, startDynamo, uniqueName, type Emulator } from '@binaryalert/testing';
import { batchGetItems } from './dynamo-batch';
import { matchTableDefinition } from './match-table';

// Real dynalite; the UnprocessedKeys DynamoDB answers with under load are injected into its
// responses at the client (dynalite never sends any).
describe('batchGetItems', () => {
  let dynamo: Emulator<DynamoDBClient>;
  let table: string;
  const key = (n: number) => ({ SHA256: { S: `sha-${n}` } });

  beforeAll(async () => {
    dynamo = await startDynamo();
  });
  afterAll(() => dynamo.stop());

  beforeEach(async () => {
    table = uniqueName('batch');
    await dynamo.client.send(new CreateTableCommand(matchTableDefinition(table)));
    // Items 0..249 exist with an even number only.
    for (let n = 0; n < 250; n += 2) {
      await dynamo.client.send(
        new PutItemCommand({ TableName: table, Item: { ...key(n), N: { N: String(n) } } }),
      );
    }
  });

  const numbers = (items: Record<string, { N?: string }>[]) =>
    items.map((item) => Number(item.N!.N)).sort((a, b) => a - b);

  it('reads more than 100 keys in requests of 100; keys without an item are simply absent', async () => {
    const keys = Array.from({ length: 250 }, (_, n) => key(n));

    const { items, unprocessed } = await batchGetItems(dynamo.client, table, keys);

    expect(numbers(items)).toEqual(Array.from({ length: 125 }, (_, n) => 2 * n));
    expect(unprocessed).toEqual([]);
  });

  it('asks again for the keys DynamoDB left unprocessed until every one is read', async () => {
    // The first two answers leave 30 keys each; then everything comes back.
    const remove = leaveKeysUnprocessed(dynamo.client, (call) => (call < 2 ? 30 : 0));
    try {
      const { items, unprocessed } = await batchGetItems(
        dynamo.client,
        table,
        Array.from({ length: 60 }, (_, n) => key(n)),
        { backoffMs: 1 },
      );

      expect(numbers(items)).toEqual(Array.from({ length: 30 }, (_, n) => 2 * n));
      expect(unprocessed).toEqual([]);
    } finally {
      remove();
    }
  });

  it('returns the keys still unprocessed after the last attempt, never a partial answer as complete', async () => {
    const remove = leaveKeysUnprocessed(dynamo.client, () => 4);
    try {
      const { items, unprocessed } = await batchGetItems(
        dynamo.client,
        table,
        Array.from({ length: 10 }, (_, n) => key(n)),
        { backoffMs: 1, maxAttempts: 3 },
      );

      // Each of the 3 answers left its first 4 requested keys: 0..3, then the same 0..3 again.
      expect(unprocessed).toEqual([key(0), key(1), key(2), key(3)]);
      expect(numbers(items)).toEqual([4, 6, 8]);
    } finally {
      remove();
    }
  });
});
