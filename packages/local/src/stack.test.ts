import { execFile } from 'node:child_process';
import { Agent, createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { promisify } from 'node:util';
import { DescribeTableCommand, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { InvokeCommand, LambdaClient } from '@aws-sdk/client-lambda';
import {
  CompleteMultipartUploadCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { PublishCommand, SNSClient } from '@aws-sdk/client-sns';
import {
  GetQueueAttributesCommand,
  ReceiveMessageCommand,
  SendMessageCommand,
  SQSClient,
} from '@aws-sdk/client-sqs';

import { DataDirLockedError } from './lock';
import { startLocalStack, type LocalStack } from './stack';
import { readJsonLines, tempDir, testConfig, waitFor, writeZip } from './testing/fixtures';

const run = promisify(execFile);

jest.setTimeout(60_000);

// A tiny stand-in for a function bundle: reports what the runtime gave it.
const echoHandler = (marker: string) => `
let invocations = 0;
exports.handler = async (event, context) => {
  invocations += 1;
  if (event && event.sleepMs) await new Promise((r) => setTimeout(r, event.sleepMs));
  if (event && event.logLines) { for (const line of event.logLines) console.log(line); return {}; }
  if (event && event.fail) { const e = new Error('boom'); e.name = 'TestFailure'; throw e; }
  if (event && event.fetchUrl) {
    return await new Promise((resolve, reject) => require('http').get(event.fetchUrl, (res) => {
      let text = ''; res.on('data', (d) => (text += d)); res.on('end', () => resolve({ status: res.statusCode, text }));
    }).on('error', reject));
  }
  console.log(JSON.stringify({ level: 'info', message: 'invoked', invocations }));
  return {
    marker: ${JSON.stringify(marker)}, invocations, event,
    version: context.functionVersion, name: context.functionName,
    remaining: context.getRemainingTimeInMillis(),
    env: { table: process.env.YARA_MATCHES_DYNAMO_TABLE_NAME, endpoint: process.env.AWS_ENDPOINT_URL, s3Endpoint: process.env.AWS_ENDPOINT_URL_S3,
           region: process.env.AWS_REGION, key: process.env.AWS_ACCESS_KEY_ID },
  };
};`;

describe('local stack services', () => {
  let stack: LocalStack;
  let dirs: { path: string; remove: () => Promise<void> }[];
  let dataDir: string;
  let zipsDir: string;
  let output: string[];
  let webhookBodies: unknown[];
  let webhook: ReturnType<typeof createServer>;
  let clients: { destroy(): void }[];

  const client = <T extends { destroy(): void }>(make: () => T): T => {
    const made = make();
    clients.push(made);
    return made;
  };
  const sdk = () => ({
    endpoint: stack.endpoint,
    region: stack.region,
    credentials: { accessKeyId: 'anything', secretAccessKey: 'else' },
    forcePathStyle: true,
  });

  beforeAll(async () => {
    clients = [];
    const data = await tempDir('ba-local-data-');
    const zips = await tempDir('ba-local-zips-');
    dirs = [data, zips];
    dataDir = data.path;
    zipsDir = zips.path;
    for (const fn of ['analyzer', 'dispatcher', 'batcher']) {
      await writeZip(join(zipsDir, `${fn}.zip`), { 'index.js': echoHandler('v1') });
    }
    webhookBodies = [];
    webhook = createServer((req: IncomingMessage, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        webhookBodies.push(JSON.parse(Buffer.concat(chunks).toString('utf8')));
        res.end('ok');
      });
    });
    await new Promise<void>((ok) => webhook.listen(0, '127.0.0.1', ok));
    output = [];
    stack = await startLocalStack({
      config: await testConfig({ lambda_batch_timeout_sec: 1 }),
      dataDir,
      zipsDir,
      port: 0,
      dispatch: false,
      statusIntervalMs: 0,
      webhooks: [`http://127.0.0.1:${(webhook.address() as AddressInfo).port}/hook`],
      print: (text) => output.push(text),
    });
  });

  afterAll(async () => {
    clients.forEach((c) => c.destroy());
    await stack?.stop();
    webhook?.closeAllConnections();
    webhook?.close();
    for (const dir of dirs ?? []) await dir.remove();
  });

  it("keeps an idle connection open longer than Node's default 5 s, as AWS endpoints do", async () => {
    // Prepare: one connection for every request of this client.
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    const sqs = client(
      () => new SQSClient({ ...sdk(), maxAttempts: 1, requestHandler: { httpAgent: agent } }),
    );
    const sockets = new Set<unknown>();
    agent.on('free', (socket) => sockets.add(socket));
    const attributes = () =>
      sqs.send(
        new GetQueueAttributesCommand({ QueueUrl: stack.queueUrl, AttributeNames: ['All'] }),
      );
    try {
      await attributes();

      // Act: idle past Node's default keep-alive timeout, then reuse the connection.
      await new Promise((resolve) => setTimeout(resolve, 6000));
      await attributes();

      // Assert: the same connection served both (no reset for a client that never retries).
      expect(sockets.size).toBe(1);
    } finally {
      agent.destroy();
    }
  });

  it('listens on loopback only and creates the binaries bucket', async () => {
    expect(stack.endpoint).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const s3 = client(() => new S3Client({ ...sdk(), forcePathStyle: true }));
    const listed = await s3.send(new ListObjectsV2Command({ Bucket: stack.names.bucket }));
    expect(listed.KeyCount).toBe(0);
  });

  it('stores uploads from a default-configured SDK client byte for byte (aws-chunked decoded)', async () => {
    const s3 = client(() => new S3Client(sdk()));
    const bytes = Buffer.from('hello from a stream body\n'.repeat(5000));
    await s3.send(
      new PutObjectCommand({
        Bucket: stack.names.bucket,
        Key: 'streamed.bin',
        Body: Readable.from([bytes.subarray(0, 1000), bytes.subarray(1000)]),
        ContentLength: bytes.length,
        Metadata: { filepath: 'C:/Users/x/streamed.bin' },
      }),
    );
    await s3.send(
      new PutObjectCommand({ Bucket: stack.names.bucket, Key: 'buffer.bin', Body: bytes }),
    );
    for (const key of ['streamed.bin', 'buffer.bin']) {
      const got = await s3.send(new GetObjectCommand({ Bucket: stack.names.bucket, Key: key }));
      expect(Buffer.from(await got.Body!.transformToByteArray()).equals(bytes)).toBe(true);
    }
    const head = await s3.send(
      new HeadObjectCommand({ Bucket: stack.names.bucket, Key: 'streamed.bin' }),
    );
    expect(head.Metadata).toEqual({ filepath: 'C:/Users/x/streamed.bin' });
  });

  it('sends S3-shaped notifications with encoded keys and multipart event names', async () => {
    const s3 = client(() => new S3Client(sdk()));
    const sqs = client(() => new SQSClient(sdk()));
    const { QueueUrl } = { QueueUrl: stack.queueUrl };
    // Drain what the earlier tests queued.
    for (;;) {
      const r = await sqs.send(
        new ReceiveMessageCommand({ QueueUrl, MaxNumberOfMessages: 10, VisibilityTimeout: 300 }),
      );
      if (!r.Messages?.length) break;
    }
    const key = 'dir/a b+c\u00e9.exe';
    await s3.send(new PutObjectCommand({ Bucket: stack.names.bucket, Key: key, Body: 'x' }));
    const upload = await s3.send(
      new CreateMultipartUploadCommand({ Bucket: stack.names.bucket, Key: 'multi part.bin' }),
    );
    const part1 = await s3.send(
      new UploadPartCommand({
        Bucket: stack.names.bucket,
        Key: 'multi part.bin',
        UploadId: upload.UploadId,
        PartNumber: 1,
        Body: Buffer.alloc(5 * 1024 * 1024, 1),
      }),
    );
    const part2 = await s3.send(
      new UploadPartCommand({
        Bucket: stack.names.bucket,
        Key: 'multi part.bin',
        UploadId: upload.UploadId,
        PartNumber: 2,
        Body: Buffer.from('tail'),
      }),
    );
    await s3.send(
      new CompleteMultipartUploadCommand({
        Bucket: stack.names.bucket,
        Key: 'multi part.bin',
        UploadId: upload.UploadId,
        MultipartUpload: {
          Parts: [
            { PartNumber: 1, ETag: part1.ETag },
            { PartNumber: 2, ETag: part2.ETag },
          ],
        },
      }),
    );
    const records: {
      eventName: string;
      s3: { bucket: { name: string }; object: { key: string; size?: number } };
    }[] = [];
    await waitFor(
      async () => {
        const r = await sqs.send(
          new ReceiveMessageCommand({ QueueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 1 }),
        );
        for (const m of r.Messages ?? [])
          records.push(...(JSON.parse(m.Body!) as { Records: typeof records }).Records);
        return records.length >= 2 ? true : undefined;
      },
      10_000,
      'two notifications',
    );
    expect(records).toEqual(
      expect.arrayContaining([
        expect.objectContaining({
          eventName: 'ObjectCreated:Put',
          s3: expect.objectContaining({
            bucket: expect.objectContaining({ name: stack.names.bucket }),
            object: expect.objectContaining({ key: 'dir/a+b%2Bc%C3%A9.exe', size: 1 }),
          }),
        }),
        expect.objectContaining({
          eventName: 'ObjectCreated:CompleteMultipartUpload',
          s3: expect.objectContaining({
            object: expect.objectContaining({ key: 'multi+part.bin', size: 5 * 1024 * 1024 + 4 }),
          }),
        }),
      ]),
    );
  });

  // (e2e.retro.test.ts lists more than 1,000 keys with the default page size.)
  it('pages ListObjectsV2 with continuation tokens', async () => {
    const s3 = client(() => new S3Client(sdk()));
    const bucket = 'many-objects';
    await s3.send(new CreateBucketCommand({ Bucket: bucket }));
    const keys = Array.from({ length: 250 }, (_, i) => `k/${String(i).padStart(5, '0')}`);
    for (let i = 0; i < keys.length; i += 50) {
      await Promise.all(
        keys
          .slice(i, i + 50)
          .map((Key) => s3.send(new PutObjectCommand({ Bucket: bucket, Key, Body: 'x' }))),
      );
    }
    const seen: string[] = [];
    let token: string | undefined;
    let pages = 0;
    do {
      pages += 1;
      const page = await s3.send(
        new ListObjectsV2Command({ Bucket: bucket, ContinuationToken: token, MaxKeys: 100 }),
      );
      seen.push(...(page.Contents ?? []).map((o) => o.Key!));
      token = page.NextContinuationToken;
    } while (token);
    expect(pages).toBe(3);
    expect(seen).toEqual(keys);
  });

  it('returns ApproximateReceiveCount when asked with MessageSystemAttributeNames', async () => {
    const sqs = client(() => new SQSClient(sdk()));
    await sqs.send(
      new SendMessageCommand({ QueueUrl: stack.deadLetterQueueUrl, MessageBody: 'count me' }),
    );
    const { Messages = [] } = await sqs.send(
      new ReceiveMessageCommand({
        QueueUrl: stack.deadLetterQueueUrl,
        MessageSystemAttributeNames: ['ApproximateReceiveCount'],
        VisibilityTimeout: 0,
      }),
    );
    expect(Messages[0]?.Attributes?.ApproximateReceiveCount).toBe('1');
  });

  it('purges a queue at once', async () => {
    const sqs = client(() => new SQSClient(sdk()));
    await sqs.send(
      new SendMessageCommand({ QueueUrl: stack.deadLetterQueueUrl, MessageBody: 'a' }),
    );
    await sqs.send(
      new SendMessageCommand({ QueueUrl: stack.deadLetterQueueUrl, MessageBody: 'b' }),
    );
    await run(
      '/usr/bin/aws',
      [
        '--endpoint-url',
        stack.endpoint,
        'sqs',
        'purge-queue',
        '--queue-url',
        stack.deadLetterQueueUrl,
      ],
      {
        env: {
          ...process.env,
          AWS_ACCESS_KEY_ID: 'S3RVER',
          AWS_SECRET_ACCESS_KEY: 'S3RVER',
          AWS_REGION: stack.region,
        },
      },
    );
    const attrs = await sqs.send(
      new GetQueueAttributesCommand({
        QueueUrl: stack.deadLetterQueueUrl,
        AttributeNames: ['ApproximateNumberOfMessages'],
      }),
    );
    expect(attrs.Attributes?.ApproximateNumberOfMessages).toBe('0');
  });

  it('creates the match table as Terraform defines it', async () => {
    const dynamo = client(() => new DynamoDBClient(sdk()));
    const { Table } = await dynamo.send(new DescribeTableCommand({ TableName: stack.names.table }));
    expect(Table?.TableStatus).toBe('ACTIVE');
    expect(Table?.KeySchema).toEqual([{ AttributeName: 'SHA256', KeyType: 'HASH' }]);
  });

  it('prints published alerts, appends them to alerts.jsonl before answering and posts them with their message attributes to webhooks', async () => {
    const sns = client(() => new SNSClient(sdk()));
    const topic = `arn:aws:sns:${stack.region}:${stack.accountId}:${stack.names.matchesTopic}`;
    const summary = {
      FileInfo: {
        S3Location: 'S3:b:evil.exe',
        SHA256: 'ab'.repeat(32),
        S3Metadata: { filepath: 'C:/evil.exe' },
      },
      MatchedRules: { Rule1: { RuleName: 'eicar', RuleFile: 'eicar.yara' } },
      NumMatchedRules: 1,
    };
    // The attributes the analyzer sets for subscription filter policies (hostile text included).
    const hostileRule = 'r\u00e9gle "quoted" & <tag> \u{1F600}';
    await sns.send(
      new PublishCommand({
        TopicArn: topic,
        Subject: 'BinaryAlert: match',
        Message: JSON.stringify(summary),
        MessageAttributes: {
          rules: { DataType: 'String.Array', StringValue: JSON.stringify(['eicar', hostileRule]) },
          rule_files: { DataType: 'String.Array', StringValue: '["eicar.yara"]' },
          sha256: { DataType: 'String', StringValue: 'ab'.repeat(32) },
        },
      }),
    );
    const attributes = {
      rules: { Type: 'String.Array', Value: JSON.stringify(['eicar', hostileRule]) },
      rule_files: { Type: 'String.Array', Value: '["eicar.yara"]' },
      sha256: { Type: 'String', Value: 'ab'.repeat(32) },
    };
    expect(stack.alerts).toEqual([
      expect.objectContaining({ topicArn: topic, message: summary, messageAttributes: attributes }),
    ]);
    expect(output.join('\n')).toContain('S3:b:evil.exe');
    expect(output.join('\n')).toContain('eicar.yara:eicar');
    // Stored before the Publish was answered: a kill -9 right after it loses no alert.
    expect(await readJsonLines(join(dataDir, 'alerts.jsonl'))).toEqual([
      expect.objectContaining({ messageAttributes: attributes }),
    ]);
    await waitFor(() => (webhookBodies.length === 1 ? true : undefined), 5000, 'webhook');
    expect(webhookBodies[0]).toEqual(
      expect.objectContaining({
        subject: 'BinaryAlert: match',
        message: summary,
        messageAttributes: attributes,
      }),
    );
    await expect(
      sns.send(
        new PublishCommand({
          TopicArn: `arn:aws:sns:${stack.region}:${stack.accountId}:nope`,
          Message: 'x',
        }),
      ),
    ).rejects.toThrow(/Topic does not exist/);
  });

  it("counts the metrics of the functions' embedded-metric-format log lines in its status", async () => {
    const lambda = client(() => new LambdaClient(sdk()));
    /** An EMF line declaring `names` (with a service dimension), then `fields` at the top level. */
    const emfLine = (names: string[], fields: Record<string, unknown>) =>
      JSON.stringify({
        _aws: {
          Timestamp: Date.now(),
          CloudWatchMetrics: [
            {
              Namespace: 'BinaryAlert',
              Dimensions: [['service']],
              Metrics: names.map((Name) => ({ Name, Unit: 'Count' })),
            },
          ],
        },
        service: stack.names.analyzerFunction,
        ...fields,
      });
    const logLines = [
      emfLine(['AnalyzedBinaries', 'MatchedBinaries'], {
        AnalyzedBinaries: 3,
        MatchedBinaries: [1, 2],
      }),
      emfLine(['AnalyzedBinaries'], { AnalyzedBinaries: 2 }),
      // What CloudWatch would not extract: no numeric value, a dimension without a string value,
      // a truncated line; and a plain log line that merely names a metric.
      emfLine(['AnalyzedBinaries'], { AnalyzedBinaries: 'many' }),
      emfLine(['AnalyzedBinaries'], { AnalyzedBinaries: 100, service: 7 }),
      '{"_aws": truncated',
      JSON.stringify({ level: 'INFO', message: 'AnalyzedBinaries 1000', AnalyzedBinaries: 1000 }),
    ];

    const response = await lambda.send(
      new InvokeCommand({
        FunctionName: stack.names.analyzerFunction,
        Payload: Buffer.from(JSON.stringify({ logLines })),
      }),
    );

    expect(response.FunctionError).toBeUndefined();
    // Lines reach the log file after their metrics are counted: once the last one is there, all
    // of them were read.
    const logFile = join(dataDir, 'logs', 'analyzer.log');
    await waitFor(
      async () => (await readFile(logFile, 'utf8')).includes('AnalyzedBinaries 1000') || undefined,
      10_000,
      'the last line in the log file',
    );
    expect(stack.metrics.sum('AnalyzedBinaries')).toBe(5);
    expect(stack.metrics.sum('MatchedBinaries')).toBe(3);
    expect(await stack.status()).toEqual(expect.objectContaining({ analyzed: 5, matched: 3 }));
  });

  it('invokes functions from their zips in warm workers with the Terraform environment', async () => {
    const lambda = client(() => new LambdaClient(sdk()));
    const invoke = async (payload: unknown, fn = stack.names.analyzerFunction) => {
      const r = await lambda.send(
        new InvokeCommand({
          FunctionName: fn,
          Qualifier: 'Production',
          Payload: Buffer.from(JSON.stringify(payload)),
        }),
      );
      return {
        error: r.FunctionError,
        body: JSON.parse(Buffer.from(r.Payload!).toString('utf8')) as Record<string, unknown> & {
          remaining: number;
          invocations: number;
        },
        version: r.ExecutedVersion,
      };
    };
    const first = await invoke({ hello: 1 });
    expect(first.error).toBeUndefined();
    expect(first.body).toEqual(
      expect.objectContaining({
        marker: 'v1',
        event: { hello: 1 },
        version: '1',
        name: stack.names.analyzerFunction,
        env: {
          table: stack.names.table,
          endpoint: stack.endpoint,
          // The store's own port: S3 traffic skips the front's proxy hop.
          s3Endpoint: `http://localhost:${stack.emulators.s3.port}`,
          region: stack.region,
          key: 'S3RVER',
        },
      }),
    );
    expect(first.body.remaining).toBeGreaterThan(290_000);
    expect(first.body.remaining).toBeLessThanOrEqual(300_000);
    const fetched = await invoke({
      fetchUrl: `${stack.endpoint.replace('127.0.0.1', `${stack.names.bucket}.localhost`)}/buffer.bin`,
    });
    expect(fetched.body).toEqual({ status: 200, text: 'hello from a stream body\n'.repeat(5000) });
    const second = await invoke({});
    expect(second.body.invocations).toBeGreaterThanOrEqual(2);

    const failed = await invoke({ fail: true });
    expect(failed.error).toBe('Unhandled');
    expect(failed.body).toEqual(
      expect.objectContaining({ errorType: 'TestFailure', errorMessage: 'boom' }),
    );

    const timedOut = await invoke({ sleepMs: 3000 }, stack.names.batcherFunction);
    expect(timedOut.body).toEqual(expect.objectContaining({ errorType: 'Sandbox.Timedout' }));

    const accepted = await lambda.send(
      new InvokeCommand({
        FunctionName: stack.names.analyzerFunction,
        InvocationType: 'Event',
        Payload: Buffer.from('{"fail":true}'),
      }),
    );
    expect(accepted.StatusCode).toBe(202);
    await waitFor(
      () =>
        output.some((line) => line.includes('invocation failed: TestFailure')) ? true : undefined,
      5000,
      'async failure',
    );

    await expect(
      lambda.send(new InvokeCommand({ FunctionName: 'nope', Payload: Buffer.from('{}') })),
    ).rejects.toThrow(/Function not found/);
  });

  it('fails the invocation of a worker that dies and starts a fresh one', async () => {
    const lambda = client(() => new LambdaClient(sdk()));
    const pending = lambda.send(
      new InvokeCommand({
        FunctionName: stack.names.analyzerFunction,
        Payload: Buffer.from(JSON.stringify({ sleepMs: 20_000 })),
      }),
    );
    const pid = await waitFor<number>(
      () =>
        stack.lambda
          .workerInfo(stack.names.analyzerFunction)
          .find((w) => w.busy && JSON.stringify(w.event).includes('20000'))?.pid,
      10_000,
      'a busy worker',
    );
    process.kill(pid, 'SIGKILL');
    const died = await pending;
    expect(died.FunctionError).toBe('Unhandled');
    expect(JSON.parse(Buffer.from(died.Payload!).toString('utf8'))).toEqual(
      expect.objectContaining({ errorType: 'Runtime.ExitError' }),
    );
    const next = await lambda.send(
      new InvokeCommand({ FunctionName: stack.names.analyzerFunction, Payload: Buffer.from('{}') }),
    );
    expect(next.FunctionError).toBeUndefined();
  });

  it('publishes a new version when a zip changes', async () => {
    const lambda = client(() => new LambdaClient(sdk()));
    const body = async () => {
      const r = await lambda.send(
        new InvokeCommand({
          FunctionName: stack.names.analyzerFunction,
          Payload: Buffer.from('{}'),
        }),
      );
      return JSON.parse(Buffer.from(r.Payload!).toString('utf8')) as {
        marker: string;
        version: string;
      };
    };
    const before = await body();
    await writeZip(join(zipsDir, 'analyzer.zip'), { 'index.js': echoHandler('v2') });
    expect(await body()).toEqual(
      expect.objectContaining({ marker: 'v2', version: String(Number(before.version) + 1) }),
    );
  });

  it('refuses a second stack on the same data directory', async () => {
    await expect(
      startLocalStack({
        config: await testConfig(),
        dataDir,
        zipsDir,
        port: 0,
        dispatch: false,
        statusIntervalMs: 0,
        print: () => undefined,
      }),
    ).rejects.toThrow(DataDirLockedError);
  });
});
