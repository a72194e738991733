import {
  BatchExecuteStatementCommand,
  CreateTableCommand,
  GetItemCommand,
  PutItemCommand,
  type AttributeValue,
  type DynamoDBClient,
} from '@aws-sdk/client-dynamodb';
import { startDynamo, uniqueName, type Emulator } from '@binaryalert/testing';

import { parseUpdateStatement } from './partiql';

describe('BatchExecuteStatement on dynalite (PartiQL UPDATEs run as its UpdateItems)', () => {
  let dynamo: Emulator<DynamoDBClient>;
  let table: string;

  beforeAll(async () => {
    dynamo = await startDynamo();
  });
  afterAll(() => dynamo.stop());
  beforeEach(async () => {
    table = uniqueName('partiql');
    await dynamo.client.send(
      new CreateTableCommand({
        TableName: table,
        KeySchema: [
          { AttributeName: 'Bucket', KeyType: 'HASH' },
          { AttributeName: 'Key', KeyType: 'RANGE' },
        ],
        AttributeDefinitions: [
          { AttributeName: 'Bucket', AttributeType: 'S' },
          { AttributeName: 'Key', AttributeType: 'S' },
        ],
        BillingMode: 'PAY_PER_REQUEST',
      }),
    );
    for (const key of ['a', 'b', 'c']) {
      await dynamo.client.send(
        new PutItemCommand({
          TableName: table,
          Item: {
            Bucket: { S: 'bk' },
            Key: { S: key },
            N: { N: '1' },
            Gone: { S: 'x' },
            'Odd "name"': { S: 'o' },
          },
        }),
      );
    }
  });

  const item = async (key: string) =>
    (
      await dynamo.client.send(
        new GetItemCommand({ TableName: table, Key: { Bucket: { S: 'bk' }, Key: { S: key } } }),
      )
    ).Item;

  it('runs each statement on its own: written, condition failed, missing item, refused', async () => {
    const update = (key: string, limit: string) => ({
      Statement:
        `UPDATE "${table}" SET "N" = ? SET "Odd ""name""" = ? REMOVE "Gone" ` +
        'WHERE "Bucket" = ? AND "Key" = ? AND ("N" < ? OR NOT ("N" <> ?))',
      Parameters: [{ N: '2' }, { S: 'p' }, { S: 'bk' }, { S: key }, { N: limit }, { N: '7' }],
    });

    const { Responses = [] } = await dynamo.client.send(
      new BatchExecuteStatementCommand({
        Statements: [
          update('a', '5'), // 1 < 5: written
          update('b', '0'), // 1 < 0 false, 1 = 7 false: the condition fails
          update('zz', '5'), // no such item: an UPDATE never creates one
          { Statement: `SELECT * FROM "${table}"`, Parameters: [] },
          { Statement: `UPDATE "${table}" SET "N" = 3 WHERE "Bucket" = ? AND "Key" = ?` },
          {
            Statement: `UPDATE "${table}" SET "N" = ? WHERE "Bucket" = ?`,
            Parameters: [{ N: '1' }, { S: 'bk' }],
          },
          { ...update('c', '5'), Parameters: update('c', '5').Parameters.slice(1) },
          { ...update('c', '5'), Statement: update('c', '5').Statement.replace(table, 'nope') },
        ],
      }),
    );

    expect(Responses.map((response) => response.Error?.Code ?? 'ok')).toEqual([
      'ok',
      'ConditionalCheckFailed',
      'ConditionalCheckFailed',
      'ValidationError',
      'ValidationError',
      'ValidationError',
      'ValidationError',
      'ResourceNotFound',
    ]);
    expect(await item('a')).toEqual({
      Bucket: { S: 'bk' },
      Key: { S: 'a' },
      N: { N: '2' },
      'Odd "name"': { S: 'p' },
    });
    for (const untouched of ['b', 'c']) {
      expect(await item(untouched)).toMatchObject({ N: { N: '1' }, Gone: { S: 'x' } });
    }
    expect(await item('zz')).toBeUndefined();
  });

  it("judges each statement by its own values when dynalite's parse is reused", async () => {
    // One statement shape throughout: the server parses it once and fills in the values.
    const update = (key: string, value: string, limit: AttributeValue) => ({
      Statement: `UPDATE "${table}" SET "N" = ? WHERE "Bucket" = ? AND "Key" = ? AND "N" < ?`,
      Parameters: [{ N: value }, { S: 'bk' }, { S: key }, limit],
    });
    const codes = async (statements: ReturnType<typeof update>[]) => {
      const { Responses = [] } = await dynamo.client.send(
        new BatchExecuteStatementCommand({ Statements: statements }),
      );
      return Responses.map((response) => response.Error?.Code ?? 'ok');
    };

    expect(
      await codes([
        update('a', '2', { N: '5' }), // 1 < 5: written
        update('b', '3', { N: '1' }), // 1 < 1 false
        update('c', '4', { S: '5' }), // a string limit: another parse; N < S is false
        update('c', 'not a number', { N: '5' }), // checked though the parse is reused
      ]),
    ).toEqual(['ok', 'ConditionalCheckFailed', 'ConditionalCheckFailed', 'ValidationError']);
    expect(await codes([update('b', '8', { N: '9' }), update('a', '9', { N: '2' })])).toEqual([
      'ok',
      'ConditionalCheckFailed',
    ]);
    expect((await item('a'))?.N).toEqual({ N: '2' });
    expect((await item('b'))?.N).toEqual({ N: '8' });
    expect((await item('c'))?.N).toEqual({ N: '1' });
  });

  it('refuses more than 25 statements as DynamoDB does, running none', async () => {
    const statement = {
      Statement: `UPDATE "${table}" SET "N" = ? WHERE "Bucket" = ? AND "Key" = ?`,
      Parameters: [{ N: '9' }, { S: 'bk' }, { S: 'a' }],
    };

    await expect(
      dynamo.client.send(
        new BatchExecuteStatementCommand({ Statements: Array(26).fill(statement) }),
      ),
    ).rejects.toThrow(/between 1 and 25/);
    expect(await item('a')).toMatchObject({ N: { N: '1' } });
  });

  it('parses only parameterized UPDATEs, and says where it stops', () => {
    expect(parseUpdateStatement('UPDATE "t" REMOVE "x" WHERE "k" = ?')).toEqual({
      table: 't',
      set: [],
      remove: ['x'],
      where: { compare: '=', left: { name: 'k' }, right: { param: 0 } },
    });
    for (const hostile of [
      'UPDATE "t" SET "a" = ? WHERE "k" = ?; DELETE FROM "t"',
      'UPDATE "t" SET "a" = ? WHERE "k" = \'x\'',
      'UPDATE "t" SET "a" = ? WHERE "k" = ? AND',
      'UPDATE "t" SET "a" = ? WHERE ("k" = ?',
      'UPDATE "t WHERE "k" = ?',
      'UPDATE "t" WHERE "k" = ?',
      'DELETE FROM "t" WHERE "k" = ?',
      'UPDATE "t" SET "a" = ? WHERE "k" = ? RETURNING ALL OLD *',
    ]) {
      expect(() => parseUpdateStatement(hostile)).toThrow();
    }
  });
});
