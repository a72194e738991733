import {
  CreateTableCommand,
  UpdateItemCommand,
  type DynamoDBClient,
} from '@aws-sdk/client-dynamodb';
import { createHash } from 'node:crypto';
import {
  CreateBucketCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  type S3Client,
} from '@aws-sdk/client-s3';
import { matchTableDefinition, verdictTableDefinition } from '@binaryalert/core';
import { loadTfvars, resourceNames, type BinaryAlertConfig } from '@binaryalert/deployment';
import { startDynamo, startS3, type Emulator } from '@binaryalert/testing';

// program before the command module: command modules import program, which registers them.
import { ARCHIVE_MEMBER, EICAR_SHA256, LIVE_TEST_PREFIX, liveTest } from './live-test';

describe('liveTest', () => {
  let s3: Emulator<S3Client>;
  let dynamo: Emulator<DynamoDBClient>;

  beforeAll(async () => {
    [s3, dynamo] = await Promise.all([startS3(), startDynamo()]);
  });
  afterAll(async () => {
    await Promise.all([s3?.stop(), dynamo?.stop()]);
  });

  async function deployment(prefix: string): Promise<BinaryAlertConfig> {
    const config = { ...(await loadTfvars()), name_prefix: prefix };
    const names = resourceNames(config);
    await s3.client.send(new CreateBucketCommand({ Bucket: names.bucket }));
    await dynamo.client.send(new CreateTableCommand(matchTableDefinition(names.table)));
    await dynamo.client.send(new CreateTableCommand(verdictTableDefinition(names.verdictTable)));
    return config;
  }

  /**
   * Plays the analyzer: once the test files are in the bucket, records the given ones under their
   * content's SHA-256, archives with their EICAR member (unless `nameMembers` is false).
   */
  async function recordWhenUploaded(
    config: BinaryAlertConfig,
    runId: string,
    recordFiles: (keys: string[]) => string[],
    nameMembers = true,
  ): Promise<void> {
    const names = resourceNames(config);
    for (;;) {
      const { Contents = [] } = await s3.client.send(
        new ListObjectsV2Command({ Bucket: names.bucket, Prefix: `${LIVE_TEST_PREFIX}${runId}/` }),
      );
      if (Contents.length === 4) {
        const keys = Contents.map((object) => object.Key as string);
        for (const key of keys) {
          const head = await s3.client.send(
            new HeadObjectCommand({ Bucket: names.bucket, Key: key }),
          );
          expect(head.Metadata?.filepath).toBe(`/${key}`);
        }
        for (const key of recordFiles(keys)) {
          const object = await s3.client.send(
            new GetObjectCommand({ Bucket: names.bucket, Key: key }),
          );
          const body = Buffer.from(await object.Body!.transformToByteArray());
          const archive = /\.(tar\.gz|zip)$/.test(key);
          const sha256 = createHash('sha256').update(body).digest('hex');
          await dynamo.client.send(
            new UpdateItemCommand({
              TableName: names.verdictTable,
              Key: { Bucket: { S: names.bucket }, Key: { S: key } },
              UpdateExpression: 'SET MatchAlertSha256 = :sha',
              ExpressionAttributeValues: { ':sha': { S: sha256 } },
            }),
          );
          await dynamo.client.send(
            new UpdateItemCommand({
              TableName: names.table,
              Key: { SHA256: { S: sha256 } },
              UpdateExpression:
                'ADD AlertedRules :rules' +
                (archive && nameMembers ? ' SET MatchedMembers = :members' : ''),
              ExpressionAttributeValues: {
                ':rules': { SS: ['eicar.yara:eicar_test_file@0123456789abcdef'] },
                ...(archive && nameMembers
                  ? {
                      ':members': {
                        L: [
                          {
                            M: {
                              RuleId: { S: 'eicar.yara:eicar_test_file' },
                              MemberPath: { S: ARCHIVE_MEMBER },
                              MemberSHA256: { S: EICAR_SHA256 },
                            },
                          },
                        ],
                      },
                    }
                  : {}),
              },
            }),
          );
        }
        return;
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  it('uploads EICAR files and passes once their record lists every key', async () => {
    const config = await deployment('livea');
    const names = resourceNames(config);
    const lines: string[] = [];
    const analyzer = recordWhenUploaded(config, 'run1', (keys) => keys);

    const result = await liveTest({
      config,
      clients: { s3: s3.client, dynamodb: dynamo.client },
      runId: 'run1',
      timeoutSeconds: 20,
      pollIntervalMs: 100,
      log: (line) => lines.push(line),
    });
    await analyzer;

    // The published SHA-256 of the EICAR test file, not a recomputation of the constant.
    expect(EICAR_SHA256).toBe('275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f');
    expect(result).toMatchObject({
      passed: true,
      missing: [],
      matchedRules: ['eicar.yara:eicar_test_file'],
    });
    expect(result.expected).toEqual([
      `S3:${names.bucket}:${LIVE_TEST_PREFIX}run1/eicar.com`,
      `S3:${names.bucket}:${LIVE_TEST_PREFIX}run1/eicar test file (copy).txt`,
      `S3:${names.bucket}:${LIVE_TEST_PREFIX}run1/eicar.tar.gz`,
      `S3:${names.bucket}:${LIVE_TEST_PREFIX}run1/eicar-infected.zip`,
    ]);
    expect(lines.at(-1)).toMatch(/^PASS: all 4 test files/);
    const left = await s3.client.send(
      new ListObjectsV2Command({ Bucket: names.bucket, Prefix: LIVE_TEST_PREFIX }),
    );
    expect(left.Contents ?? []).toEqual([]);
  });

  it('fails naming the files missing from the records after the timeout', async () => {
    const config = await deployment('liveb');
    const names = resourceNames(config);
    const lines: string[] = [];
    const analyzer = recordWhenUploaded(config, 'run2', (keys) =>
      keys.filter((key) => key.endsWith('eicar.com')),
    );

    const result = await liveTest({
      config,
      clients: { s3: s3.client, dynamodb: dynamo.client },
      runId: 'run2',
      timeoutSeconds: 1.5,
      pollIntervalMs: 100,
      keep: true,
      log: (line) => lines.push(line),
    });
    await analyzer;

    const missing = ['eicar test file (copy).txt', 'eicar.tar.gz', 'eicar-infected.zip'].map(
      (name) => `S3:${names.bucket}:${LIVE_TEST_PREFIX}run2/${name}`,
    );
    expect(result).toMatchObject({ passed: false, missing });
    expect(lines).toContain(`  ${missing[0]}`);
    expect(lines.some((line) => line.startsWith('FAIL: after'))).toBe(true);
    const kept = await s3.client.send(
      new ListObjectsV2Command({ Bucket: names.bucket, Prefix: LIVE_TEST_PREFIX }),
    );
    expect(kept.Contents).toHaveLength(4);
  });

  it('fails for archives whose record does not name the EICAR member inside them', async () => {
    const config = await deployment('lived');
    const names = resourceNames(config);
    const analyzer = recordWhenUploaded(config, 'run4', (keys) => keys, false);

    const result = await liveTest({
      config,
      clients: { s3: s3.client, dynamodb: dynamo.client },
      runId: 'run4',
      timeoutSeconds: 1.5,
      pollIntervalMs: 100,
      log: () => undefined,
    });
    await analyzer;

    expect(result.missing).toEqual([
      `S3:${names.bucket}:${LIVE_TEST_PREFIX}run4/eicar.tar.gz`,
      `S3:${names.bucket}:${LIVE_TEST_PREFIX}run4/eicar-infected.zip`,
    ]);
  });

  it('fails when there is no record at all', async () => {
    const config = await deployment('livec');
    const lines: string[] = [];

    const result = await liveTest({
      config,
      clients: { s3: s3.client, dynamodb: dynamo.client },
      runId: 'run3',
      timeoutSeconds: 0.5,
      pollIntervalMs: 100,
      log: (line) => lines.push(line),
    });

    expect(result.passed).toBe(false);
    expect(result.missing).toHaveLength(4);
    expect(lines.join('\n')).toContain('there is no record for EICAR at all');
  });
});
