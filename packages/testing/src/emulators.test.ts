import { CreateTableCommand, GetItemCommand, PutItemCommand } from '@aws-sdk/client-dynamodb';
import {
  CreateBucketCommand,
  GetObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
} from '@aws-sdk/client-s3';
import { CreateQueueCommand, ReceiveMessageCommand, SendMessageCommand } from '@aws-sdk/client-sqs';
import { startDynamo, startS3, startSqs, uniqueName } from './index';

describe('local emulators', () => {
  it('stores and lists S3 objects past one page with continuation tokens', async () => {
    const s3 = await startS3();
    try {
      const bucket = uniqueName('bucket');
      await s3.client.send(new CreateBucketCommand({ Bucket: bucket }));
      await Promise.all(
        ['a', 'b', 'c'].map((key) =>
          s3.client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: `body-${key}` })),
        ),
      );
      const first = await s3.client.send(new ListObjectsV2Command({ Bucket: bucket, MaxKeys: 2 }));
      const second = await s3.client.send(
        new ListObjectsV2Command({
          Bucket: bucket,
          MaxKeys: 2,
          ContinuationToken: first.NextContinuationToken,
        }),
      );
      const object = await s3.client.send(new GetObjectCommand({ Bucket: bucket, Key: 'b' }));

      expect([...(first.Contents ?? []), ...(second.Contents ?? [])].map((o) => o.Key)).toEqual([
        'a',
        'b',
        'c',
      ]);
      expect(second.IsTruncated).toBe(false);
      expect(await object.Body?.transformToString()).toBe('body-b');
    } finally {
      await s3.stop();
    }
  });

  it('sends and receives SQS messages', async () => {
    const sqs = await startSqs();
    try {
      const { QueueUrl } = await sqs.client.send(
        new CreateQueueCommand({ QueueName: uniqueName('queue') }),
      );
      await sqs.client.send(new SendMessageCommand({ QueueUrl, MessageBody: 'hello' }));
      const received = await sqs.client.send(
        new ReceiveMessageCommand({ QueueUrl, WaitTimeSeconds: 1 }),
      );

      expect(received.Messages?.map((m) => m.Body)).toEqual(['hello']);
    } finally {
      await sqs.stop();
    }
  });

  it('creates an active DynamoDB table and round-trips an item', async () => {
    const dynamo = await startDynamo();
    try {
      const TableName = uniqueName('table');
      await dynamo.client.send(
        new CreateTableCommand({
          TableName,
          AttributeDefinitions: [{ AttributeName: 'id', AttributeType: 'S' }],
          KeySchema: [{ AttributeName: 'id', KeyType: 'HASH' }],
          BillingMode: 'PAY_PER_REQUEST',
        }),
      );
      await dynamo.client.send(
        new PutItemCommand({ TableName, Item: { id: { S: 'x' }, n: { N: '1' } } }),
      );
      const { Item } = await dynamo.client.send(
        new GetItemCommand({ TableName, Key: { id: { S: 'x' } } }),
      );

      expect(Item?.n).toEqual({ N: '1' });
    } finally {
      await dynamo.stop();
    }
  });
});
