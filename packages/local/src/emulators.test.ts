import { Agent, request } from 'node:http';

import { DynamoDBClient, ListTablesCommand } from '@aws-sdk/client-dynamodb';
import {
  ChangeMessageVisibilityCommand,
  ListQueuesCommand,
  ReceiveMessageCommand,
  SQSClient,
  type Message,
} from '@aws-sdk/client-sqs';
import { resourceNames } from '@binaryalert/deployment';

import { messageIdOfReceipt, startDynamo, startSqs, type SqsEmulator } from './emulators';
import { tempDir, testConfig } from './testing/fixtures';

describe('the local SQS (local-aws-sqs with the stack patches)', () => {
  let sqs: SqsEmulator;
  let client: SQSClient;
  let queueUrl: string;

  beforeEach(async () => {
    const config = await testConfig();
    const names = resourceNames(config);
    sqs = await startSqs({
      config,
      names,
      region: 'us-east-1',
      accountId: '123456789012',
      frontPort: 1,
      visibilityTimeoutSeconds: 300,
    });
    client = new SQSClient({
      endpoint: `http://127.0.0.1:${sqs.port}`,
      region: 'us-east-1',
      credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
    });
    queueUrl = `http://127.0.0.1:1/123456789012/${names.queue}`;
  });

  afterEach(async () => {
    client.destroy();
    await sqs.close();
  });

  const receiveOne = async (): Promise<Message> => {
    const { Messages = [] } = await client.send(
      new ReceiveMessageCommand({
        QueueUrl: queueUrl,
        MaxNumberOfMessages: 1,
        // local-aws-sqs reads only the legacy name (the stack's SQS front copies the current one).
        AttributeNames: ['All'],
      }),
    );
    expect(Messages).toHaveLength(1);
    return Messages[0]!;
  };

  it('refuses on its own port what the front refuses (a web page, DNS rebinding)', async () => {
    // Prepare: a DeleteQueue of the analysis queue, as a web page could send it.
    const deleteQueue = (headers: Record<string, string>) =>
      new Promise<number>((resolve, reject) => {
        const req = request(
          {
            host: '127.0.0.1',
            port: sqs.port,
            method: 'POST',
            path: '/',
            headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
          },
          (res) => {
            res.resume();
            resolve(res.statusCode ?? 0);
          },
        );
        req.on('error', reject);
        req.end(`Action=DeleteQueue&QueueUrl=${encodeURIComponent(queueUrl)}`);
      });

    // Act
    const statuses = [
      await deleteQueue({ host: 'localhost', origin: 'http://evil.example' }),
      await deleteQueue({ host: 'evil.example' }),
      await deleteQueue({ host: 'localhost' }),
    ];

    // Assert: refused as the front refuses them; the queue is still there.
    expect(statuses).toEqual([403, 403, 403]);
    const { QueueUrls = [] } = await client.send(new ListQueuesCommand({}));
    expect(QueueUrls).toContain(queueUrl);
  });

  it('reads the MessageId a receipt handle carries, and nothing from other strings', async () => {
    // Prepare
    sqs.enqueue(queueUrl, 'body');

    // Act
    const message = await receiveOne();

    // Assert
    expect(messageIdOfReceipt(message.ReceiptHandle!)).toBe(message.MessageId);
    const base64 = (text: string) => Buffer.from(text).toString('base64');
    for (const other of [
      '',
      '!!not base64!!',
      base64('{}'),
      base64('{"MessageId":5}'),
      base64('x{'),
    ]) {
      expect(messageIdOfReceipt(other)).toBeUndefined();
    }
  });

  it('does not count a visibility change as a receive, with thousands of messages queued', async () => {
    // Prepare: one message received and made visible again twice, behind 5,000 others.
    sqs.enqueue(queueUrl, 'first');
    for (let i = 0; i < 5000; i++) sqs.enqueue(queueUrl, `other ${i}`);
    const first = await receiveOne();
    const hide = (receipt: string, seconds: number) =>
      client.send(
        new ChangeMessageVisibilityCommand({
          QueueUrl: queueUrl,
          ReceiptHandle: receipt,
          VisibilityTimeout: seconds,
        }),
      );

    // Act: visible again, received again, visible again, received a third time.
    await hide(first.ReceiptHandle!, 0);
    const second = await receiveOne();
    await hide(second.ReceiptHandle!, 0);
    const third = await receiveOne();

    // Assert: the same message, received three times (local-aws-sqs alone says five).
    expect([second.MessageId, third.MessageId]).toEqual([first.MessageId, first.MessageId]);
    expect(third.Attributes?.ApproximateReceiveCount).toBe('3');
  });

  it('answers a long poll as soon as a message arrives, as SQS does', async () => {
    // Prepare: a long poll for up to 10 messages on an empty queue, for up to 20 s.
    const started = Date.now();
    const poll = client.send(
      new ReceiveMessageCommand({
        QueueUrl: queueUrl,
        MaxNumberOfMessages: 10,
        WaitTimeSeconds: 20,
      }),
    );

    // Act: one message, half a second into the wait.
    await new Promise((resolve) => setTimeout(resolve, 500));
    sqs.enqueue(queueUrl, 'the only one');
    const { Messages = [] } = await poll;

    // Assert: that one message, long before the wait was over (local-aws-sqs alone waits 20 s
    // for a tenth).
    expect(Messages.map((message) => message.Body)).toEqual(['the only one']);
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  it('answers a long poll on an empty queue with nothing once the wait is over', async () => {
    // Act
    const started = Date.now();
    const { Messages = [] } = await client.send(
      new ReceiveMessageCommand({
        QueueUrl: queueUrl,
        MaxNumberOfMessages: 10,
        WaitTimeSeconds: 1,
      }),
    );

    // Assert
    expect(Messages).toEqual([]);
    expect(Date.now() - started).toBeGreaterThanOrEqual(1000);
  });
});

describe('the local SQS and DynamoDB servers', () => {
  it('keep an idle keep-alive connection past Node’s 5 s, as AWS endpoints do', async () => {
    // Prepare: one connection per client (the Lambda workers reach dynalite directly).
    const dir = await tempDir('ba-idle-');
    const dynamo = await startDynamo(dir.path, () => undefined);
    const config = await testConfig();
    const sqs = await startSqs({
      config,
      names: resourceNames(config),
      region: 'us-east-1',
      accountId: '123456789012',
      frontPort: 1,
      visibilityTimeoutSeconds: 300,
    });
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    const sockets = new Set<unknown>();
    agent.on('free', (socket) => sockets.add(socket));
    const common = {
      region: 'us-east-1',
      credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
      requestHandler: { httpAgent: agent },
      maxAttempts: 1,
    };
    const dynamoClient = new DynamoDBClient({
      ...common,
      endpoint: `http://127.0.0.1:${dynamo.port}`,
    });
    const sqsClient = new SQSClient({ ...common, endpoint: `http://127.0.0.1:${sqs.port}` });
    try {
      await dynamoClient.send(new ListTablesCommand({}));
      await sqsClient.send(new ListQueuesCommand({}));

      // Act: idle longer than Node's default keep-alive timeout.
      await new Promise((resolve) => setTimeout(resolve, 6_000));
      await dynamoClient.send(new ListTablesCommand({}));
      await sqsClient.send(new ListQueuesCommand({}));

      // Assert: each server still had the first connection (the agent made no second one).
      expect(sockets.size).toBe(2);
    } finally {
      dynamoClient.destroy();
      sqsClient.destroy();
      agent.destroy();
      await sqs.close();
      await dynamo.close();
      await dir.remove();
    }
  }, 30_000);
});
