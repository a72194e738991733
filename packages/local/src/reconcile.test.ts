import {
  CreateTableCommand,
  PutItemCommand,
  type AttributeValue,
  type DynamoDBClient,
} from '@aws-sdk/client-dynamodb';
import {
  CreateBucketCommand,
  HeadObjectCommand,
  PutObjectCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { CreateQueueCommand, ReceiveMessageCommand, type SQSClient } from '@aws-sdk/client-sqs';
import {
  decodeS3Key,
  verdictAttributes,
  verdictTableDefinition,
  type S3EventRecord,
  type VerdictRecord,
} from '@binaryalert/core';
import { startDynamo, startS3, startSqs, uniqueName, type Emulator } from '@binaryalert/testing';
import { reconcileVerdicts } from './reconcile';

describe('reconcileVerdicts', () => {
  let s3: Emulator<S3Client>;
  let sqs: Emulator<SQSClient>;
  let dynamo: Emulator<DynamoDBClient>;

  beforeAll(async () => {
    [s3, sqs, dynamo] = await Promise.all([startS3(), startSqs(), startDynamo()]);
  });
  afterAll(async () => {
    await Promise.all([s3.stop(), sqs.stop(), dynamo.stop()]);
  });

  it('queues again the objects without a verdict and those whose last analysis failed', async () => {
    const bucket = uniqueName('binaries');
    const verdictTable = uniqueName('verdicts');
    await s3.client.send(new CreateBucketCommand({ Bucket: bucket }));
    await dynamo.client.send(new CreateTableCommand(verdictTableDefinition(verdictTable)));
    const { QueueUrl } = await sqs.client.send(
      new CreateQueueCommand({ QueueName: uniqueName('analysis') }),
    );
    const keys = ['clean.bin', 'failed ü/../x.bin', 'never.bin', 'skipped.bin'];
    for (const key of keys) {
      await s3.client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: key }));
    }
    const record = async (
      key: string,
      verdict: VerdictRecord['verdict'],
      reason?: VerdictRecord['reason'],
    ) => {
      const head = await s3.client.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
      const item = verdictAttributes({
        bucket,
        key,
        verdict,
        ...(reason ? { reason } : {}),
        analyzedAt: new Date().toISOString(),
        analyzerVersion: 1,
        ...(verdict === 'clean' ? { etag: head.ETag! } : {}),
        rules: [],
        matches: [],
      });
      await dynamo.client.send(
        new PutItemCommand({
          TableName: verdictTable,
          Item: Object.fromEntries(
            Object.entries(item).filter((entry): entry is [string, AttributeValue] => !!entry[1]),
          ),
        }),
      );
    };
    await record('clean.bin', 'clean');
    await record('failed ü/../x.bin', 'failed', 'download-error');
    await record('skipped.bin', 'skipped', 'too-large');

    const outcome = await reconcileVerdicts(
      { s3: s3.client, dynamo: dynamo.client, sqs: sqs.client },
      { bucket, verdictTable, queueUrl: QueueUrl! },
    );

    expect(outcome).toEqual(
      expect.objectContaining({
        listed: 4,
        covered: 2,
        queued: 2,
        gaps: expect.objectContaining({ 'no verdict': 1, failed: 1 }),
      }),
    );
    const { Messages = [] } = await sqs.client.send(
      new ReceiveMessageCommand({ QueueUrl, MaxNumberOfMessages: 10 }),
    );
    const queuedKeys = Messages.flatMap((message) =>
      (JSON.parse(message.Body!) as { Records: S3EventRecord[] }).Records.map((r) =>
        decodeS3Key(r.s3.object.key),
      ),
    );
    expect(queuedKeys.sort()).toEqual(['failed ü/../x.bin', 'never.bin']);
  });
});
