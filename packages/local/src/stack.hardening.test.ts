import { execFile } from 'node:child_process';
import { readdir, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { join } from 'node:path';
import { promisify } from 'node:util';
import {
  DeleteObjectCommand,
  GetObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { ReceiveMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import { DescribeTableCommand, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { decodeS3Key } from '@binaryalert/core';

import { startLocalStack, type LocalStack } from './stack';
import { tempDir, testConfig, waitFor } from './testing/fixtures';

const run = promisify(execFile);

function raw(
  port: number,
  method: string,
  path: string,
  headers: Record<string, string>,
  body?: string,
): Promise<number> {
  return new Promise((ok, fail) => {
    const req = request({ host: '127.0.0.1', port, method, path, headers }, (res) => {
      res.resume();
      res.on('end', () => ok(res.statusCode ?? 0));
    });
    req.on('error', fail);
    req.end(body);
  });
}

describe('local stack hardening', () => {
  let parent: { path: string; remove: () => Promise<void> };
  let dataDir: string;
  let stack: LocalStack;
  let s3: S3Client;
  let sqs: SQSClient;
  let output: string[];

  const sdk = () => ({
    endpoint: stack.endpoint,
    region: stack.region,
    credentials: { accessKeyId: 'any', secretAccessKey: 'pair' },
    forcePathStyle: true,
  });
  const aws = async (args: string[]) =>
    (
      await run('/usr/bin/aws', ['--endpoint-url', stack.endpoint, ...args], {
        env: {
          ...process.env,
          AWS_ACCESS_KEY_ID: 'any',
          AWS_SECRET_ACCESS_KEY: 'pair',
          AWS_DEFAULT_REGION: stack.region,
        },
      })
    ).stdout;
  const read = async (key: string) =>
    (
      await s3.send(new GetObjectCommand({ Bucket: stack.names.bucket, Key: key }))
    ).Body!.transformToString();
  /** The keys of the notifications waiting in the queue. */
  const notifiedKeys = async (): Promise<string[]> => {
    const keys: string[] = [];
    for (;;) {
      const { Messages = [] } = await sqs.send(
        new ReceiveMessageCommand({
          QueueUrl: stack.queueUrl,
          MaxNumberOfMessages: 10,
          VisibilityTimeout: 300,
        }),
      );
      if (Messages.length === 0) return keys;
      for (const m of Messages) {
        const body = JSON.parse(m.Body!) as { Records: { s3: { object: { key: string } } }[] };
        keys.push(...body.Records.map((r) => decodeS3Key(r.s3.object.key)));
      }
    }
  };

  beforeAll(async () => {
    parent = await tempDir('ba-hardening-');
    dataDir = join(parent.path, 'data');
    output = [];
    stack = await startLocalStack({
      config: await testConfig(),
      dataDir,
      zipsDir: join(parent.path, 'no-zips'),
      port: 0,
      dispatch: false,
      statusIntervalMs: 0,
      print: (text) => output.push(text),
    });
    // The start-up reconciliation lists the bucket in the background; uploads made while it is
    // still listing could be queued by it as well as by their notification.
    await stack.reconciled;
    s3 = new S3Client(sdk());
    sqs = new SQSClient(sdk());
  });

  afterAll(async () => {
    s3?.destroy();
    sqs?.destroy();
    await stack?.stop();
    await parent?.remove();
  });

  it('stores traversal, 1,024-byte and unicode keys as keys, notifies each, writes nothing outside the data directory', async () => {
    const bucket = stack.names.bucket;
    const keys = [
      '../../../somewhere/x',
      'keys2/dot/../../escape.txt',
      'escape.txt',
      `${'k'.repeat(1000)}/${'z'.repeat(23)}`,
      'k'.repeat(1024),
      'ünï/códe 日本 +.bin',
    ];
    for (const key of keys) {
      await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: `body of ${key}` }));
    }
    await writeFile(join(parent.path, 'cli.txt'), 'cli');
    await aws(['s3', 'cp', join(parent.path, 'cli.txt'), `s3://${bucket}/../../cli-escape.txt`]);
    expect(
      await raw(
        Number(new URL(stack.endpoint).port),
        'PUT',
        `/${bucket}/..%2F..%2F%2E%2E%2Fenc.txt`,
        { authorization: 'AWS4-HMAC-SHA256 Credential=a/b' },
        'enc',
      ),
    ).toBe(200);

    for (const key of keys) expect(await read(key)).toBe(`body of ${key}`);
    expect(await read('../../cli-escape.txt')).toBe('cli');
    expect(await read('../../../enc.txt')).toBe('enc');
    expect((await notifiedKeys()).sort()).toEqual(
      [...keys, '../../cli-escape.txt', '../../../enc.txt'].sort(),
    );
    expect((await readdir(parent.path)).sort()).toEqual(['cli.txt', 'data']);
    expect((await readdir(dataDir)).sort()).toEqual(
      expect.arrayContaining(['s3', 'dynamodb', 'stack.lock']),
    );
    const objectFiles = await readdir(join(dataDir, 's3'), { recursive: true });
    expect(objectFiles.filter((f) => /escape|somewhere|enc\.txt/.test(String(f)))).toEqual([]);
  });

  it('survives concurrent puts, deletes and lists under one prefix', async () => {
    const bucket = stack.names.bucket;
    const work: Promise<unknown>[] = [];
    for (let i = 0; i < 300; i++) {
      const key = `same/prefix/${i % 15}`;
      work.push(s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: `v${i}` })));
      work.push(s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: key })));
      if (i % 5 === 0)
        work.push(s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: 'same/' })));
    }
    const settled = await Promise.allSettled(work);
    expect(settled.filter((o) => o.status === 'rejected')).toEqual([]);
    const listed = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: 'same/' }));
    for (const o of listed.Contents ?? []) expect(await read(o.Key!)).toMatch(/^v\d+$/);
    expect(output.filter((line) => /failed|stopped/.test(line))).toEqual([]);
  });

  it('refuses foreign Host headers, browser origins, form uploads and unsigned writes on every service', async () => {
    const port = Number(new URL(stack.endpoint).port);
    const bucket = stack.names.bucket;
    expect(await raw(port, 'GET', `/${bucket}?list-type=2`, { host: 'evil.example:4566' })).toBe(
      403,
    );
    expect(
      await raw(
        port,
        'POST',
        '/',
        { host: 'evil.example', 'content-type': 'application/x-www-form-urlencoded' },
        'Action=ListQueues',
      ),
    ).toBe(403);
    expect(
      await raw(
        port,
        'POST',
        `/${bucket}`,
        { 'content-type': 'multipart/form-data; boundary=b', origin: 'http://evil.example' },
        '--b--',
      ),
    ).toBe(403);
    expect(
      await raw(
        port,
        'POST',
        '/',
        { 'content-type': 'application/x-www-form-urlencoded' },
        `Action=SendMessage&QueueUrl=${encodeURIComponent(stack.queueUrl)}&MessageBody=x`,
      ),
    ).toBe(403);
    expect(await raw(port, 'PUT', `/${bucket}/unsigned`, {}, 'x')).toBe(403);
    expect(await raw(port, 'GET', `/${bucket}?list-type=2`, {})).toBe(200);
  });

  it('restarts an emulator killed with SIGKILL and keeps its data; the stack keeps serving', async () => {
    const bucket = stack.names.bucket;
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'before/kill', Body: 'kept' }));
    const s3Pid = stack.emulators.s3.pid!;
    const dynamoPid = stack.emulators.dynamo.pid!;
    process.kill(s3Pid, 'SIGKILL');
    process.kill(dynamoPid, 'SIGKILL');
    await waitFor(
      () =>
        stack.emulators.s3.restarts === 1 && stack.emulators.dynamo.restarts === 1
          ? true
          : undefined,
      10_000,
      'both emulators restarted',
    );
    // Requests during the restart may fail (the SDKs retry); afterwards all is served again.
    await waitFor(
      async () => ((await read('before/kill')) === 'kept' ? true : undefined),
      15_000,
      'S3 back',
    );
    // DynamoDB too: `restarts` counts a restart begun, not the new process listening yet.
    const dynamo = new DynamoDBClient(sdk());
    const table = await waitFor(
      () =>
        dynamo
          .send(new DescribeTableCommand({ TableName: stack.names.table }))
          .catch(() => undefined),
      15_000,
      'DynamoDB back',
    );
    dynamo.destroy();
    expect(table.Table?.TableStatus).toBe('ACTIVE');
    expect(stack.emulators.s3.pid).not.toBe(s3Pid);
    expect(output.some((line) => line.includes('S3 stopped (signal SIGKILL); restarting'))).toBe(
      true,
    );
    expect(
      output.some((line) => line.includes('DynamoDB stopped (signal SIGKILL); restarting')),
    ).toBe(true);
  });
});
