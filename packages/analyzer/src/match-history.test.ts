import { GetItemCommand, QueryCommand, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { startDynamo, uniqueName, type Emulator } from '@binaryalert/testing';
import { createMatchTable } from './test-helpers';
import { forgetObject, recordMatch, type MatchRecord } from './match-history';

const SHA = 'a'.repeat(64);

function match(key: string, ruleIds = ['rules/evil.yar:evil']): MatchRecord {
  return {
    sha256: SHA,
    md5: 'b'.repeat(32),
    objectId: `S3:bucket:${key}`,
    ruleIds,
    lastModified: '2026-01-01T00:00:00.000Z',
    metadata: { filepath: `/files/${key}` },
  };
}

describe('recordMatch', () => {
  let dynamo: Emulator<DynamoDBClient>;
  let table: string;

  beforeAll(async () => {
    dynamo = await startDynamo();
  });
  afterAll(async () => {
    await dynamo.stop();
  });
  beforeEach(async () => {
    table = uniqueName('matches');
    await createMatchTable(dynamo.client, table);
  });

  const record = (m: MatchRecord, version: number) => recordMatch(dynamo.client, table, m, version);

  async function item(version: number) {
    const response = await dynamo.client.send(
      new GetItemCommand({
        TableName: table,
        Key: { SHA256: { S: SHA }, AnalyzerVersion: { N: String(version) } },
        ConsistentRead: true,
      }),
    );
    return response.Item;
  }

  it('alerts on the first match and stores the full item', async () => {
    const decision = await record(match('first.exe'), 1);

    expect(decision).toEqual({ alert: true, reason: 'first match', recordedObject: true });
    const stored = await item(1);
    expect(stored).toEqual({
      SHA256: { S: SHA },
      AnalyzerVersion: { N: '1' },
      MatchedRules: { SS: ['rules/evil.yar:evil'] },
      MD5: { S: 'b'.repeat(32) },
      S3LastModified: { S: '2026-01-01T00:00:00.000Z' },
      S3Metadata: { M: { filepath: { S: '/files/first.exe' } } },
      S3Objects: { SS: ['S3:bucket:first.exe'] },
    });
  });

  it('alerts on the same file under a new key and adds the key to the item', async () => {
    await record(match('first.exe'), 1);

    const decision = await record(match('copy.exe'), 1);

    expect(decision).toMatchObject({ alert: true, reason: 'new object' });
    expect((await item(1))?.S3Objects?.SS?.sort()).toEqual([
      'S3:bucket:copy.exe',
      'S3:bucket:first.exe',
    ]);
    // The first object's metadata stays.
    expect((await item(1))?.S3Metadata).toEqual({ M: { filepath: { S: '/files/first.exe' } } });
  });

  it('does not alert when the same version analyzes the same object again', async () => {
    await record(match('first.exe'), 1);

    const decision = await record(match('first.exe'), 1);

    expect(decision).toEqual({ alert: false, reason: 'already known', recordedObject: false });
  });

  it('does not alert when a newer version finds the same rules on known objects', async () => {
    await record(match('first.exe'), 1);
    await record(match('copy.exe'), 1);

    // Retroactive analysis by version 2 visits the objects one by one.
    const first = await record(match('first.exe'), 2);
    const copy = await record(match('copy.exe'), 2);

    expect(first).toMatchObject({ alert: false, reason: 'already known' });
    expect(copy).toMatchObject({ alert: false, reason: 'already known' });
    expect((await item(2))?.S3Objects?.SS?.sort()).toEqual([
      'S3:bucket:copy.exe',
      'S3:bucket:first.exe',
    ]);
  });

  it('alerts when a rule of a newer version matches a known binary', async () => {
    await record(match('first.exe'), 1);

    const decision = await record(
      match('first.exe', ['rules/evil.yar:evil', 'rules/new.yar:brand_new']),
      2,
    );

    expect(decision).toMatchObject({ alert: true, reason: 'new rule matched' });
    expect((await item(2))?.MatchedRules?.SS?.sort()).toEqual([
      'rules/evil.yar:evil',
      'rules/new.yar:brand_new',
    ]);
    expect((await item(1))?.MatchedRules?.SS).toEqual(['rules/evil.yar:evil']);
  });

  it('alerts when a newer version sees an object no version saw', async () => {
    await record(match('first.exe'), 1);
    await record(match('first.exe'), 2);

    const decision = await record(match('unseen.exe'), 2);

    expect(decision).toMatchObject({ alert: true, reason: 'new object' });
  });

  it('never alerts when an older version runs late', async () => {
    await record(match('first.exe'), 3);

    const sameObject = await record(match('first.exe'), 2);
    const newObject = await record(match('other.exe', ['x.yar:other']), 2);

    expect(sameObject).toMatchObject({ alert: false, reason: 'older analyzer version' });
    expect(newObject).toMatchObject({ alert: false, reason: 'older analyzer version' });
    expect((await item(3))?.S3Objects?.SS).toEqual(['S3:bucket:first.exe']);
  });

  it('counts $LATEST (version 0) below every published version', async () => {
    await record(match('first.exe'), 0);

    expect(await record(match('first.exe'), 1)).toMatchObject({ alert: false });
    expect(await record(match('late.exe'), 0)).toMatchObject({ alert: false });
  });

  it('alerts once when the same message is delivered several times at once', async () => {
    const decisions = await Promise.all(
      Array.from({ length: 6 }, () => record(match('dup.exe'), 1)),
    );

    expect(decisions.filter((decision) => decision.alert)).toHaveLength(1);
    expect((await item(1))?.S3Objects?.SS).toEqual(['S3:bucket:dup.exe']);
  });

  it('alerts once per object when two analyzers record new copies of a binary at once', async () => {
    const decisions = await Promise.all([
      record(match('one.exe'), 1),
      record(match('two.exe'), 1),
      record(match('one.exe'), 1),
      record(match('two.exe'), 1),
    ]);

    expect(decisions.filter((decision) => decision.alert)).toHaveLength(2);
    expect((await item(1))?.S3Objects?.SS?.sort()).toEqual([
      'S3:bucket:one.exe',
      'S3:bucket:two.exe',
    ]);
  });

  it('alerts again on retry after the object was forgotten because its alert failed', async () => {
    await record(match('first.exe'), 1);

    await forgetObject(dynamo.client, table, match('first.exe'), 1);
    const retry = await record(match('first.exe'), 1);

    expect(retry).toMatchObject({ alert: true });
    expect((await item(1))?.S3Objects?.SS).toEqual(['S3:bucket:first.exe']);
  });

  it('keeps each SHA256 separate', async () => {
    await record(match('first.exe'), 1);

    const other = await record({ ...match('first.exe'), sha256: 'c'.repeat(64) }, 1);

    expect(other).toMatchObject({ alert: true, reason: 'first match' });
    const items = await dynamo.client.send(
      new QueryCommand({
        TableName: table,
        KeyConditionExpression: 'SHA256 = :sha',
        ExpressionAttributeValues: { ':sha': { S: 'c'.repeat(64) } },
      }),
    );
    expect(items.Count).toBe(1);
  });
});
