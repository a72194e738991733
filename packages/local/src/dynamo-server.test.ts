import {
  BatchExecuteStatementCommand,
  CreateTableCommand,
  DeleteTableCommand,
  DescribeTableCommand,
  DeleteItemCommand,
  GetItemCommand,
  ListTablesCommand,
  PutItemCommand,
  QueryCommand,
  UpdateItemCommand,
  UpdateTableCommand,
  type DynamoDBClient,
} from '@aws-sdk/client-dynamodb';
import { once } from 'node:events';
import { request, type IncomingHttpHeaders } from 'node:http';
import { connect } from 'node:net';
import { startDynamo, uniqueName, type Emulator } from '@binaryalert/testing';

// The server keeps ACTIVE table descriptions in memory (dynalite would read one from LevelDB per
// request): every change to a table must still show at once.
describe('the local DynamoDB server', () => {
  let dynamo: Emulator<DynamoDBClient>;

  beforeAll(async () => {
    dynamo = await startDynamo();
  });
  afterAll(() => dynamo.stop());

  const waitActive = async (table: string) => {
    for (;;) {
      const { Table } = await dynamo.client.send(new DescribeTableCommand({ TableName: table }));
      if (Table?.TableStatus === 'ACTIVE') return Table;
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  };

  /** POSTs `body` to the server's port as a raw HTTP request: its status, headers and body. */
  const post = (headers: Record<string, string>, body = '{}') =>
    new Promise<{ status: number; headers: IncomingHttpHeaders; body: Buffer }>(
      (resolve, reject) => {
        const { hostname, port } = new URL(dynamo.endpoint);
        const req = request({ host: hostname, port, method: 'POST', path: '/', headers }, (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (chunk: Buffer) => chunks.push(chunk));
          res.on('end', () =>
            resolve({
              status: res.statusCode ?? 0,
              headers: res.headers,
              body: Buffer.concat(chunks),
            }),
          );
        });
        req.on('error', reject);
        req.end(body);
      },
    );

  it('serves a table deleted and created again with another key by its new description', async () => {
    const table = uniqueName('recreated');
    const create = (key: string) =>
      dynamo.client.send(
        new CreateTableCommand({
          TableName: table,
          KeySchema: [{ AttributeName: key, KeyType: 'HASH' }],
          AttributeDefinitions: [{ AttributeName: key, AttributeType: 'S' }],
          BillingMode: 'PAY_PER_REQUEST',
        }),
      );
    const update = (key: string) =>
      dynamo.client.send(
        new BatchExecuteStatementCommand({
          Statements: [
            {
              Statement: `UPDATE "${table}" SET "V" = ? WHERE "${key}" = ?`,
              Parameters: [{ S: 'v' }, { S: 'k' }],
            },
          ],
        }),
      );
    await create('A');
    await waitActive(table);
    await dynamo.client.send(new PutItemCommand({ TableName: table, Item: { A: { S: 'k' } } }));
    expect((await update('A')).Responses?.[0]?.Error).toBeUndefined();

    await dynamo.client.send(new DeleteTableCommand({ TableName: table }));
    await expect(
      dynamo.client.send(new GetItemCommand({ TableName: table, Key: { A: { S: 'k' } } })),
    ).rejects.toThrow(/not found/i);
    await create('B');
    await waitActive(table);
    await dynamo.client.send(new PutItemCommand({ TableName: table, Item: { B: { S: 'k' } } }));

    expect((await update('A')).Responses?.[0]?.Error?.Code).toBe('ValidationError');
    expect((await update('B')).Responses?.[0]?.Error).toBeUndefined();
    await expect(
      dynamo.client.send(new GetItemCommand({ TableName: table, Key: { A: { S: 'k' } } })),
    ).rejects.toThrow(/key/i);
    expect(
      (await dynamo.client.send(new GetItemCommand({ TableName: table, Key: { B: { S: 'k' } } })))
        .Item,
    ).toEqual({ B: { S: 'k' }, V: { S: 'v' } });
  });

  it('refuses what the front refuses (its port is reached straight by Lambda workers)', async () => {
    const refusal = async (headers: Record<string, string>) => {
      const { status, body } = await post(headers);
      return { status, body: body.toString() };
    };
    const signed = {
      'content-type': 'application/x-amz-json-1.0',
      'x-amz-target': 'DynamoDB_20120810.ListTables',
      authorization: 'AWS4-HMAC-SHA256 Credential=a/20260101/us-east-1/dynamodb/aws4_request',
    };

    expect(await refusal({ ...signed, host: 'attacker.example' })).toMatchObject({
      status: 403,
      body: expect.stringMatching(/not this machine's loopback/) as string,
    });
    expect(await refusal({ ...signed, origin: 'http://attacker.example' })).toMatchObject({
      status: 403,
      body: expect.stringMatching(/web pages/) as string,
    });
    const target = 'DynamoDB_20120810.BatchExecuteStatement';
    expect(
      await refusal({ ...signed, 'x-amz-target': target, 'content-type': 'multipart/form-data' }),
    ).toMatchObject({ status: 403 });
    const { authorization: _unsigned, ...unsigned } = signed;
    expect(await refusal({ ...unsigned, 'x-amz-target': target })).toMatchObject({ status: 403 });
  });

  it('describes a table as last updated', async () => {
    const table = uniqueName('updated');
    await dynamo.client.send(
      new CreateTableCommand({
        TableName: table,
        KeySchema: [{ AttributeName: 'K', KeyType: 'HASH' }],
        AttributeDefinitions: [{ AttributeName: 'K', AttributeType: 'S' }],
        ProvisionedThroughput: { ReadCapacityUnits: 1, WriteCapacityUnits: 1 },
      }),
    );
    expect((await waitActive(table)).ProvisionedThroughput).toMatchObject({ ReadCapacityUnits: 1 });
    await dynamo.client.send(
      new UpdateTableCommand({
        TableName: table,
        ProvisionedThroughput: { ReadCapacityUnits: 7, WriteCapacityUnits: 3 },
      }),
    );

    const after = await waitActive(table);
    expect(after.ProvisionedThroughput).toMatchObject({
      ReadCapacityUnits: 7,
      WriteCapacityUnits: 3,
    });
    expect(after.KeySchema).toEqual([{ AttributeName: 'K', KeyType: 'HASH' }]);
  });
  it('keeps every secondary index right while writes leave unchanged entries alone', async () => {
    const table = uniqueName('indexed');
    const index = (name: string, key: string, projection: object) => ({
      IndexName: name,
      KeySchema: [{ AttributeName: key, KeyType: 'HASH' as const }],
      Projection: projection,
    });
    await dynamo.client.send(
      new CreateTableCommand({
        TableName: table,
        KeySchema: [{ AttributeName: 'K', KeyType: 'HASH' }],
        AttributeDefinitions: [
          { AttributeName: 'K', AttributeType: 'S' },
          { AttributeName: 'Digest', AttributeType: 'S' },
          { AttributeName: 'Kind', AttributeType: 'S' },
          { AttributeName: 'State', AttributeType: 'S' },
        ],
        GlobalSecondaryIndexes: [
          index('ByDigest', 'Digest', { ProjectionType: 'KEYS_ONLY' }),
          index('ByKind', 'Kind', { ProjectionType: 'INCLUDE', NonKeyAttributes: ['Label'] }),
          index('ByState', 'State', { ProjectionType: 'ALL' }),
        ],
        BillingMode: 'PAY_PER_REQUEST',
      }),
    );
    await waitActive(table);
    const query = async (IndexName: string, name: string, value: string) =>
      (
        await dynamo.client.send(
          new QueryCommand({
            TableName: table,
            IndexName,
            KeyConditionExpression: '#k = :v',
            ExpressionAttributeNames: { '#k': name },
            ExpressionAttributeValues: { ':v': { S: value } },
          }),
        )
      ).Items ?? [];
    const set = (expression: string, values: Record<string, string>) =>
      dynamo.client.send(
        new UpdateItemCommand({
          TableName: table,
          Key: { K: { S: 'k' } },
          UpdateExpression: expression,
          ExpressionAttributeValues: Object.fromEntries(
            Object.entries(values).map(([name, value]) => [name, { S: value }]),
          ),
        }),
      );
    await dynamo.client.send(
      new PutItemCommand({
        TableName: table,
        Item: {
          K: { S: 'k' },
          Digest: { S: 'h1' },
          Kind: { S: 'elf' },
          Label: { S: 'one' },
          State: { S: 'new' },
          Note: { S: 'x' },
        },
      }),
    );

    // Nothing any index projects changes: each still finds the item, the ALL one as it is now.
    await set('SET Note = :o', { ':o': 'y' });
    expect(await query('ByDigest', 'Digest', 'h1')).toEqual([
      { K: { S: 'k' }, Digest: { S: 'h1' } },
    ]);
    expect((await query('ByKind', 'Kind', 'elf'))[0]).toMatchObject({ Label: { S: 'one' } });
    expect((await query('ByState', 'State', 'new'))[0]).toMatchObject({ Note: { S: 'y' } });

    // An INCLUDE attribute changes: that index shows it; a key changes: the entry moves.
    await set('SET Label = :l, Digest = :h', { ':l': 'two', ':h': 'h2' });
    expect((await query('ByKind', 'Kind', 'elf'))[0]).toMatchObject({ Label: { S: 'two' } });
    expect(await query('ByDigest', 'Digest', 'h1')).toEqual([]);
    expect(await query('ByDigest', 'Digest', 'h2')).toHaveLength(1);

    // A projected attribute removed, then the item deleted: no entry is left behind.
    await dynamo.client.send(
      new UpdateItemCommand({
        TableName: table,
        Key: { K: { S: 'k' } },
        UpdateExpression: 'REMOVE Kind',
      }),
    );
    expect(await query('ByKind', 'Kind', 'elf')).toEqual([]);
    await dynamo.client.send(new DeleteItemCommand({ TableName: table, Key: { K: { S: 'k' } } }));
    expect(await query('ByDigest', 'Digest', 'h2')).toEqual([]);
    expect(await query('ByState', 'State', 'new')).toEqual([]);
  });
  it("answers with the body's CRC-32 in x-amz-crc32, as DynamoDB does", async () => {
    // The checksum, bit by bit (CRC-32/ISO-HDLC), apart from what the server computes it with.
    const crc32 = (bytes: Buffer) => {
      let crc = 0xffffffff;
      for (const byte of bytes) {
        crc ^= byte;
        for (let bit = 0; bit < 8; bit++) crc = crc & 1 ? (crc >>> 1) ^ 0xedb88320 : crc >>> 1;
      }
      return (crc ^ 0xffffffff) >>> 0;
    };
    expect(crc32(Buffer.from('123456789'))).toBe(0xcbf43926);
    const table = uniqueName('checksummed');
    await dynamo.client.send(
      new CreateTableCommand({
        TableName: table,
        KeySchema: [{ AttributeName: 'K', KeyType: 'HASH' }],
        AttributeDefinitions: [{ AttributeName: 'K', AttributeType: 'S' }],
        BillingMode: 'PAY_PER_REQUEST',
      }),
    );
    await waitActive(table);
    await dynamo.client.send(
      new PutItemCommand({ TableName: table, Item: { K: { S: 'k' }, V: { S: 'ünïcødé ✓' } } }),
    );
    const answer = await post(
      {
        'content-type': 'application/x-amz-json-1.0',
        'x-amz-target': 'DynamoDB_20120810.GetItem',
        'x-amz-date': '20260101T000000Z',
        // dynalite checks the header's shape, not the signature
        authorization:
          'AWS4-HMAC-SHA256 Credential=a/20260101/us-east-1/dynamodb/aws4_request, ' +
          'SignedHeaders=host;x-amz-date, Signature=00',
      },
      JSON.stringify({ TableName: table, Key: { K: { S: 'k' } } }),
    );
    expect(answer.body.toString()).toContain('ünïcødé ✓');
    expect(answer.headers['x-amz-crc32']).toBe(String(crc32(answer.body)));
  });

  it('outlives a client that goes away in the middle of its request body', async () => {
    // Prepare: a request head promising 100 bytes of body, and only 5 of them.
    const { hostname, port } = new URL(dynamo.endpoint);
    const socket = connect(Number(port), hostname);
    await once(socket, 'connect');
    socket.write(
      'POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Amz-Target: DynamoDB_20120810.ListTables\r\n' +
        'Authorization: AWS4-HMAC-SHA256 Credential=a/20260101/us-east-1/dynamodb/aws4_request, SignedHeaders=host, Signature=0\r\n' +
        'Content-Type: application/x-amz-json-1.0\r\nContent-Length: 100\r\n\r\n{"a":',
    );
    const uncaught: unknown[] = [];
    const onUncaught = (error: unknown) => uncaught.push(error);
    process.on('uncaughtException', onUncaught);
    try {
      // Act: the client goes; then another asks.
      socket.destroy();
      await once(socket, 'close');
      const after = await dynamo.client.send(new ListTablesCommand({}));

      // Assert: nothing thrown out of the server (in its own process: the end of DynamoDB).
      expect(after.TableNames).toBeDefined();
      expect(uncaught).toEqual([]);
    } finally {
      process.off('uncaughtException', onUncaught);
    }
  });
});
