import {
  InvokeCommand,
  LambdaClient,
  RequestTooLargeException,
  TooManyRequestsException,
} from '@aws-sdk/client-lambda';
import {
  CreateQueueCommand,
  GetQueueAttributesCommand,
  ReceiveMessageCommand,
  SendMessageBatchCommand,
  SendMessageCommand,
  type SQSClient,
} from '@aws-sdk/client-sqs';
import { CreateTableCommand, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import {
  createLogger,
  decodeS3Key,
  deleteReceipts,
  dispatchSlotsTableDefinition,
  heldSlots,
  objectsOfNotification,
  releaseSlot,
  s3EventRecord,
} from '@binaryalert/core';
import { startDynamo, startSqs, uniqueName, type Emulator } from '@binaryalert/testing';
import { mockClient } from 'aws-sdk-client-mock';
import 'aws-sdk-client-mock-jest';

import { dispatch, type AnalyzerPayload, type DispatchConfig, type DispatchDeps } from './dispatch';
import { DispatchSlots } from './slots';

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
  let dynamo: Emulator<DynamoDBClient>;
  const lines: Record<string, unknown>[] = [];
  const log = createLogger('dispatcher-test', (line) =>
    lines.push(JSON.parse(line) as Record<string, unknown>),
  );

  beforeAll(async () => {
    [sqs, dynamo] = await Promise.all([startSqs(), startDynamo()]);
  });
  afterAll(async () => {
    await Promise.all([sqs.stop(), dynamo.stop()]);
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

  /** A fresh slots table with `capacity` slots held for `leaseSeconds` unless released. */
  async function slotsTable(capacity = 50, leaseSeconds = 600) {
    const table = uniqueName('slots');
    await dynamo.client.send(new CreateTableCommand(dispatchSlotsTableDefinition(table)));
    return {
      table,
      slots: new DispatchSlots(
        dynamo.client,
        { table, capacity, leaseSeconds, rescanMs: 100 },
        log,
      ),
    };
  }

  async function depsWith(lambda: LambdaClient, capacity = 50): Promise<DispatchDeps> {
    return { sqs: sqs.client, lambda, log, slots: (await slotsTable(capacity)).slots };
  }

  /** Remaining time that really runs out, so the dispatch loop ends by its own rule. */
  function budget(ms: number): () => number {
    const deadline = Date.now() + ms;
    return () => deadline - Date.now();
  }

  it('deletes test events and invalid bodies and invokes the analyzer with the valid ones', async () => {
    const longKey = 'é'.repeat(512); // 1,024 bytes, the longest key S3 allows
    const valid = [
      notification(['a.exe', 'dir/with space.bin']),
      notification(['unicodé+plus.dll']),
      // S3 -> SNS -> SQS: the records inside the envelope are forwarded.
      JSON.stringify({
        Type: 'Notification',
        Message: notification(['../../etc/passwd', longKey]),
      }),
    ];
    const invalid = [
      TEST_EVENT,
      'not json at all',
      JSON.stringify({ hello: 'world' }),
      JSON.stringify({ Records: [] }),
      JSON.stringify({
        version: '0',
        'detail-type': 'Object Created',
        source: 'aws.s3',
        detail: { bucket: { name: 'binaries' }, object: { key: 'a.exe' } },
      }),
    ];
    const queueUrl = await queueWith([...valid, ...invalid], 2);
    const lambda = new LambdaClient({ region: 'us-east-1' });
    const lambdaMock = mockClient(lambda);
    lambdaMock.on(InvokeCommand).resolves({ StatusCode: 202 });

    const result = await dispatch(await depsWith(lambda), config(queueUrl), budget(1800));

    const payloads = payloadsOf(lambdaMock);
    const keys = payloads.flatMap((p) => p.Records.map((r) => decodeS3Key(r.s3.object.key)));
    expect(keys.sort()).toEqual(
      ['../../etc/passwd', 'a.exe', 'dir/with space.bin', longKey, 'unicodé+plus.dll'].sort(),
    );
    expect(payloads.flatMap((p) => p.SQSReceipts)).toHaveLength(3);
    // Each record points at the receipt of the message it came from.
    const keysPerMessage = payloads.flatMap((payload) =>
      payload.SQSReceipts.map((_, receipt) =>
        payload.Records.filter((_record, index) => payload.RecordReceipts[index] === receipt)
          .map((record) => decodeS3Key(record.s3.object.key))
          .sort(),
      ),
    );
    expect(keysPerMessage.sort()).toEqual(
      [['../../etc/passwd', longKey], ['a.exe', 'dir/with space.bin'], ['unicodé+plus.dll']].sort(),
    );
    expect(lambdaMock).toHaveReceivedCommandWith(InvokeCommand, {
      FunctionName: 'prefix_binaryalert_analyzer',
      Qualifier: 'Production',
      InvocationType: 'Event',
    });
    expect(result).toMatchObject({
      invocations: payloads.length,
      dispatchedMessages: 3,
      deletedMessages: 5,
    });
    const warnings = lines.filter((line) => line.level === 'WARN').map((line) => line.message);
    expect(warnings.sort()).toEqual([
      'deleting S3 test event',
      'deleting message that is not an S3 event notification: an EventBridge event ("Object Created"), not an S3 event notification',
      'deleting message that is not an S3 event notification: an S3 event notification without records',
      expect.stringMatching(
        /^deleting message that is not an S3 event notification: body is not JSON/,
      ),
      expect.stringMatching(
        /^deleting message that is not an S3 event notification: not an S3 event notification: Records/,
      ),
    ]);
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
      await depsWith(lambda),
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
      await depsWith(lambda),
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

  it('keeps each analyzer payload within 1 MB, leaving what does not fit for a later receive', async () => {
    const { QueueUrl } = await sqs.client.send(
      new CreateQueueCommand({
        QueueName: uniqueName('dispatch'),
        Attributes: { VisibilityTimeout: '2' },
      }),
    );
    // Two retro messages of about 600 KB (500 keys of 1,000 bytes) and two S3 notifications.
    const big = (name: string) =>
      notification(Array.from({ length: 500 }, (_, i) => `${name}/${i}-${'k'.repeat(990)}`));
    const bodies = [big('big-a'), big('big-b'), notification(['a.exe']), notification(['b.exe'])];
    for (const MessageBody of bodies) {
      await sqs.client.send(new SendMessageCommand({ QueueUrl, MessageBody }));
    }
    const lambda = new LambdaClient({ region: 'us-east-1' });
    const lambdaMock = mockClient(lambda);
    // Lambda refuses an asynchronous payload over 1 MB with a 413; the analyzer it starts
    // deletes the messages it was given once they are analyzed.
    lambdaMock.on(InvokeCommand).callsFake(async (input: { Payload: Uint8Array }) => {
      if (input.Payload.length > 1_000_000) {
        throw new RequestTooLargeException({
          message: 'Request must be smaller than 1048576 bytes for the InvokeFunction operation',
          $metadata: { httpStatusCode: 413 },
        });
      }
      const { SQSReceipts } = JSON.parse(Buffer.from(input.Payload).toString()) as AnalyzerPayload;
      await deleteReceipts(sqs.client, QueueUrl as string, SQSReceipts, log);
      return { StatusCode: 202 };
    });

    const result = await dispatch(
      await depsWith(lambda),
      config(QueueUrl as string, { receiveConcurrency: 1 }),
      budget(5000),
    );

    expect(result).toMatchObject({ failedInvocations: 0, dispatchedMessages: 4 });
    const keys = payloadsOf(lambdaMock).flatMap((p) =>
      p.Records.map((r) => decodeS3Key(r.s3.object.key)),
    );
    const sent = bodies.flatMap((body) => objectsOfNotification(body).map((ref) => ref.key));
    expect(keys.length).toBe(sent.length);
    expect(new Set(keys)).toEqual(new Set(sent));
    expect(await inFlight(QueueUrl as string)).toBe(0);
  }, 20_000);

  it('does not start a long poll without the time for it', async () => {
    const queueUrl = await queueWith([notification(['late.exe'])]);
    const lambda = new LambdaClient({ region: 'us-east-1' });
    const lambdaMock = mockClient(lambda);

    const result = await dispatch(
      await depsWith(lambda),
      config(queueUrl, { waitTimeSeconds: 5, marginMs: 1000 }),
      () => 5500,
    );

    expect(result.invocations).toBe(0);
    expect(lambdaMock).not.toHaveReceivedCommand(InvokeCommand);
    expect(await inFlight(queueUrl)).toBe(0);
  });

  describe('dispatch slots', () => {
    const accepting = () => {
      const lambda = new LambdaClient({ region: 'us-east-1' });
      const lambdaMock = mockClient(lambda);
      lambdaMock.on(InvokeCommand).resolves({ StatusCode: 202 });
      return { lambda, lambdaMock };
    };
    const manyMessages = (count: number) =>
      queueWith(Array.from({ length: count }, (_, i) => notification([`slot-${i}.exe`])));
    const slotsOf = (payloads: AnalyzerPayload[]) =>
      payloads.map((payload) => payload.DispatchSlot.Slot).sort();

    it('never has more analyzers in flight than slots, across overlapping runs, and starts one when a slot is released', async () => {
      const queueUrl = await manyMessages(40);
      const { table, slots } = await slotsTable(3);
      const { lambda, lambdaMock } = accepting();
      const deps = { sqs: sqs.client, lambda, log, slots };
      const run = () =>
        dispatch(
          deps,
          config(queueUrl, { maxInvocations: 20, receiveConcurrency: 3, slotWaitMs: 50 }),
          budget(2500),
        );

      // Two dispatcher runs at once (a late run overlapping the next one).
      const [first, second] = await Promise.all([run(), run()]);

      expect(first.invocations + second.invocations).toBe(3);
      expect(first.slotWaits + second.slotWaits).toBeGreaterThan(0);
      expect(slotsOf(payloadsOf(lambdaMock))).toEqual([0, 1, 2]);
      expect([...(await heldSlots(dynamo.client, table, Date.now()))].sort()).toEqual([0, 1, 2]);

      // The analyzer holding slot 1 finishes and gives it back.
      const finished = payloadsOf(lambdaMock).find((p) => p.DispatchSlot.Slot === 1)!;
      await releaseSlot(dynamo.client, table, {
        slot: finished.DispatchSlot.Slot,
        holder: finished.DispatchSlot.Holder,
      });
      lambdaMock.resetHistory();
      const third = await run();

      expect(third.invocations).toBe(1);
      expect(slotsOf(payloadsOf(lambdaMock))).toEqual([1]);
    });

    it('frees the slot of an analyzer that never released it once the lease runs out', async () => {
      // The messages come back after 1 s, as if their analyzer's event had been dropped.
      const queueUrl = await queueWith([notification(['dropped.exe'])], 1);
      const { slots } = await slotsTable(1, 10);
      const { lambda } = accepting();
      const deps = { sqs: sqs.client, lambda, log, slots };
      const run = (ms: number) =>
        dispatch(deps, config(queueUrl, { maxInvocations: 5, slotWaitMs: 50 }), budget(ms));
      // Budgets leave room for a slow machine; only the lease boundary decides the counts.
      const startedAt = Date.now();

      expect((await run(3000)).invocations).toBe(1);
      expect((await run(1600)).invocations).toBe(0); // ends well inside the 10 s lease
      const pastLease = startedAt + 11_500;
      await new Promise((resolve) => setTimeout(resolve, Math.max(0, pastLease - Date.now())));
      expect((await run(5000)).invocations).toBe(1);
    });

    it('gives the slot back when nothing arrived or Lambda refused, and keeps it when the event may be queued', async () => {
      const emptyQueue = await queueWith([]);
      const refused = new LambdaClient({ region: 'us-east-1' });
      mockClient(refused)
        .on(InvokeCommand)
        .rejects(
          new TooManyRequestsException({
            message: 'Rate exceeded',
            $metadata: { httpStatusCode: 429 },
          }),
        );
      const timedOut = new LambdaClient({ region: 'us-east-1' });
      mockClient(timedOut).on(InvokeCommand).rejects(new Error('socket hang up'));
      const held = async (lambda: LambdaClient, queueUrl: string) => {
        const { table, slots } = await slotsTable(2);
        await dispatch(
          { sqs: sqs.client, lambda, log, slots },
          config(queueUrl, { maxInvocations: 1, receiveConcurrency: 1 }),
          budget(1500),
        );
        return (await heldSlots(dynamo.client, table, Date.now())).size;
      };

      expect(await held(accepting().lambda, emptyQueue)).toBe(0);
      expect(await held(refused, await manyMessages(1))).toBe(0);
      expect(await held(timedOut, await manyMessages(1))).toBe(1);
    });

    it('starts nothing and receives nothing when the slots table cannot be read', async () => {
      const queueUrl = await manyMessages(3);
      const { lambda, lambdaMock } = accepting();
      const slots = new DispatchSlots(
        dynamo.client,
        { table: uniqueName('missing'), capacity: 5, leaseSeconds: 600 },
        log,
      );

      const result = await dispatch(
        { sqs: sqs.client, lambda, log, slots },
        config(queueUrl, { slotWaitMs: 50 }),
        budget(1600),
      );

      expect(result.invocations).toBe(0);
      expect(lambdaMock).not.toHaveReceivedCommand(InvokeCommand);
      expect(await inFlight(queueUrl)).toBe(0);
      expect(lines.some((line) => line.message === 'cannot take a dispatch slot')).toBe(true);
    });
  });
});
