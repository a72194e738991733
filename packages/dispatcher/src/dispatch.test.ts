import { InvokeCommand, LambdaClient } from '@aws-sdk/client-lambda';
import {
  CreateQueueCommand,
  GetQueueAttributesCommand,
  ReceiveMessageCommand,
  SendMessageBatchCommand,
  type SQSClient,
} from '@aws-sdk/client-sqs';
import { createLogger, decodeS3Key, s3EventRecord } from '@binaryalert/core';
import { startSqs, uniqueName, type Emulator } from '@binaryalert/testing';
import { mockClient } from 'aws-sdk-client-mock';
import 'aws-sdk-client-mock-jest';

import { dispatch, type AnalyzerPayload, type DispatchConfig } from './dispatch';

const TEST_EVENT = JSON.stringify({
  Service: 'Amazon S3',
  Event: 's3:TestEvent',
  Time: '2026-11-27T18:00:00.000Z',
  Bucket: 'binaries',
  RequestId: 'R',
  HostId: 'H',
});

function notification(keys: string[]): string {
  return JSON.stringify({ Records: keys.map((key) => s3EventRecord({ bucket: 'binaries', key })) });
}

function payloadsOf(lambdaMock: ReturnType<typeof mockClient>): AnalyzerPayload[] {
  return lambdaMock
    .commandCalls(InvokeCommand)
    .map(
      (call) =>
        JSON.parse(
          Buffer.from(call.args[0].input.Payload as Uint8Array).toString(),
        ) as AnalyzerPayload,
    );
}

describe('dispatch', () => {
  let sqs: Emulator<SQSClient>;
  const lines: Record<string, unknown>[] = [];
  const log = createLogger('dispatcher-test', (line) =>
    lines.push(JSON.parse(line) as Record<string, unknown>),
  );

  beforeAll(async () => {
    sqs = await startSqs();
  });
  afterAll(async () => {
    await sqs.stop();
  });
  beforeEach(() => {
    lines.length = 0;
  });

  async function queueWith(bodies: string[], visibilityTimeout = 30): Promise<string> {
    const { QueueUrl } = await sqs.client.send(
      new CreateQueueCommand({
        QueueName: uniqueName('dispatch'),
        Attributes: { VisibilityTimeout: String(visibilityTimeout) },
      }),
    );
    for (let start = 0; start < bodies.length; start += 10) {
      await sqs.client.send(
        new SendMessageBatchCommand({
          QueueUrl,
          Entries: bodies.slice(start, start + 10).map((MessageBody, index) => ({
            Id: String(index),
            MessageBody,
          })),
        }),
      );
    }
    return QueueUrl as string;
  }

  async function inFlight(QueueUrl: string): Promise<number> {
    const { Attributes } = await sqs.client.send(
      new GetQueueAttributesCommand({
        QueueUrl,
        AttributeNames: ['ApproximateNumberOfMessagesNotVisible'],
      }),
    );
    return Number(Attributes?.ApproximateNumberOfMessagesNotVisible);
  }

  /** Waits out the visibility timeout, then receives every message left in the queue. */
  async function bodiesLeftAfter(QueueUrl: string, visibilityMs: number): Promise<string[]> {
    await new Promise((resolve) => setTimeout(resolve, visibilityMs + 200));
    const bodies: string[] = [];
    for (;;) {
      const { Messages = [] } = await sqs.client.send(
        new ReceiveMessageCommand({ QueueUrl, MaxNumberOfMessages: 10, VisibilityTimeout: 60 }),
      );
      if (Messages.length === 0) return bodies.sort();
      bodies.push(...Messages.map((m) => m.Body as string));
    }
  }

  function config(queueUrl: string, overrides: Partial<DispatchConfig> = {}): DispatchConfig {
    return {
      queueUrl,
      analyzerFunctionName: 'prefix_binaryalert_analyzer',
      analyzerQualifier: 'Production',
      maxInvocations: 10,
      waitTimeSeconds: 1,
      receiveConcurrency: 2,
      marginMs: 0,
      ...overrides,
    };
  }

  /** Remaining time that really runs out, so the dispatch loop ends by its own rule. */
  function budget(ms: number): () => number {
    const deadline = Date.now() + ms;
    return () => deadline - Date.now();
  }

  it('deletes test events and invalid bodies and invokes the analyzer with the valid ones', async () => {
    const valid = [
      notification(['a.exe', 'dir/with space.bin']),
      notification(['unicodé+plus.dll']),
    ];
    const queueUrl = await queueWith(
      [
        valid[0] as string,
        TEST_EVENT,
        'not json at all',
        JSON.stringify({ hello: 'world' }),
        valid[1] as string,
      ],
      2,
    );
    const lambda = new LambdaClient({ region: 'us-east-1' });
    const lambdaMock = mockClient(lambda);
    lambdaMock.on(InvokeCommand).resolves({ StatusCode: 202 });

    const result = await dispatch({ sqs: sqs.client, lambda, log }, config(queueUrl), budget(1800));

    const payloads = payloadsOf(lambdaMock);
    const keys = payloads.flatMap((p) => p.Records.map((r) => decodeS3Key(r.s3.object.key)));
    expect(keys.sort()).toEqual(['a.exe', 'dir/with space.bin', 'unicodé+plus.dll']);
    expect(payloads.flatMap((p) => p.SQSReceipts)).toHaveLength(2);
    // Each record points at the receipt of the message it came from.
    const keysPerMessage = payloads.flatMap((payload) =>
      payload.SQSReceipts.map((_, receipt) =>
        payload.Records.filter((_record, index) => payload.RecordReceipts[index] === receipt)
          .map((record) => decodeS3Key(record.s3.object.key))
          .sort(),
      ),
    );
    expect(keysPerMessage.sort()).toEqual([['a.exe', 'dir/with space.bin'], ['unicodé+plus.dll']]);
    expect(lambdaMock).toHaveReceivedCommandWith(InvokeCommand, {
      FunctionName: 'prefix_binaryalert_analyzer',
      Qualifier: 'Production',
      InvocationType: 'Event',
    });
    expect(result).toMatchObject({
      invocations: payloads.length,
      dispatchedMessages: 2,
      deletedMessages: 3,
    });
    expect(lines.filter((line) => line.level === 'warn')).toHaveLength(3);
    // Only the forwarded messages remain (the analyzer deletes them once analyzed).
    expect(await bodiesLeftAfter(queueUrl, 2000)).toEqual([...valid].sort());
  });

  it('leaves messages of a failed invocation to become visible again', async () => {
    const bodies = [notification(['x.exe']), notification(['y.exe'])];
    const queueUrl = await queueWith(bodies, 2);
    const lambda = new LambdaClient({ region: 'us-east-1' });
    const lambdaMock = mockClient(lambda);
    lambdaMock.on(InvokeCommand).rejects(new Error('TooManyRequestsException'));

    const result = await dispatch(
      { sqs: sqs.client, lambda, log },
      config(queueUrl, { maxInvocations: 1, receiveConcurrency: 1 }),
      budget(5000),
    );

    expect(result).toMatchObject({ invocations: 0, failedInvocations: 1, dispatchedMessages: 0 });
    expect(lambdaMock).toHaveReceivedCommandTimes(InvokeCommand, 1);
    expect(await bodiesLeftAfter(queueUrl, 2000)).toEqual([...bodies].sort());
  });

  it('stops at the invocation limit with up to ten messages per invocation', async () => {
    const queueUrl = await queueWith(
      Array.from({ length: 35 }, (_, i) => notification([`file-${i}`])),
    );
    const lambda = new LambdaClient({ region: 'us-east-1' });
    const lambdaMock = mockClient(lambda);
    lambdaMock.on(InvokeCommand).resolves({ StatusCode: 202 });

    const result = await dispatch(
      { sqs: sqs.client, lambda, log },
      config(queueUrl, { maxInvocations: 2, receiveConcurrency: 3 }),
      budget(10_000),
    );

    const payloads = payloadsOf(lambdaMock);
    expect(payloads).toHaveLength(2);
    expect(result.invocations).toBe(2);
    for (const payload of payloads) {
      expect(payload.Records.length).toBe(payload.SQSReceipts.length);
      expect(payload.RecordReceipts).toEqual(payload.SQSReceipts.map((_, index) => index));
      expect(payload.Records.length).toBeLessThanOrEqual(10);
    }
    expect(await inFlight(queueUrl)).toBe(result.dispatchedMessages);
    expect(result.dispatchedMessages).toBe(
      payloads.reduce((sum, p) => sum + p.SQSReceipts.length, 0),
    );
  });

  it('does not start a long poll without the time for it', async () => {
    const queueUrl = await queueWith([notification(['late.exe'])]);
    const lambda = new LambdaClient({ region: 'us-east-1' });
    const lambdaMock = mockClient(lambda);

    const result = await dispatch(
      { sqs: sqs.client, lambda, log },
      config(queueUrl, { waitTimeSeconds: 5, marginMs: 1000 }),
      () => 5500,
    );

    expect(result.invocations).toBe(0);
    expect(lambdaMock).not.toHaveReceivedCommand(InvokeCommand);
    expect(await inFlight(queueUrl)).toBe(0);
  });
});
