import { InvokeCommand, LambdaClient } from '@aws-sdk/client-lambda';
import {
  CreateBucketCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import {
  CreateQueueCommand,
  DeleteMessageBatchCommand,
  GetQueueAttributesCommand,
  ReceiveMessageCommand,
  SendMessageBatchCommand,
  SQSClient,
  type SQSClient as SQSClientType,
} from '@aws-sdk/client-sqs';
import {
  createLogger,
  createMetrics,
  objectsOfNotification,
  parseS3Notification,
  type S3ObjectRef,
} from '@binaryalert/core';
import {
  captureEmf,
  startS3,
  startSqs,
  uniqueName,
  type EmfCapture,
  type Emulator,
} from '@binaryalert/testing';
import { mockClient } from 'aws-sdk-client-mock';
import 'aws-sdk-client-mock-jest';

import {
  enqueueBucket,
  packMessages,
  type BatchEvent,
  type BatcherConfig,
  type BatcherDeps,
} from './enqueue';

const OBJECT_COUNT = 2500;
// Keys as users name them: spaces, unicode, '+', and characters S3 percent-encodes.
const KEYS = Array.from({ length: OBJECT_COUNT }, (_, i) => {
  const variants = [
    `plain/${i}.exe`,
    `with space/${i} file.bin`,
    `unicodé/ü-${i}.dll`,
    `plus+sign/${i}+x`,
    `odd/${i}?&=%.txt`,
  ];
  return variants[i % variants.length] as string;
});

describe('packMessages', () => {
  it('keeps ten messages of 1,024-byte unicode keys within one analyzer invocation (1 MB)', () => {
    const objects = Array.from({ length: 1000 }, (_, i) => {
      const head = `long/${String(i).padStart(4, '0')}-`;
      return { Key: `${head}${'ü'.repeat((1024 - head.length) / 2)}`, Size: 1 };
    });

    const messages = packMessages('binaries', objects, 100);

    // The dispatcher's payload for one receive of ten of them (dispatch.ts AnalyzerPayload),
    // with receipt handles of the most SQS gives (1,024 bytes).
    const received = [...messages].sort((a, b) => b.body.length - a.body.length).slice(0, 10);
    const records = received.map((message) => parseS3Notification(message.body));
    const payload = {
      Records: records.flatMap((n) => (n.kind === 'records' ? n.records : [])),
      SQSReceipts: received.map(() => 'r'.repeat(1024)),
      RecordReceipts: records.flatMap((n, i) =>
        n.kind === 'records' ? n.records.map(() => i) : [],
      ),
      DispatchSlot: { Slot: 999, Holder: '00000000-0000-0000-0000-000000000000' },
    };
    expect(payload.Records).toHaveLength(received.reduce((sum, m) => sum + m.keys, 0));
    expect(Buffer.byteLength(JSON.stringify(payload))).toBeLessThanOrEqual(1_000_000);
    const packed = messages.flatMap((m) => objectsOfNotification(m.body).map((r) => r.key));
    expect(packed).toEqual(objects.map((o) => o.Key));
    expect(messages.every((m) => m.keys <= 100)).toBe(true);
  });
});

describe('enqueueBucket', () => {
  let s3: Emulator<S3Client>;
  let sqs: Emulator<SQSClientType>;
  const bucket = uniqueName('retro');
  const log = createLogger('batcher-test', () => undefined);
  let emf: EmfCapture;
  beforeEach(() => {
    emf = captureEmf();
  });
  afterEach(() => emf.restore());

  beforeAll(async () => {
    [s3, sqs] = await Promise.all([startS3(), startSqs()]);
    await s3.client.send(new CreateBucketCommand({ Bucket: bucket }));
    let next = 0;
    const upload = async (): Promise<void> => {
      while (next < KEYS.length) {
        const Key = KEYS[next++] as string;
        await s3.client.send(new PutObjectCommand({ Bucket: bucket, Key, Body: Key }));
      }
    };
    await Promise.all(Array.from({ length: 16 }, upload));
  }, 120_000);
  afterAll(async () => {
    await Promise.all([s3?.stop(), sqs?.stop()]);
  });

  async function newQueue(): Promise<string> {
    const { QueueUrl } = await sqs.client.send(
      new CreateQueueCommand({ QueueName: uniqueName('retro') }),
    );
    return QueueUrl as string;
  }

  /** Receives and deletes everything in the queue; returns the decoded keys of all records. */
  async function drain(
    QueueUrl: string,
  ): Promise<{ keys: string[]; messages: number; deltaKeys: string[]; refs: S3ObjectRef[] }> {
    const keys: string[] = [];
    const deltaKeys: string[] = [];
    const refs: S3ObjectRef[] = [];
    let messages = 0;
    for (;;) {
      const { Messages = [] } = await sqs.client.send(
        new ReceiveMessageCommand({ QueueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 0 }),
      );
      // An empty receive proves nothing on a busy machine: stop only when the queue says it is empty.
      if (Messages.length === 0) {
        const { Attributes = {} } = await sqs.client.send(
          new GetQueueAttributesCommand({
            QueueUrl,
            AttributeNames: [
              'ApproximateNumberOfMessages',
              'ApproximateNumberOfMessagesNotVisible',
            ],
          }),
        );
        const left =
          Number(Attributes.ApproximateNumberOfMessages ?? 0) +
          Number(Attributes.ApproximateNumberOfMessagesNotVisible ?? 0);
        if (left === 0) return { keys, messages, deltaKeys, refs };
        continue;
      }
      for (const message of Messages) {
        const records = objectsOfNotification(message.Body);
        keys.push(...records.map((record) => record.key));
        refs.push(...records);
        deltaKeys.push(...records.filter((r) => r.retro === 'delta').map((r) => r.key));
        // The wire format must be what S3 sends: URL-encoded keys.
        const raw = JSON.parse(message.Body as string) as {
          Records: { s3: { object: { key: string } } }[];
        };
        for (const record of raw.Records) expect(record.s3.object.key).not.toMatch(/[ ?&=]/);
        messages += 1;
      }
      await sqs.client.send(
        new DeleteMessageBatchCommand({
          QueueUrl,
          Entries: Messages.map((m, i) => ({ Id: String(i), ReceiptHandle: m.ReceiptHandle })),
        }),
      );
    }
  }

  function mocks(): {
    deps: Omit<BatcherDeps, 'sqs'>;
    lambdaMock: ReturnType<typeof mockClient>;
  } {
    const lambda = new LambdaClient({ region: 'us-east-1' });
    const lambdaMock = mockClient(lambda);
    lambdaMock.on(InvokeCommand).resolves({ StatusCode: 202 });
    const metrics = createMetrics('prefix_binaryalert_batcher', log);
    return { deps: { s3: s3.client, lambda, metrics, log }, lambdaMock };
  }

  function config(queueUrl: string, overrides: Partial<BatcherConfig> = {}): BatcherConfig {
    return {
      bucket,
      queueUrl,
      objectsPerMessage: 7,
      functionName: 'prefix_binaryalert_batcher',
      qualifier: 'Production',
      ...overrides,
    };
  }

  /** BatchEnqueueFailures as the run wrote it in its EMF line, in the batcher's service. */
  function failureMetric(): number | undefined {
    const written = emf.metrics().filter((metric) => metric.name === 'BatchEnqueueFailures');
    expect(written).toHaveLength(1);
    expect(written[0]).toMatchObject({
      namespace: 'BinaryAlert',
      unit: 'Count',
      dimensionSets: [{ service: 'prefix_binaryalert_batcher' }],
    });
    return written[0]?.values[0];
  }

  it('enqueues every object of a 2,500-object bucket exactly once', async () => {
    const queueUrl = await newQueue();
    const { deps, lambdaMock } = mocks();

    const started = Date.now();
    const result = await enqueueBucket(
      { ...deps, sqs: sqs.client },
      config(queueUrl),
      {},
      () => 900_000,
    );
    const elapsedMs = Date.now() - started;

    const { keys, messages } = await drain(queueUrl);
    expect(result).toEqual({
      enqueuedKeys: OBJECT_COUNT,
      failedKeys: 0,
      failedMessages: 0,
      continued: false,
    });
    expect(keys).toHaveLength(OBJECT_COUNT);
    expect(new Set(keys)).toEqual(new Set(KEYS));
    expect(messages).toBe(Math.ceil(1000 / 7) * 2 + Math.ceil(500 / 7));
    expect(lambdaMock).not.toHaveReceivedCommand(InvokeCommand);
    expect(failureMetric()).toBe(0);
    log.info('enqueue throughput', {
      objectsPerSecond: Math.round((OBJECT_COUNT * 1000) / elapsedMs),
    });
  });

  it('continues across re-invocations when time runs short, still enqueueing each object once', async () => {
    const queueUrl = await newQueue();
    const { deps, lambdaMock } = mocks();
    const functionConfig = config(queueUrl, { objectsPerMessage: 10 });

    // Each run has too little time for more than its first page, so it hands over every time.
    let event: BatchEvent = {};
    const results = [];
    for (let run = 0; run < 10; run++) {
      lambdaMock.resetHistory();
      results.push(
        await enqueueBucket({ ...deps, sqs: sqs.client }, functionConfig, event, () => 1000),
      );
      const invokes = lambdaMock.commandCalls(InvokeCommand);
      if (invokes.length === 0) break;
      expect(invokes).toHaveLength(1);
      const input = invokes[0]?.args[0].input;
      expect(input).toMatchObject({
        FunctionName: 'prefix_binaryalert_batcher',
        Qualifier: 'Production',
        InvocationType: 'Event',
      });
      event = JSON.parse(Buffer.from(input?.Payload as Uint8Array).toString()) as BatchEvent;
    }

    expect(results.map((r) => [r.enqueuedKeys, r.continued])).toEqual([
      [1000, true],
      [1000, true],
      [500, false],
    ]);
    const { keys } = await drain(queueUrl);
    expect(keys.sort()).toEqual([...KEYS].sort());
  });

  it('marks every record of a delta re-scan, also after handing over, and no record of a full one', async () => {
    const queueUrl = await newQueue();
    const { deps, lambdaMock } = mocks();
    const functionConfig = config(queueUrl, { objectsPerMessage: 10 });

    await enqueueBucket(
      { ...deps, sqs: sqs.client },
      functionConfig,
      { Mode: 'delta' },
      () => 1000,
    );
    const handedOver = JSON.parse(
      Buffer.from(
        lambdaMock.commandCalls(InvokeCommand)[0]?.args[0].input.Payload as Uint8Array,
      ).toString(),
    ) as BatchEvent;
    await enqueueBucket({ ...deps, sqs: sqs.client }, functionConfig, handedOver, () => 900_000);
    const delta = await drain(queueUrl);
    await enqueueBucket(
      { ...deps, sqs: sqs.client },
      functionConfig,
      { Prefix: 'plain/' },
      () => 900_000,
    );
    const full = await drain(queueUrl);

    expect(handedOver.Mode).toBe('delta');
    expect(delta.deltaKeys.sort()).toEqual([...KEYS].sort());
    expect(full.keys.length).toBeGreaterThan(0);
    expect(full.deltaKeys).toEqual([]);
  });

  it("gives each delta record the listing's ETag, size and Last-Modified and when it was listed, so the analyzer needs no HEAD", async () => {
    const queueUrl = await newQueue();
    const { deps } = mocks();
    const before = new Date();

    await enqueueBucket(
      { ...deps, sqs: sqs.client },
      config(queueUrl),
      { Prefix: 'unicodé/', Mode: 'delta' },
      () => 900_000,
    );
    const after = new Date();
    const { refs } = await drain(queueUrl);
    await enqueueBucket(
      { ...deps, sqs: sqs.client },
      config(queueUrl),
      { Prefix: 'unicodé/' },
      () => 900_000,
    );
    const full = await drain(queueUrl);

    const { Contents = [] } = await s3.client.send(
      new ListObjectsV2Command({ Bucket: bucket, Prefix: 'unicodé/' }),
    );
    expect(refs).toHaveLength(Contents.length);
    const listedAt = refs[0]!.listed!.listedAt;
    expect(Date.parse(listedAt)).toBeGreaterThanOrEqual(before.getTime());
    expect(Date.parse(listedAt)).toBeLessThanOrEqual(after.getTime());
    const byKey = new Map(refs.map((ref) => [ref.key, ref]));
    for (const object of Contents) {
      expect(byKey.get(object.Key!)).toEqual({
        bucket,
        key: object.Key,
        size: object.Size,
        retro: 'delta',
        listed: {
          etag: object.ETag,
          size: object.Size,
          lastModified: object.LastModified!.toISOString(),
          listedAt,
        },
      });
    }
    // A full re-scan needs none of it.
    expect(full.refs.filter((ref) => ref.listed !== undefined)).toEqual([]);
  });

  it('enqueues only the keys under the prefix', async () => {
    const queueUrl = await newQueue();
    const { deps } = mocks();

    const result = await enqueueBucket(
      { ...deps, sqs: sqs.client },
      config(queueUrl),
      { Prefix: 'plus+sign/' },
      () => 900_000,
    );

    const { keys } = await drain(queueUrl);
    const expected = KEYS.filter((key) => key.startsWith('plus+sign/'));
    expect(result.enqueuedKeys).toBe(expected.length);
    expect(keys.sort()).toEqual(expected.sort());
  });

  it('enqueues 1,024-byte unicode keys 100 to a message without a batch over 1 MiB', async () => {
    const longBucket = uniqueName('retro-long');
    await s3.client.send(new CreateBucketCommand({ Bucket: longBucket }));
    // 1,024 bytes each; every byte of 'ü' is URL-encoded as three characters in the message.
    const longKeys = Array.from({ length: 320 }, (_, i) => {
      const head = `long/${String(i).padStart(4, '0')}-`;
      return `${head}${'ü'.repeat((1024 - head.length) / 2)}`;
    });
    expect(longKeys.every((key) => Buffer.byteLength(key) === 1024)).toBe(true);
    let next = 0;
    const upload = async (): Promise<void> => {
      while (next < longKeys.length) {
        const Key = longKeys[next++] as string;
        await s3.client.send(new PutObjectCommand({ Bucket: longBucket, Key, Body: 'x' }));
      }
    };
    await Promise.all(Array.from({ length: 16 }, upload));
    const queueUrl = await newQueue();
    const { deps } = mocks();

    const result = await enqueueBucket(
      { ...deps, sqs: sqs.client },
      config(queueUrl, { bucket: longBucket, objectsPerMessage: 100, maxSendAttempts: 1 }),
      {},
      () => 900_000,
    );

    expect(result).toMatchObject({ enqueuedKeys: 320, failedKeys: 0, failedMessages: 0 });
    const { keys } = await drain(queueUrl);
    expect(keys.sort()).toEqual(longKeys);
  }, 60_000);

  it('retries failed entries and reports those that keep failing as BatchEnqueueFailures', async () => {
    const sqsFailing = new SQSClient({ region: 'us-east-1' });
    const sqsMock = mockClient(sqsFailing);
    let calls = 0;
    const hasKey = (body: string, key: string): boolean =>
      objectsOfNotification(body).some((record) => record.key === key);
    sqsMock
      .on(SendMessageBatchCommand)
      .callsFake((input: { Entries: { Id: string; MessageBody: string }[] }) => {
        calls += 1;
        // The first call fails its entry "1" once; the message holding plain/0.exe always fails.
        const failed = input.Entries.filter(
          (entry) => (calls === 1 && entry.Id === '1') || hasKey(entry.MessageBody, 'plain/0.exe'),
        );
        return {
          Successful: input.Entries.filter((e) => !failed.includes(e)).map((e) => ({
            Id: e.Id,
            MessageId: e.Id,
            MD5OfMessageBody: '',
          })),
          Failed: failed.map((e) => ({ Id: e.Id, SenderFault: false, Code: 'InternalError' })),
        };
      });
    const { deps } = mocks();

    const result = await enqueueBucket(
      { ...deps, sqs: sqsFailing },
      config('http://127.0.0.1:1/000000000000/unused', {
        objectsPerMessage: 10,
        sendConcurrency: 1,
        maxSendAttempts: 3,
      }),
      { Prefix: 'plain/' },
      () => 900_000,
    );

    expect(result).toMatchObject({ enqueuedKeys: 500 - 10, failedKeys: 10, failedMessages: 1 });
    // 5 batches, then two retries of the failing entries of the first batch.
    expect(calls).toBe(7);
    expect(failureMetric()).toBe(1);
  });

  it('keeps several SendMessageBatch calls in flight at once', async () => {
    const sqsSlow = new SQSClient({ region: 'us-east-1' });
    let inFlight = 0;
    let mostInFlight = 0;
    mockClient(sqsSlow)
      .on(SendMessageBatchCommand)
      .callsFake(async (input: { Entries: { Id: string }[] }) => {
        inFlight += 1;
        mostInFlight = Math.max(mostInFlight, inFlight);
        await new Promise((resolve) => setTimeout(resolve, 20));
        inFlight -= 1;
        return {
          Successful: input.Entries.map((e) => ({
            Id: e.Id,
            MessageId: e.Id,
            MD5OfMessageBody: '',
          })),
          Failed: [],
        };
      });
    const { deps } = mocks();

    const result = await enqueueBucket(
      { ...deps, sqs: sqsSlow },
      config('http://127.0.0.1:1/000000000000/unused', {
        objectsPerMessage: 1,
        sendConcurrency: 8,
      }),
      { Prefix: 'plain/' },
      () => 900_000,
    );

    expect(result.enqueuedKeys).toBe(500);
    expect(mostInFlight).toBe(8);
  });
});
