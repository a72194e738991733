import { randomBytes } from 'node:crypto';
import {
  CreateTableCommand,
  DynamoDBClient,
  GetItemCommand,
  PutItemCommand,
} from '@aws-sdk/client-dynamodb';
import { clientConfig, startDynamo, uniqueName, type Emulator } from '@binaryalert/testing';
import { DYNAMO_CLIENT_OPTIONS } from './deps';

describe("the analyzer's DynamoDB client", () => {
  let dynamo: Emulator<DynamoDBClient>;
  beforeAll(async () => {
    dynamo = await startDynamo();
  });
  afterAll(() => dynamo.stop());

  it('reads binary attributes back byte for byte with its base64 decoder', async () => {
    const client = new DynamoDBClient({
      ...clientConfig(dynamo.endpoint),
      ...DYNAMO_CLIENT_OPTIONS,
    });
    const table = uniqueName('binary');
    await client.send(
      new CreateTableCommand({
        TableName: table,
        KeySchema: [{ AttributeName: 'K', KeyType: 'HASH' }],
        AttributeDefinitions: [{ AttributeName: 'K', AttributeType: 'S' }],
        BillingMode: 'PAY_PER_REQUEST',
      }),
    );
    // Every byte value, odd lengths (base64 padding of one and two), and a signature-sized blob.
    const blobs = [
      Buffer.from(Array.from({ length: 256 }, (_, i) => i)),
      randomBytes(1),
      randomBytes(2),
      randomBytes(65_537),
    ];
    try {
      for (const [index, blob] of blobs.entries()) {
        await client.send(
          new PutItemCommand({ TableName: table, Item: { K: { S: `${index}` }, B: { B: blob } } }),
        );
        const { Item } = await client.send(
          new GetItemCommand({ TableName: table, Key: { K: { S: `${index}` } } }),
        );
        expect(Item?.B?.B).toBeInstanceOf(Uint8Array);
        expect(Buffer.from(Item!.B!.B!).equals(blob)).toBe(true);
      }
    } finally {
      client.destroy();
    }
  });
});
