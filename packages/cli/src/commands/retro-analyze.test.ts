import { CreateTableCommand, PutItemCommand, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { InvokeCommand, LambdaClient } from '@aws-sdk/client-lambda';
import {
  CreateBucketCommand,
  DeleteObjectCommand,
  PutObjectCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import {
  CreateQueueCommand,
  DeleteMessageBatchCommand,
  ReceiveMessageCommand,
  SendMessageBatchCommand,
  type SQSClient,
} from '@aws-sdk/client-sqs';
import { verdictTableDefinition, type Verdict } from '@binaryalert/core';
import { loadTfvars, resourceNames, type BinaryAlertConfig } from '@binaryalert/deployment';
import { startDynamo, startS3, startSqs, type Emulator } from '@binaryalert/testing';
import { mockClient } from 'aws-sdk-client-mock';
import 'aws-sdk-client-mock-jest';

import { retroAnalyze } from './retro-analyze';
import { formatDuration, progressLine } from './retro-progress';

describe('retroAnalyze', () => {
  let s3: Emulator<S3Client>;
  let sqs: Emulator<SQSClient>;
  let dynamo: Emulator<DynamoDBClient>;

  beforeAll(async () => {
    [s3, sqs, dynamo] = await Promise.all([startS3(), startSqs(), startDynamo()]);
  });
  afterAll(async () => {
    await Promise.all([s3?.stop(), sqs?.stop(), dynamo?.stop()]);
  });

  /** A deployment of its own: config with a unique prefix, its bucket (with objects), queue, ledger. */
  async function deployment(
    prefix: string,
    objects: number,
  ): Promise<{ config: BinaryAlertConfig; queueUrl: string }> {
    const config = { ...(await loadTfvars()), name_prefix: prefix };
    const names = resourceNames(config);
    await s3.client.send(new CreateBucketCommand({ Bucket: names.bucket }));
    for (let i = 0; i < objects; i++) {
      await s3.client.send(new PutObjectCommand({ Bucket: names.bucket, Key: `f${i}`, Body: 'x' }));
    }
    const { QueueUrl } = await sqs.client.send(new CreateQueueCommand({ QueueName: names.queue }));
    await dynamo.client.send(new CreateTableCommand(verdictTableDefinition(names.verdictTable)));
    return { config, queueUrl: QueueUrl as string };
  }

  /** A ledger item as the analyzer writes it (only what coverage reads). */
  const writeVerdict = (config: BinaryAlertConfig, key: string, verdict: Verdict, at: Date) =>
    dynamo.client.send(
      new PutItemCommand({
        TableName: resourceNames(config).verdictTable,
        Item: {
          Bucket: { S: resourceNames(config).bucket },
          Key: { S: key },
          Verdict: { S: verdict },
          AnalyzedAt: { S: at.toISOString() },
          AnalyzerVersion: { N: '1' },
        },
      }),
    );

  /** Stands in for the batcher: the invoke enqueues one message per key (the key as body). */
  function batcherThatEnqueues(queueUrl: string, keys: string[]) {
    const lambda = new LambdaClient({ region: 'us-east-1' });
    const mock = mockClient(lambda);
    mock.on(InvokeCommand).callsFake(async () => {
      for (let start = 0; start < keys.length; start += 10) {
        await sqs.client.send(
          new SendMessageBatchCommand({
            QueueUrl: queueUrl,
            Entries: keys
              .slice(start, start + 10)
              .map((key, i) => ({ Id: String(i), MessageBody: key })),
          }),
        );
      }
      return { StatusCode: 202 };
    });
    return { lambda, mock };
  }

  /** Stands in for the analyzers: records a verdict for one message every 50 ms until stopped. */
  function analyzeSlowly(
    config: BinaryAlertConfig,
    queueUrl: string,
    verdictOf: (key: string) => Verdict,
  ): () => void {
    let running = true;
    void (async () => {
      while (running) {
        const { Messages = [] } = await sqs.client.send(
          new ReceiveMessageCommand({ QueueUrl: queueUrl, MaxNumberOfMessages: 1 }),
        );
        for (const message of Messages) {
          await writeVerdict(config, message.Body!, verdictOf(message.Body!), new Date());
          await sqs.client.send(
            new DeleteMessageBatchCommand({
              QueueUrl: queueUrl,
              Entries: [{ Id: '0', ReceiptHandle: message.ReceiptHandle }],
            }),
          );
        }
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    })();
    return () => {
      running = false;
    };
  }

  function output() {
    const text: string[] = [];
    return { text, out: { write: (t: string) => text.push(t), isTTY: false } };
  }

  const clientsWith = (lambda: LambdaClient) => ({
    s3: s3.client,
    sqs: sqs.client,
    dynamodb: dynamo.client,
    lambda,
  });

  it('counts objects analyzed from the ledger and ends once every object has a verdict newer than the start', async () => {
    const keys = Array.from({ length: 12 }, (_v, i) => `f${i}`);
    const { config, queueUrl } = await deployment('retroa', keys.length);
    // Verdicts from before the start do not count: every object is waited for.
    for (const key of keys) await writeVerdict(config, key, 'clean', new Date(Date.now() - 60_000));
    const { lambda, mock } = batcherThatEnqueues(queueUrl, keys);
    const { text, out } = output();
    const stop = analyzeSlowly(config, queueUrl, (key) =>
      key === 'f1' ? 'skipped' : key === 'f2' ? 'failed' : key === 'f3' ? 'matched' : 'clean',
    );
    try {
      const result = await retroAnalyze({
        config,
        prefix: 'f',
        clients: clientsWith(lambda),
        pollIntervalMs: 100,
        out,
      });

      expect(result).toMatchObject({
        batcherInvoked: true,
        finished: true,
        interrupted: false,
        listed: 12,
        analyzed: 12,
        verdicts: { matched: 1, clean: 9, skipped: 1, failed: 1, partial: 0 },
      });
      expect(mock).toHaveReceivedCommandWith(InvokeCommand, {
        FunctionName: resourceNames(config).batcherFunction,
        Qualifier: 'Production',
        InvocationType: 'Event',
      });
      const printed = text.join('');
      // Progress in objects with a rate, never in messages only.
      expect(printed).toMatch(/\] [1-9]\d*\/12 objects analyzed, \d+\.\d\/s, ETA /);
      expect(printed).toContain('12/12 objects analyzed');
      expect(printed).toMatch(
        /Retroactive analysis finished: 12 objects analyzed in \d+s \(matched 1, clean 9, skipped 1, failed 1, partial 0\)/,
      );
      expect(printed).toContain('manage.ts results --verdict skipped|failed|partial --since ');
    } finally {
      stop();
    }
  });

  it('passes the prefix and the mode to the batcher', async () => {
    const { config, queueUrl } = await deployment('retrob', 1);
    const { lambda, mock } = batcherThatEnqueues(queueUrl, []);
    const { out } = output();

    const result = await retroAnalyze({
      config,
      prefix: 'f0',
      mode: 'delta',
      clients: clientsWith(lambda),
      watch: false,
      out,
    });
    await retroAnalyze({
      config,
      clients: clientsWith(lambda),
      watch: false,
      out,
    });

    expect(result).toMatchObject({ batcherInvoked: true, finished: false });
    const payloads = mock
      .commandCalls(InvokeCommand)
      .map(
        (call) =>
          JSON.parse(Buffer.from(call.args[0].input.Payload as Uint8Array).toString()) as unknown,
      );
    expect(payloads).toEqual([{ Prefix: 'f0', Mode: 'delta' }, { Mode: 'full' }]);
  });

  it('stops watching on Ctrl-C and leaves the analysis running', async () => {
    const { config, queueUrl } = await deployment('retroc', 3);
    const { lambda } = batcherThatEnqueues(queueUrl, ['f0', 'f1', 'f2']);
    const { text, out } = output();
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 300);

    const result = await retroAnalyze({
      config,
      clients: clientsWith(lambda),
      pollIntervalMs: 100,
      signal: controller.signal,
      out,
    });

    expect(result).toMatchObject({ batcherInvoked: true, finished: false, interrupted: true });
    expect(text.join('')).toContain(
      'Stopped watching at 0 of 3 objects (matched 0, clean 0, skipped 0, failed 0, partial 0); the analysis goes on in the background.',
    );
  });

  it('follows objects deleted and uploaded while it runs', async () => {
    const { config, queueUrl } = await deployment('retroe', 3);
    const names = resourceNames(config);
    const { lambda } = batcherThatEnqueues(queueUrl, ['f0', 'f1']);
    const { out } = output();
    // f2 goes away before anything analyzed it; late.bin arrives and gets a verdict.
    await s3.client.send(new DeleteObjectCommand({ Bucket: names.bucket, Key: 'f2' }));
    await s3.client.send(
      new PutObjectCommand({ Bucket: names.bucket, Key: 'late.bin', Body: 'y' }),
    );
    const stop = analyzeSlowly(config, queueUrl, () => 'clean');
    await sqs.client.send(
      new SendMessageBatchCommand({
        QueueUrl: queueUrl,
        Entries: [{ Id: '0', MessageBody: 'late.bin' }],
      }),
    );
    try {
      const result = await retroAnalyze({
        config,
        clients: clientsWith(lambda),
        pollIntervalMs: 100,
        out,
      });

      expect(result).toMatchObject({ finished: true, listed: 3, analyzed: 3 });
    } finally {
      stop();
    }
  });

  it('gives up on a stall (empty queue, no new verdict) and says which objects lack one', async () => {
    const { config } = await deployment('retrof', 2);
    // A batcher that queues nothing (e.g. it failed): no verdict will ever arrive.
    const lambda = new LambdaClient({ region: 'us-east-1' });
    mockClient(lambda).on(InvokeCommand).resolves({ StatusCode: 202 });
    const { text, out } = output();

    const result = await retroAnalyze({
      config,
      clients: clientsWith(lambda),
      pollIntervalMs: 100,
      stallMs: 500,
      out,
    });

    expect(result).toMatchObject({ finished: false, interrupted: false, stalled: true });
    expect(text.join('')).toContain('2 of 2 objects have no verdict from this run');
  });

  it('does not start the batcher for an empty bucket', async () => {
    const { config } = await deployment('retrod', 0);
    const lambda = new LambdaClient({ region: 'us-east-1' });
    const mock = mockClient(lambda);
    const { text, out } = output();

    const result = await retroAnalyze({ config, clients: clientsWith(lambda), out });

    expect(result).toMatchObject({ bucketEmpty: true, batcherInvoked: false });
    expect(mock).not.toHaveReceivedCommand(InvokeCommand);
    expect(text.join('')).toContain('Nothing to analyze');
  });
});

describe('the progress line', () => {
  it('shows objects analyzed, the rate and an ETA', () => {
    expect(progressLine({ listed: 200, covered: 50 }, 5, 30)).toBe(
      '[########----------------------] 50/200 objects analyzed, 5.0/s, ETA 30s | queue 30 messages',
    );
    expect(progressLine({ listed: 10, covered: 0 }, undefined, 0)).toContain('-/s, ETA -');
    expect(formatDuration(3725)).toBe('1h 02m');
    expect(formatDuration(187)).toBe('3m 07s');
  });
});
