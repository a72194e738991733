import { InvokeCommand, LambdaClient } from '@aws-sdk/client-lambda';
import { CreateBucketCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import {
  CreateQueueCommand,
  DeleteMessageBatchCommand,
  ReceiveMessageCommand,
  SendMessageBatchCommand,
  type SQSClient,
} from '@aws-sdk/client-sqs';
import { loadTfvars, resourceNames, type BinaryAlertConfig } from '@binaryalert/deployment';
import { startS3, startSqs, type Emulator } from '@binaryalert/testing';
import { mockClient } from 'aws-sdk-client-mock';
import 'aws-sdk-client-mock-jest';

// program before the command module: command modules import program, which registers them.
import { retroAnalyze } from './retro-analyze';

describe('retroAnalyze', () => {
  let s3: Emulator<S3Client>;
  let sqs: Emulator<SQSClient>;

  beforeAll(async () => {
    [s3, sqs] = await Promise.all([startS3(), startSqs()]);
  });
  afterAll(async () => {
    await Promise.all([s3?.stop(), sqs?.stop()]);
  });

  /** A deployment of its own: config with a unique prefix, its bucket (with objects) and queue. */
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
    return { config, queueUrl: QueueUrl as string };
  }

  /** Stands in for the batcher: the invoke enqueues `count` messages. */
  function batcherThatEnqueues(queueUrl: string, count: number) {
    const lambda = new LambdaClient({ region: 'us-east-1' });
    const mock = mockClient(lambda);
    mock.on(InvokeCommand).callsFake(async () => {
      for (let start = 0; start < count; start += 10) {
        await sqs.client.send(
          new SendMessageBatchCommand({
            QueueUrl: queueUrl,
            Entries: Array.from({ length: Math.min(10, count - start) }, (_, i) => ({
              Id: String(i),
              MessageBody: `m${start + i}`,
            })),
          }),
        );
      }
      return { StatusCode: 202 };
    });
    return { lambda, mock };
  }

  /** Stands in for the analyzers: deletes up to 10 messages every 50 ms until stopped. */
  function drainSlowly(queueUrl: string): () => void {
    let running = true;
    void (async () => {
      while (running) {
        const { Messages = [] } = await sqs.client.send(
          new ReceiveMessageCommand({
            QueueUrl: queueUrl,
            MaxNumberOfMessages: 10,
            WaitTimeSeconds: 0,
          }),
        );
        if (Messages.length > 0) {
          await sqs.client.send(
            new DeleteMessageBatchCommand({
              QueueUrl: queueUrl,
              Entries: Messages.map((m, i) => ({ Id: String(i), ReceiptHandle: m.ReceiptHandle })),
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

  it('invokes the batcher asynchronously and watches the queue until it is empty', async () => {
    const { config, queueUrl } = await deployment('retroa', 3);
    const { lambda, mock } = batcherThatEnqueues(queueUrl, 60);
    const { text, out } = output();
    const stop = drainSlowly(queueUrl);
    try {
      const result = await retroAnalyze({
        config,
        prefix: 'f',
        clients: { s3: s3.client, sqs: sqs.client, lambda },
        pollIntervalMs: 100,
        out,
      });

      expect(result).toMatchObject({ batcherInvoked: true, drained: true, interrupted: false });
      expect(result.peakMessages).toBeGreaterThan(0);
      expect(mock).toHaveReceivedCommandWith(InvokeCommand, {
        FunctionName: resourceNames(config).batcherFunction,
        Qualifier: 'Production',
        InvocationType: 'Event',
      });
      expect(text.join('')).toContain('100%  0 messages left');
      expect(text.join('')).toContain('the queue is empty');
    } finally {
      stop();
    }
  });

  it('passes the prefix and the mode to the batcher', async () => {
    const { config, queueUrl } = await deployment('retrob', 1);
    const { lambda, mock } = batcherThatEnqueues(queueUrl, 0);
    const { out } = output();

    const result = await retroAnalyze({
      config,
      prefix: 'f0',
      mode: 'delta',
      clients: { s3: s3.client, sqs: sqs.client, lambda },
      watch: false,
      out,
    });
    await retroAnalyze({
      config,
      clients: { s3: s3.client, sqs: sqs.client, lambda },
      watch: false,
      out,
    });

    expect(result).toMatchObject({ batcherInvoked: true, drained: false });
    const payloads = mock
      .commandCalls(InvokeCommand)
      .map(
        (call) =>
          JSON.parse(Buffer.from(call.args[0].input.Payload as Uint8Array).toString()) as unknown,
      );
    expect(payloads).toEqual([{ Prefix: 'f0', Mode: 'delta' }, { Mode: 'full' }]);
  });

  it('stops watching on Ctrl-C and leaves the analysis running', async () => {
    const { config, queueUrl } = await deployment('retroc', 1);
    const { lambda } = batcherThatEnqueues(queueUrl, 25);
    const { text, out } = output();
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 300);

    const result = await retroAnalyze({
      config,
      clients: { s3: s3.client, sqs: sqs.client, lambda },
      pollIntervalMs: 100,
      signal: controller.signal,
      out,
    });

    expect(result).toMatchObject({
      batcherInvoked: true,
      drained: false,
      interrupted: true,
      peakMessages: 25,
    });
    expect(text.join('')).toContain('Stopped watching with 25 messages left');
  });

  it('does not start the batcher for an empty bucket', async () => {
    const { config } = await deployment('retrod', 0);
    const lambda = new LambdaClient({ region: 'us-east-1' });
    const mock = mockClient(lambda);
    const { text, out } = output();

    const result = await retroAnalyze({
      config,
      clients: { s3: s3.client, sqs: sqs.client, lambda },
      out,
    });

    expect(result).toMatchObject({ bucketEmpty: true, batcherInvoked: false });
    expect(mock).not.toHaveReceivedCommand(InvokeCommand);
    expect(text.join('')).toContain('Nothing to analyze');
  });
});
