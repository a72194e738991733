import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import {
  CreateTableCommand,
  GetItemCommand,
  UpdateItemCommand,
  type DynamoDBClient,
} from '@aws-sdk/client-dynamodb';
import { CreateBucketCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { PublishCommand, SNSClient } from '@aws-sdk/client-sns';
import {
  CreateQueueCommand,
  GetQueueAttributesCommand,
  type Message,
  ReceiveMessageCommand,
  SendMessageCommand,
  SQSClient,
} from '@aws-sdk/client-sqs';
import 'aws-sdk-client-mock-jest';
import { mockClient } from 'aws-sdk-client-mock';
import {
  createLogger,
  createMetrics,
  DEFAULT_ARCHIVE_SETTINGS,
  decodeS3Key,
  dispatchSlotsTableDefinition,
  heldSlots,
  takeSlot,
  encodeS3Key,
  s3EventRecord,
  type FileSummary,
  type S3EventRecord,
} from '@binaryalert/core';
import {
  captureEmf,
  clientConfig,
  type EmfCapture,
  startDynamo,
  startS3,
  startSqs,
  uniqueName,
  type Emulator,
} from '@binaryalert/testing';
import { compileRules, type CompiledRules } from '@binaryalert/yara';
import { type AnalyzerDeps, type AnalyzerSettings } from './analyze';
import { handleInvocation, type AnalysisResults, type SqsBatchResponse } from './invocation';
import { AnalysisFailedError } from './errors';
import { readVerdict } from './ledger';
import { fixedRules, unreleasedRules } from './rules-release';
import { createMatchTable, createVerdictTable } from './testing';

const RULES = `
rule evil_marker : malware {
  meta:
    description = "contains the test marker"
    score = 5
  strings:
    $marker = "EVIL_MARKER"
  condition:
    $marker
}

rule named_payload {
  condition:
    filename == "payload.exe" and extension == ".exe" and filetype == "EXE"
}

// Only big files reach the nested loops, which exceed any timeout.
rule slow_for_big_files {
  condition:
    filesize > 60000 and
    for any i in (0..filesize) : (
      for any j in (0..filesize) : (uint8(i) == 0x42 and uint8(j) == 0x43)
    )
}
`;

const EVIL = Buffer.from('hello EVIL_MARKER world');
const CLEAN = Buffer.from('nothing to see');
const SLOW = Buffer.alloc(65536);
const TOPIC = 'arn:aws:sns:us-east-1:123456789012:matches';
const NEGATIVE_TOPIC = 'arn:aws:sns:us-east-1:123456789012:negative';

const bodyRecords = (message: Message) =>
  (JSON.parse(message.Body!) as { Records: S3EventRecord[] }).Records;
const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

describe('handleInvocation', () => {
  let s3: Emulator<S3Client>;
  let sqs: Emulator<SQSClient>;
  let dynamo: Emulator<DynamoDBClient>;
  let rules: CompiledRules;
  let workDir: string;
  let tmpDir: string;
  const snsMock = mockClient(SNSClient);
  let emf: EmfCapture;

  let bucket: string;
  let queueUrl: string;
  let settings: AnalyzerSettings;
  let deps: AnalyzerDeps;
  let logLines: Record<string, unknown>[];

  beforeAll(async () => {
    [s3, sqs, dynamo] = await Promise.all([startS3(), startSqs(), startDynamo()]);
    workDir = await mkdtemp(path.join(os.tmpdir(), 'analyzer-test-'));
    await writeFile(path.join(workDir, 'test.yar'), RULES);
    ({ rules } = await compileRules([
      { path: path.join(workDir, 'test.yar'), namespace: 'test/test.yar' },
    ]));
    // The analyzer's temp files go here, so the tests can see that none are left behind.
    tmpDir = path.join(workDir, 'tmp');
    await mkdir(tmpDir);
  });

  afterAll(async () => {
    await Promise.all([s3.stop(), sqs.stop(), dynamo.stop()]);
    await rm(workDir, { recursive: true, force: true });
  });

  beforeEach(async () => {
    snsMock.reset();
    emf = captureEmf();
    bucket = uniqueName('binaries');
    const table = uniqueName('matches');
    const verdictTable = uniqueName('verdicts');
    await s3.client.send(new CreateBucketCommand({ Bucket: bucket }));
    await createMatchTable(dynamo.client, table);
    await createVerdictTable(dynamo.client, verdictTable);
    const queue = await sqs.client.send(
      new CreateQueueCommand({
        QueueName: uniqueName('analysis'),
        Attributes: { VisibilityTimeout: '1' },
      }),
    );
    queueUrl = queue.QueueUrl!;
    settings = {
      matchesTable: table,
      verdictTable,
      verdictTtlDays: 0,
      alertsTopicArn: TOPIC,
      negativeAlertsTopicArn: '',
      queueUrl,
      maxFileBytes: 100_000,
      scanTimeoutSeconds: 1,
      archives: DEFAULT_ARCHIVE_SETTINGS,
      concurrency: 2,
      tempRoot: tmpDir,
    };
    logLines = [];
    deps = {
      s3: s3.client,
      dynamo: dynamo.client,
      sqs: sqs.client,
      sns: new SNSClient({ region: 'us-east-1' }),
      rules: fixedRules(unreleasedRules(rules)),
      log: createLogger('analyzer', (line) =>
        logLines.push(JSON.parse(line) as Record<string, unknown>),
      ),
      metrics: createMetrics(
        'p_binaryalert_analyzer',
        createLogger('analyzer', () => undefined),
      ),
    };
  });

  afterEach(async () => {
    emf.restore();
    // Temp files are gone after every invocation, whatever happened to the objects.
    expect(await readdir(tmpDir)).toEqual([]);
  });

  const put = (key: string, body: Buffer, metadata?: Record<string, string>) =>
    s3.client.send(
      new PutObjectCommand({
        Bucket: bucket,
        Key: key,
        Body: body,
        ...(metadata ? { Metadata: metadata } : {}),
      }),
    );

  /** Queues one S3 notification per key and receives them, as the dispatcher does. */
  async function dispatcherPayload(keys: string[]) {
    for (const key of keys) {
      await sqs.client.send(
        new SendMessageCommand({
          QueueUrl: queueUrl,
          MessageBody: JSON.stringify({ Records: [s3EventRecord({ bucket, key })] }),
        }),
      );
    }
    const received = await receiveAll(keys.length);
    return {
      Records: received.map((message) => bodyRecords(message)[0]!),
      SQSReceipts: received.map((message) => message.ReceiptHandle!),
    };
  }

  /**
   * Receives at least `count` distinct messages (all visible ones when 0); local-aws-sqs may
   * repeat a message within one response.
   */
  async function receiveAll(count: number): Promise<Message[]> {
    const byId = new Map<string, Message>();
    for (;;) {
      const response = await sqs.client.send(
        new ReceiveMessageCommand({ QueueUrl: queueUrl, MaxNumberOfMessages: 10 }),
      );
      for (const message of response.Messages ?? []) byId.set(message.MessageId!, message);
      if (byId.size >= count && (count > 0 || (response.Messages ?? []).length === 0)) break;
    }
    return [...byId.values()];
  }

  /** Keys of the messages still in the queue once their visibility timeout passed. */
  async function keysLeftInQueue(): Promise<string[]> {
    await new Promise((resolve) => setTimeout(resolve, 1100));
    const messages = await receiveAll(0);
    return messages.map((message) => decodeS3Key(bodyRecords(message)[0]!.s3.object.key)).sort();
  }

  const invoke = (event: unknown, version = 1) => handleInvocation(deps, settings, event, version);
  const verdictOf = (key: string) =>
    readVerdict(dynamo.client, settings.verdictTable, { bucket, key });
  const publishes = () => snsMock.commandCalls(PublishCommand).map((call) => call.args[0].input);
  /** The values of each metric the invocations wrote (EMF), by name. */
  const metricValues = () =>
    Object.fromEntries(emf.metrics().map((metric) => [metric.name, metric.values]));

  it('analyzes a dispatcher payload, alerts on the match and deletes the finished receipts', async () => {
    await put('evil.bin', EVIL, { filepath: '/home/user/evil.bin' });
    await put('clean.txt', CLEAN);
    const payload = await dispatcherPayload(['evil.bin', 'clean.txt', 'gone.exe']);

    const results = (await invoke(payload)) as AnalysisResults;

    expect(Object.keys(results).sort()).toEqual([
      `S3:${bucket}:clean.txt`,
      `S3:${bucket}:evil.bin`,
    ]);
    const evil = results[`S3:${bucket}:evil.bin`]!;
    expect(evil).toEqual({
      FileInfo: {
        MD5: createHash('md5').update(EVIL).digest('hex'),
        SHA256: sha256(EVIL),
        S3LastModified: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
        S3Location: `S3:${bucket}:evil.bin`,
        S3Metadata: { filepath: '/home/user/evil.bin' },
      },
      MatchedRules: {
        Rule1: {
          RuleName: 'evil_marker',
          RuleFile: 'test/test.yar',
          RuleTags: ['malware'],
          Meta: { description: 'contains the test marker', score: 5 },
          MatchedStrings: ['$marker'],
        },
      },
      NumMatchedRules: 1,
      Coverage: 'complete',
      NumMembersScanned: 0,
      Unscanned: [],
    });
    expect(results[`S3:${bucket}:clean.txt`]?.NumMatchedRules).toBe(0);
    // MD5 is computed only where it is stored or sent: here, the matched file.
    expect(results[`S3:${bucket}:clean.txt`]?.FileInfo).not.toHaveProperty('MD5');
    expect(publishes()).toEqual([
      expect.objectContaining({
        TopicArn: TOPIC,
        Subject: '[BinaryAlert] /home/user/evil.bin matches a YARA rule',
        Message: JSON.stringify(evil, null, 4),
      }),
    ]);
    const binary = await dynamo.client.send(
      new GetItemCommand({
        TableName: settings.matchesTable,
        Key: { SHA256: { S: sha256(EVIL) } },
      }),
    );
    expect(binary.Item?.AlertedRules?.SS).toEqual(['test/test.yar:evil_marker@']);
    const ledger = await dynamo.client.send(
      new GetItemCommand({
        TableName: settings.verdictTable,
        Key: { Bucket: { S: bucket }, Key: { S: 'evil.bin' } },
      }),
    );
    expect(ledger.Item?.MatchAlertSha256).toEqual({ S: sha256(EVIL) });
    // The missing object is finished too: logged with its key, never retried.
    expect(logLines).toContainEqual(
      expect.objectContaining({ level: 'WARN', object: `S3:${bucket}:gone.exe` }),
    );
    expect(await keysLeftInQueue()).toEqual([]);
    // Every object has its verdict in the ledger.
    expect(await verdictOf('evil.bin')).toEqual(
      expect.objectContaining({
        verdict: 'matched',
        sha256: sha256(EVIL),
        size: EVIL.length,
        etag: expect.stringMatching(/^"[0-9a-f]{32}"$/),
        analyzerVersion: 1,
        rules: ['test/test.yar:evil_marker'],
        matches: [
          {
            id: 'test/test.yar:evil_marker',
            tags: ['malware'],
            meta: { description: 'contains the test marker', score: 5 },
            strings: ['$marker'],
          },
        ],
        alerted: true,
        alertReason: 'first match',
      }),
    );
    expect(await verdictOf('clean.txt')).toEqual(
      expect.objectContaining({ verdict: 'clean', sha256: sha256(CLEAN), rules: [] }),
    );
    expect(await verdictOf('gone.exe')).toEqual(
      expect.objectContaining({ verdict: 'skipped', reason: 'missing' }),
    );
    expect((await verdictOf('gone.exe'))?.sha256).toBeUndefined();
  });

  it('keeps the receipt of a file whose scan failed and finishes the others', async () => {
    await put('evil.bin', EVIL);
    await put('slow.bin', SLOW);
    await put('clean.txt', CLEAN);
    const payload = await dispatcherPayload(['slow.bin', 'evil.bin', 'clean.txt']);

    const results = (await invoke(payload)) as AnalysisResults;

    expect(Object.keys(results).sort()).toEqual([
      `S3:${bucket}:clean.txt`,
      `S3:${bucket}:evil.bin`,
    ]);
    expect(publishes()).toHaveLength(1);
    expect(logLines).toContainEqual(
      expect.objectContaining({
        level: 'ERROR',
        object: `S3:${bucket}:slow.bin`,
        error: expect.objectContaining({ name: 'ScanTimeoutError' }),
      }),
    );
    expect(metricValues()).toMatchObject({ AnalysisErrors: [1] });
    expect(await keysLeftInQueue()).toEqual(['slow.bin']);
    expect(await verdictOf('slow.bin')).toEqual(
      expect.objectContaining({ verdict: 'failed', reason: 'scan-timeout' }),
    );
  });

  it('finishes a multi-object message whose other objects finished and queues its failed object again alone', async () => {
    await put('a.bin', CLEAN);
    await put('slow.bin', SLOW);
    await put('b.bin', EVIL);
    await sqs.client.send(
      new SendMessageCommand({
        QueueUrl: queueUrl,
        MessageBody: JSON.stringify({
          Records: ['a.bin', 'slow.bin'].map((key) => s3EventRecord({ bucket, key })),
        }),
      }),
    );
    await sqs.client.send(
      new SendMessageCommand({
        QueueUrl: queueUrl,
        MessageBody: JSON.stringify({ Records: [s3EventRecord({ bucket, key: 'b.bin' })] }),
      }),
    );
    const messages = await receiveAll(2);

    await invoke({
      Records: messages.flatMap(bodyRecords),
      SQSReceipts: messages.map((message) => message.ReceiptHandle!),
      RecordReceipts: messages.flatMap((message, index) => bodyRecords(message).map(() => index)),
    });

    await new Promise((resolve) => setTimeout(resolve, 1100));
    const left = await receiveAll(0);
    expect(
      left.map((message) => bodyRecords(message).map((r) => decodeS3Key(r.s3.object.key))),
    ).toEqual([['slow.bin']]);
    expect(messages.map((message) => message.MessageId)).not.toContain(left[0]!.MessageId);
    expect(await verdictOf('a.bin')).toEqual(expect.objectContaining({ verdict: 'clean' }));
    expect(await verdictOf('slow.bin')).toEqual(
      expect.objectContaining({ verdict: 'failed', reason: 'scan-timeout' }),
    );
  });

  /** Receives and invokes as the dispatcher does, until the queue stays empty. */
  async function dispatchUntilEmpty(queue: string, invokeWith = invoke): Promise<number> {
    let rounds = 0;
    for (;;) {
      const { Messages = [] } = await sqs.client.send(
        new ReceiveMessageCommand({ QueueUrl: queue, MaxNumberOfMessages: 10 }),
      );
      const messages = [...new Map(Messages.map((m) => [m.MessageId, m])).values()];
      if (messages.length === 0) {
        const { Attributes = {} } = await sqs.client.send(
          new GetQueueAttributesCommand({
            QueueUrl: queue,
            AttributeNames: [
              'ApproximateNumberOfMessages',
              'ApproximateNumberOfMessagesNotVisible',
              'ApproximateNumberOfMessagesDelayed',
            ],
          }),
        );
        if (
          Number(Attributes.ApproximateNumberOfMessages) +
            Number(Attributes.ApproximateNumberOfMessagesNotVisible) +
            Number(Attributes.ApproximateNumberOfMessagesDelayed ?? 0) ===
          0
        ) {
          return rounds;
        }
        // In flight: it shows up again after the visibility timeout.
        await new Promise((resolve) => setTimeout(resolve, 300));
        continue;
      }
      rounds += 1;
      await invokeWith({
        Records: messages.flatMap(bodyRecords),
        SQSReceipts: messages.map((message) => message.ReceiptHandle!),
        RecordReceipts: messages.flatMap((message, index) => bodyRecords(message).map(() => index)),
      }).catch(() => undefined);
    }
  }

  /** Leaves a claim on a new object's alert (on its ledger item), as another analysis would. */
  async function holdObjectAlertClaim(key: string, token: string, forMs: number) {
    await dynamo.client.send(
      new UpdateItemCommand({
        TableName: settings.verdictTable,
        Key: { Bucket: { S: bucket }, Key: { S: key } },
        UpdateExpression: 'SET AlertClaimToken = :token, AlertClaimExpiresAt = :expires',
        ExpressionAttributeValues: {
          ':token': { S: token },
          ':expires': { N: String(Date.now() + forMs) },
        },
      }),
    );
  }

  /** A queue with a dead-letter queue after `maxReceives` receives; 3 s visibility, longer than
   * an invocation with a 1 s scan timeout, so a receipt is still current when it is deleted. */
  async function queueWithDeadLetters(maxReceives: number) {
    const dlq = await sqs.client.send(new CreateQueueCommand({ QueueName: uniqueName('dlq') }));
    const { Attributes } = await sqs.client.send(
      new GetQueueAttributesCommand({ QueueUrl: dlq.QueueUrl!, AttributeNames: ['QueueArn'] }),
    );
    const queue = await sqs.client.send(
      new CreateQueueCommand({
        QueueName: uniqueName('analysis'),
        Attributes: {
          VisibilityTimeout: '3',
          RedrivePolicy: JSON.stringify({
            deadLetterTargetArn: Attributes!.QueueArn,
            maxReceiveCount: maxReceives,
          }),
        },
      }),
    );
    return { queueUrl: queue.QueueUrl!, deadLetterQueueUrl: dlq.QueueUrl! };
  }

  const analyzedKeys = () =>
    logLines
      .filter((line) => line.message === 'analyzed object')
      .map((line) => String(line.object).slice(`S3:${bucket}:`.length))
      .sort();

  it('dead-letters only the poison object of a retro message; the healthy ones are analyzed once', async () => {
    const healthy = ['r/1.bin', 'r/2 ü.bin', 'r/../3.bin', 'r/evil.bin'];
    for (const key of healthy) await put(key, key.endsWith('evil.bin') ? EVIL : CLEAN);
    await put('r/poison.bin', SLOW);
    const queues = await queueWithDeadLetters(3);
    settings = { ...settings, queueUrl: queues.queueUrl };
    await sqs.client.send(
      new SendMessageCommand({
        QueueUrl: queues.queueUrl,
        MessageBody: JSON.stringify({
          Records: [healthy[0]!, 'r/poison.bin', ...healthy.slice(1)].map((key) =>
            s3EventRecord({ bucket, key }),
          ),
        }),
      }),
    );

    await dispatchUntilEmpty(queues.queueUrl);

    const dead = await sqs.client.send(
      new ReceiveMessageCommand({ QueueUrl: queues.deadLetterQueueUrl, MaxNumberOfMessages: 10 }),
    );
    expect(
      (dead.Messages ?? []).map((m) => bodyRecords(m).map((r) => decodeS3Key(r.s3.object.key))),
    ).toEqual([['r/poison.bin']]);
    expect(analyzedKeys()).toEqual([...healthy].sort());
    expect(publishes()).toHaveLength(1);
    for (const key of healthy) {
      expect(await verdictOf(key)).toEqual(
        expect.objectContaining({ verdict: key.endsWith('evil.bin') ? 'matched' : 'clean' }),
      );
    }
    expect(await verdictOf('r/poison.bin')).toEqual(
      expect.objectContaining({ verdict: 'failed', reason: 'scan-timeout' }),
    );
  });

  it('queues an object that waits for another alert claim again, delayed: the wait uses no receive', async () => {
    // Another analysis holds this new object's alert for 2 s more (its claim is on the object's
    // ledger item). With one receive before the dead-letter queue, a retry of the same message
    // would dead-letter a healthy match.
    await put('w/evil.bin', EVIL);
    await holdObjectAlertClaim('w/evil.bin', 'another analysis', 2000);
    const queues = await queueWithDeadLetters(1);
    settings = { ...settings, queueUrl: queues.queueUrl };
    await sqs.client.send(
      new SendMessageCommand({
        QueueUrl: queues.queueUrl,
        MessageBody: JSON.stringify({ Records: [s3EventRecord({ bucket, key: 'w/evil.bin' })] }),
      }),
    );

    const rounds = await dispatchUntilEmpty(queues.queueUrl);

    expect(rounds).toBe(2);
    const dead = await sqs.client.send(
      new ReceiveMessageCommand({ QueueUrl: queues.deadLetterQueueUrl, MaxNumberOfMessages: 10 }),
    );
    expect(dead.Messages ?? []).toEqual([]);
    // Scanned in both rounds (the first was refused the claim only then), alerted once.
    expect(analyzedKeys()).toEqual(['w/evil.bin', 'w/evil.bin']);
    expect(publishes()).toHaveLength(1);
    expect(await verdictOf('w/evil.bin')).toEqual(expect.objectContaining({ verdict: 'matched' }));
  });

  it('loses nothing and alerts once when the analyzer dies between queueing the failed object and deleting the message', async () => {
    const keys = ['c/1.bin', 'c/evil.bin', 'c/poison.bin'];
    await put('c/1.bin', CLEAN);
    await put('c/evil.bin', EVIL);
    await put('c/poison.bin', SLOW);
    const queues = await queueWithDeadLetters(2);
    settings = { ...settings, queueUrl: queues.queueUrl };
    await sqs.client.send(
      new SendMessageCommand({
        QueueUrl: queues.queueUrl,
        MessageBody: JSON.stringify({
          Records: keys.map((key) => s3EventRecord({ bucket, key })),
        }),
      }),
    );
    // The first invocation dies right after its new message went out: its deletes never happen.
    let dieBeforeDeleting = true;
    const dying = new SQSClient({ ...clientConfig(sqs.endpoint), maxAttempts: 1 });
    dying.middlewareStack.add(
      (next, context) => async (args) => {
        if (context.commandName === 'DeleteMessageBatchCommand' && dieBeforeDeleting) {
          dieBeforeDeleting = false;
          throw new Error('the analyzer died');
        }
        return next(args);
      },
      { step: 'initialize' },
    );
    const crashingDeps = { ...deps, sqs: dying };

    await dispatchUntilEmpty(queues.queueUrl, (event) =>
      handleInvocation(crashingDeps, settings, event, 1),
    );
    dying.destroy();

    expect(dieBeforeDeleting).toBe(false);
    const dead = await sqs.client.send(
      new ReceiveMessageCommand({ QueueUrl: queues.deadLetterQueueUrl, MaxNumberOfMessages: 10 }),
    );
    // Nothing lost: the original came back and was split again; only the poison object is dead.
    const deadKeys = (dead.Messages ?? []).flatMap((m) =>
      bodyRecords(m).map((r) => decodeS3Key(r.s3.object.key)),
    );
    expect(new Set(deadKeys)).toEqual(new Set(['c/poison.bin']));
    expect(analyzedKeys()).toEqual(['c/1.bin', 'c/1.bin', 'c/evil.bin', 'c/evil.bin']);
    expect(publishes()).toHaveLength(1);
    expect(await verdictOf('c/evil.bin')).toEqual(expect.objectContaining({ verdict: 'matched' }));
  });

  it('analyzes a plain S3 event with URL-encoded keys holding spaces, unicode and +', async () => {
    const key = 'uploads/my file+1 – ünïcødé 文件.bin';
    await put(key, EVIL);
    const event = {
      Records: [
        {
          eventVersion: '2.1',
          eventSource: 'aws:s3',
          eventName: 'ObjectCreated:Put',
          s3: { bucket: { name: bucket }, object: { key: encodeS3Key(key), size: EVIL.length } },
        },
      ],
    };
    expect(event.Records[0]!.s3.object.key).toContain('my+file%2B1');

    const results = (await invoke(event)) as AnalysisResults;

    expect(Object.keys(results)).toEqual([`S3:${bucket}:${key}`]);
    expect(publishes()[0]?.Subject).toBe(`[BinaryAlert] ${sha256(EVIL)} matches a YARA rule`);
  });

  it('fails a plain S3 event invocation whose objects could not be analyzed, after the others', async () => {
    await put('slow.bin', SLOW);
    await put('evil.bin', EVIL);

    const act = invoke({
      Records: [
        s3EventRecord({ bucket, key: 'slow.bin' }),
        s3EventRecord({ bucket, key: 'evil.bin' }),
      ],
    });

    await expect(act).rejects.toThrow(AnalysisFailedError);
    await expect(act).rejects.toThrow(`S3:${bucket}:slow.bin`);
    expect(publishes()).toHaveLength(1);
  });

  it('answers an SQS event-source batch with the failed message ids only', async () => {
    await put('evil.bin', EVIL);
    await put('slow.bin', SLOW);
    const message = (messageId: string, body: unknown) => ({
      messageId,
      receiptHandle: `handle-${messageId}`,
      body: JSON.stringify(body),
      attributes: {},
      messageAttributes: {},
      md5OfBody: '',
      eventSource: 'aws:sqs',
      eventSourceARN: 'arn:aws:sqs:us-east-1:123456789012:queue',
      awsRegion: 'us-east-1',
    });

    const response = (await invoke({
      Records: [
        message('ok', { Records: [s3EventRecord({ bucket, key: 'evil.bin' })] }),
        message('test', { Service: 'Amazon S3', Event: 's3:TestEvent' }),
        message('bad', { Records: [s3EventRecord({ bucket, key: 'slow.bin' })] }),
        message('missing', { Records: [s3EventRecord({ bucket, key: 'gone' })] }),
      ],
    })) as SqsBatchResponse;

    expect(response).toEqual({ batchItemFailures: [{ itemIdentifier: 'bad' }] });
    expect(publishes()).toHaveLength(1);
  });

  it('fails exactly the SQS messages with an unfinished object and leaves deleting to the mapping', async () => {
    await put('evil.bin', EVIL);
    await put('clean.bin', CLEAN);
    await put('slow.bin', SLOW);
    const bodies = {
      retro: { Records: ['clean.bin', 'slow.bin'].map((key) => s3EventRecord({ bucket, key })) },
      evil: { Records: [s3EventRecord({ bucket, key: 'evil.bin' })] },
      again: { Records: [s3EventRecord({ bucket, key: 'slow.bin' })] },
    };
    for (const body of [...Object.values(bodies), 'not json {', '']) {
      await sqs.client.send(
        new SendMessageCommand({
          QueueUrl: queueUrl,
          MessageBody: typeof body === 'string' ? body || ' ' : JSON.stringify(body),
        }),
      );
    }
    // Received as the event source mapping receives them, with real receipt handles.
    const received = await receiveAll(5);
    const event = {
      Records: received.map((message) => ({
        messageId: message.MessageId!,
        receiptHandle: message.ReceiptHandle!,
        body: message.Body!,
        attributes: {},
        messageAttributes: {},
        md5OfBody: message.MD5OfBody!,
        eventSource: 'aws:sqs',
        eventSourceARN: 'arn:aws:sqs:us-east-1:123456789012:queue',
        awsRegion: 'us-east-1',
      })),
    };
    const idOf = (body: unknown) =>
      received.find((message) => message.Body === JSON.stringify(body))!.MessageId!;

    const response = (await invoke(event)) as SqsBatchResponse;

    // A retro message whose other object finished is done once its slow object is queued again
    // alone; a message naming only the slow object fails.
    expect(response.batchItemFailures.map((failure) => failure.itemIdentifier)).toEqual([
      idOf(bodies.again),
    ]);
    expect(publishes()).toHaveLength(1);
    // The mapping deletes the messages not listed: the analyzer itself deletes none of them, and
    // adds one message naming the slow object.
    await new Promise((resolve) => setTimeout(resolve, 1100));
    const after = await receiveAll(6);
    expect(
      after
        .filter((message) => !received.some((r) => r.MessageId === message.MessageId))
        .map((message) => bodyRecords(message).map((r) => decodeS3Key(r.s3.object.key))),
    ).toEqual([['slow.bin']]);
    expect(after).toHaveLength(6);
  });

  it('gives back its dispatch slot when it ends, even when its objects failed, but never a slot taken again', async () => {
    await put('evil.bin', EVIL);
    await put('slow.bin', SLOW);
    const table = uniqueName('slots');
    await dynamo.client.send(new CreateTableCommand(dispatchSlotsTableDefinition(table)));
    settings = { ...settings, dispatchSlotsTable: table };
    const dispatched = async (key: string, slot: number, holder: string) => {
      await takeSlot(dynamo.client, table, { slot, holder }, 600, Date.now());
      return { ...(await dispatcherPayload([key])), DispatchSlot: { Slot: slot, Holder: holder } };
    };
    const held = async () => [...(await heldSlots(dynamo.client, table, Date.now()))].sort();

    await invoke(await dispatched('evil.bin', 0, 'run-a'));
    await invoke(await dispatched('slow.bin', 1, 'run-b'));
    // Slot 2's lease ran out while its analyzer waited; another dispatcher run took it again.
    const late = await dispatched('evil.bin', 2, 'run-c');
    await takeSlot(dynamo.client, table, { slot: 2, holder: 'run-d' }, 600, Date.now() + 601_000);
    await invoke(late);

    expect(await held()).toEqual([2]);
    expect(logLines).toContainEqual(
      expect.objectContaining({ message: 'the dispatch slot had run out and was taken again' }),
    );
  });

  it('skips an oversized object without downloading it and finishes its message', async () => {
    await put('huge.bin', Buffer.alloc(settings.maxFileBytes + 1, 0x41));
    const payload = await dispatcherPayload(['huge.bin']);
    // Without the event's size the response's Content-Length decides.
    delete (payload.Records[0] as { s3: { object: { size?: number } } }).s3.object.size;

    const results = await invoke(payload);

    expect(results).toEqual({});
    expect(logLines).toContainEqual(
      expect.objectContaining({
        message: 'skipping object larger than the maximum file size',
        object: `S3:${bucket}:huge.bin`,
      }),
    );
    expect(metricValues()).toMatchObject({ SkippedBinaries: [1], AnalyzedBinaries: [0] });
    expect(await keysLeftInQueue()).toEqual([]);
    expect(await verdictOf('huge.bin')).toEqual(
      expect.objectContaining({
        verdict: 'skipped',
        reason: 'too-large',
        size: settings.maxFileBytes + 1,
      }),
    );
  });

  it('scans a key whose batch also holds the event of an oversized earlier upload, in either order', async () => {
    // A large upload, then small malware under the same key: both events in one batch.
    await put('oversized-first.bin', EVIL);
    await put('oversized-last.bin', EVIL);
    const events = (key: string) => ({
      oversized: s3EventRecord({ bucket, key, size: settings.maxFileBytes + 1 }),
      current: s3EventRecord({ bucket, key, size: EVIL.length }),
    });
    const first = events('oversized-first.bin');
    const last = events('oversized-last.bin');

    const results = (await invoke({
      Records: [first.oversized, first.current, last.current, last.oversized],
      SQSReceipts: ['r1', 'r2', 'r3', 'r4'],
    })) as AnalysisResults;

    for (const key of ['oversized-first.bin', 'oversized-last.bin']) {
      expect(results[`S3:${bucket}:${key}`]?.NumMatchedRules).toBe(1);
      expect(await verdictOf(key)).toEqual(
        expect.objectContaining({ verdict: 'matched', size: EVIL.length }),
      );
    }
    expect(publishes()).toHaveLength(2);
  });

  it('keeps the verdict of the object a key holds when the event of an oversized earlier upload comes late', async () => {
    // Small malware replaced a large upload; the large one's event is delivered after it (SQS
    // does not keep order, and redelivers): the key still holds the malware.
    await put('late-event.bin', EVIL);
    await invoke({
      Records: [s3EventRecord({ bucket, key: 'late-event.bin', size: EVIL.length })],
    });

    await invoke({
      Records: [s3EventRecord({ bucket, key: 'late-event.bin', size: settings.maxFileBytes + 1 })],
    });

    expect(await verdictOf('late-event.bin')).toEqual(
      expect.objectContaining({ verdict: 'matched', size: EVIL.length }),
    );
    expect(publishes()).toHaveLength(1);
  });

  it('analyzes the object whose key holds an invisible U+FEFF, not its benign look-alike', async () => {
    // U+FEFF encodes as %EF%BB%BF, which a stream decoder would drop as a byte order mark.
    const hidden = 'invoice\uFEFF.exe';
    await put(hidden, EVIL);
    await put('invoice.exe', CLEAN);

    const results = (await invoke({
      Records: [s3EventRecord({ bucket, key: hidden })],
    })) as AnalysisResults;

    expect(Object.keys(results)).toEqual([`S3:${bucket}:${hidden}`]);
    expect(results[`S3:${bucket}:${hidden}`]?.NumMatchedRules).toBe(1);
    expect(publishes()).toHaveLength(1);
    expect(await verdictOf(hidden)).toEqual(expect.objectContaining({ verdict: 'matched' }));
    expect(await verdictOf('invoice.exe')).toBeUndefined();
  });

  it('passes the filepath metadata to rules as filename, extension and filetype', async () => {
    await put('with-path', CLEAN, { filepath: 'C:/Users/victim/Downloads/payload.exe' });
    await put('without-path', CLEAN);

    const results = (await invoke({
      Records: [
        s3EventRecord({ bucket, key: 'with-path' }),
        s3EventRecord({ bucket, key: 'without-path' }),
      ],
    })) as AnalysisResults;

    expect(results[`S3:${bucket}:with-path`]?.MatchedRules.Rule1?.RuleName).toBe('named_payload');
    expect(results[`S3:${bucket}:without-path`]?.NumMatchedRules).toBe(0);
  });

  describe('alerts', () => {
    const event = (key: string) => ({ Records: [s3EventRecord({ bucket, key })] });

    it('follows the match history across keys and duplicate deliveries', async () => {
      await put('first.bin', EVIL);
      await put('copy.bin', EVIL);

      await invoke(event('first.bin')); // first match
      // Duplicates: each finds the alert sent (or in flight, and fails to be retried).
      await Promise.allSettled([invoke(event('first.bin')), invoke(event('first.bin'))]);
      await invoke(event('copy.bin')); // same file, new key
      await invoke(event('first.bin')); // nothing new
      await invoke(event('copy.bin'));

      expect(
        publishes().map((input) => (JSON.parse(input.Message!) as FileSummary).FileInfo.S3Location),
      ).toEqual([`S3:${bucket}:first.bin`, `S3:${bucket}:copy.bin`]);
    });

    it('alerts when a new rule matches a known file', async () => {
      await put('first.bin', EVIL);
      await invoke(event('first.bin'));
      const ruleFile = path.join(workDir, 'newer.yar');
      await writeFile(ruleFile, 'rule newer_rule { strings: $h = "hello" condition: $h }');
      const newer = await compileRules([
        { path: path.join(workDir, 'test.yar'), namespace: 'test/test.yar' },
        { path: ruleFile, namespace: 'test/newer.yar' },
      ]);

      const newerRules = fixedRules(unreleasedRules(newer.rules));
      await handleInvocation({ ...deps, rules: newerRules }, settings, event('first.bin'), 2);

      expect(publishes()).toHaveLength(2);
      expect(publishes()[1]?.MessageAttributes?.rules).toEqual({
        DataType: 'String.Array',
        StringValue: '["evil_marker","newer_rule"]',
      });
    });

    it('leaves the object unrecorded and its message in the queue when the alert fails', async () => {
      await put('evil.bin', EVIL);
      snsMock.on(PublishCommand).rejectsOnce(new Error('SNS is down')).resolves({ MessageId: '1' });
      const payload = await dispatcherPayload(['evil.bin']);

      const results = await invoke(payload);

      expect(results).toEqual({});
      expect(await keysLeftInQueue()).toEqual(['evil.bin']);

      // The retry alerts.
      await invoke(event('evil.bin'));
      expect(publishes()).toHaveLength(2);
    });

    describe.each([
      ['a dispatcher payload', 'dispatcher'],
      ['an SQS event-source batch', 'sqs'],
    ] as const)('an alert claimed by an analysis that died (%s)', (_shape, shape) => {
      it('is retried when the claim expires, not after the visibility timeout, and alerts once', async () => {
        // A visibility timeout far beyond the test: only the analyzer's shorter retry brings
        // the message back in time.
        queueUrl = (
          await sqs.client.send(
            new CreateQueueCommand({
              QueueName: uniqueName('long-visibility'),
              Attributes: { VisibilityTimeout: '300' },
            }),
          )
        ).QueueUrl!;
        settings.queueUrl = queueUrl;
        await put('evil.bin', EVIL);
        // What a killed analysis leaves behind: its claim on the object's alert, 2 s to live.
        await holdObjectAlertClaim('evil.bin', 'killed-holder', 2000);
        await sqs.client.send(
          new SendMessageCommand({
            QueueUrl: queueUrl,
            MessageBody: JSON.stringify(event('evil.bin')),
          }),
        );
        const deliver = async (): Promise<unknown> => {
          const [message] = await receiveAll(1);
          return shape === 'dispatcher'
            ? { Records: bodyRecords(message!), SQSReceipts: [message!.ReceiptHandle!] }
            : {
                Records: [
                  {
                    messageId: message!.MessageId!,
                    receiptHandle: message!.ReceiptHandle!,
                    body: message!.Body!,
                    attributes: {},
                    messageAttributes: {},
                    md5OfBody: message!.MD5OfBody!,
                    eventSource: 'aws:sqs',
                    eventSourceARN: 'arn:aws:sqs:us-east-1:123456789012:queue',
                    awsRegion: 'us-east-1',
                  },
                ],
              };
        };

        const refused = await invoke(await deliver());
        const refusedAt = Date.now();

        expect(publishes()).toEqual([]);
        // Waiting for a claim is no failed verdict; the retry writes the real one.
        expect(await verdictOf('evil.bin')).toBeUndefined();
        // The wait goes back as a new message delayed until the claim ends; this one is done
        // (no receive of it is spent on waiting).
        if (shape === 'sqs') expect(refused).toEqual({ batchItemFailures: [] });
        else expect(refused).toEqual({});
        const retried = await invoke(await deliver());
        // Back after the claim's ~2 s (rounded up to whole seconds), not after 300 s.
        expect(Date.now() - refusedAt).toBeLessThan(5000);
        expect(publishes()).toHaveLength(1);
        expect(await verdictOf('evil.bin')).toEqual(
          expect.objectContaining({ verdict: 'matched', alerted: true }),
        );
        if (shape === 'sqs') expect(retried).toEqual({ batchItemFailures: [] });
      });
    });

    it('publishes files without matches to the negative topic when configured', async () => {
      settings.negativeAlertsTopicArn = NEGATIVE_TOPIC;
      await put('clean.txt', CLEAN, { filepath: '/docs/clean.txt' });
      await put('evil.bin', EVIL);

      await invoke({
        Records: [
          s3EventRecord({ bucket, key: 'clean.txt' }),
          s3EventRecord({ bucket, key: 'evil.bin' }),
        ],
      });

      expect(publishes().map((input) => [input.TopicArn, input.Subject])).toEqual(
        expect.arrayContaining([
          [NEGATIVE_TOPIC, '[BinaryAlert] /docs/clean.txt did not match any YARA rules'],
          [TOPIC, `[BinaryAlert] ${sha256(EVIL)} matches a YARA rule`],
        ]),
      );
      expect(publishes()).toHaveLength(2);
      const negative = publishes().find((input) => input.TopicArn === NEGATIVE_TOPIC);
      expect(JSON.parse(negative?.Message ?? '{}')).toMatchObject({
        FileInfo: { MD5: createHash('md5').update(CLEAN).digest('hex'), SHA256: sha256(CLEAN) },
      });
    });
  });

  it("writes the invocation's metrics as one EMF line in the analyzer's service", async () => {
    await put('evil.bin', EVIL);
    await put('clean.txt', CLEAN);

    const results = (await invoke({
      Records: ['evil.bin', 'clean.txt', 'gone'].map((key) => s3EventRecord({ bucket, key })),
    })) as Record<string, FileSummary>;

    expect(Object.keys(results)).toHaveLength(2);
    expect(emf.lines).toHaveLength(1);
    const metrics = emf.metrics();
    expect(metrics.map((metric) => metric.name)).toEqual([
      'AnalyzedBinaries',
      'MatchedBinaries',
      'YaraRules',
      'S3DownloadLatency',
      'ScanLatency',
      'SkippedBinaries',
      'PartialBinaries',
      'AnalysisErrors',
      'UnscannedContent',
      'CarriedOverVerdicts',
      'PrefilterExcludedObjects',
    ]);
    for (const metric of metrics) {
      expect(metric).toMatchObject({
        namespace: 'BinaryAlert',
        dimensionSets: [{ service: 'p_binaryalert_analyzer' }],
      });
    }
    const byName = Object.fromEntries(metrics.map((metric) => [metric.name, metric]));
    expect(byName).toMatchObject({
      AnalyzedBinaries: { values: [2], unit: 'Count' },
      MatchedBinaries: { values: [1], unit: 'Count' },
      YaraRules: { values: [3], unit: 'Count' },
      SkippedBinaries: { values: [1], unit: 'Count' },
      AnalysisErrors: { values: [0], unit: 'Count' },
      UnscannedContent: { values: [0], unit: 'Count' },
      S3DownloadLatency: { unit: 'Milliseconds' },
      ScanLatency: { unit: 'Milliseconds' },
    });
    // One sample per analyzed object.
    expect(byName.S3DownloadLatency?.values).toHaveLength(2);
    expect(byName.ScanLatency?.values).toHaveLength(2);
  });

  it('downloads into a private directory under the temp root while analyzing', async () => {
    await put('evil.bin', EVIL);
    const seen: string[] = [];
    const scanFile = rules.scanFile.bind(rules);
    const spy = jest.spyOn(rules, 'scanFile').mockImplementation(async (file, options) => {
      seen.push(file, ...(await readdir(tmpDir)));
      return scanFile(file, options);
    });

    try {
      await invoke({ Records: [s3EventRecord({ bucket, key: 'evil.bin' })] });
    } finally {
      spy.mockRestore();
    }

    expect(seen).toHaveLength(2);
    expect(path.dirname(path.dirname(seen[0]!))).toBe(tmpDir);
    expect(seen[1]).toMatch(/^binaryalert-/);
  });

  it('scans up to `concurrency` objects at once', async () => {
    const keys = ['a', 'b', 'c', 'd', 'e'];
    for (const key of keys) await put(key, Buffer.from(`${key} EVIL_MARKER`));
    let inFlight = 0;
    let maxInFlight = 0;
    const scanFile = rules.scanFile.bind(rules);
    const spy = jest.spyOn(rules, 'scanFile').mockImplementation(async (file, options) => {
      maxInFlight = Math.max(maxInFlight, ++inFlight);
      try {
        await new Promise((resolve) => setTimeout(resolve, 50));
        return await scanFile(file, options);
      } finally {
        inFlight -= 1;
      }
    });

    try {
      const results = await invoke({ Records: keys.map((key) => s3EventRecord({ bucket, key })) });
      expect(Object.keys(results)).toHaveLength(5);
    } finally {
      spy.mockRestore();
    }

    expect(maxInFlight).toBe(settings.concurrency);
  });

  it('drops a test event quietly', async () => {
    const results = await invoke({ Service: 'Amazon S3', Event: 's3:TestEvent' });

    expect(results).toEqual({});
    expect(emf.lines).toEqual([]);
  });
});
