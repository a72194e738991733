import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import {
  CreateTableCommand,
  GetItemCommand,
  ScanCommand,
  type DynamoDBClient,
} from '@aws-sdk/client-dynamodb';
import { CreateBucketCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import {
  CreateQueueCommand,
  ReceiveMessageCommand,
  SendMessageCommand,
  type SQSClient,
} from '@aws-sdk/client-sqs';
import {
  decodeS3Key,
  dispatchSlotsTableDefinition,
  objectsOfNotification,
  s3EventRecord,
  matchTableDefinition,
  verdictTableDefinition,
} from '@binaryalert/core';
import {
  REPO_ROOT,
  functionEnvironments,
  loadTfvars,
  resourceNames,
  type BinaryAlertConfig,
} from '@binaryalert/deployment';
import {
  startDynamo,
  startS3,
  startSqs,
  TEST_CREDENTIALS,
  TEST_REGION,
  uniqueName,
  type Emulator,
  s3VirtualHostEndpoint,
} from '@binaryalert/testing';

import { buildLambdaZips, type BuiltZip, type LambdaFunctionName } from './lambda-zips';

const run = promisify(execFile);
const LOCAL_PRELOAD = path.join(REPO_ROOT, 'packages/local/runtime/lambda-preload.cjs');

// What Amazon Linux 2023 (the Lambda Node runtimes' base) provides to native code.
const ALLOWED_NEEDED = /^(lib(c|m|dl|pthread|stdc\+\+|gcc_s)\.so\.\d+|ld-linux-x86-64\.so\.2)$/;
const MAX_VERSIONS: Record<string, number[]> = {
  GLIBC: [2, 34],
  GLIBCXX: [3, 4, 29],
  CXXABI: [1, 3, 13],
};

function compareVersions(a: number[], b: number[]): number {
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const diff = (a[i] ?? 0) - (b[i] ?? 0);
    if (diff !== 0) return diff;
  }
  return 0;
}

describe('buildLambdaZips', () => {
  let outDir: string;
  let zips: Map<LambdaFunctionName, BuiltZip>;
  let config: BinaryAlertConfig;
  const scratch: string[] = [];

  beforeAll(async () => {
    outDir = await mkdtemp(path.join(os.tmpdir(), 'ba-zips-'));
    scratch.push(outDir);
    const built = await buildLambdaZips({ outDir });
    zips = new Map(built.map((zip) => [zip.function, zip]));
    config = await loadTfvars();
  }, 300_000);
  afterAll(async () => {
    await Promise.all(scratch.map((dir) => rm(dir, { recursive: true, force: true })));
  });

  /** Unzips into a fresh directory outside the repository, where no node_modules can be found. */
  async function unzipped(name: LambdaFunctionName): Promise<string> {
    const dir = await mkdtemp(path.join(os.tmpdir(), `ba-${name}-`));
    scratch.push(dir);
    await run('unzip', ['-q', (zips.get(name) as BuiltZip).path, '-d', dir]);
    for (let up = dir; up !== path.dirname(up); up = path.dirname(up)) {
      expect(existsSync(path.join(up, 'node_modules'))).toBe(false);
    }
    return dir;
  }

  /**
   * Runs `index.handler` in a child node with cwd = the unzipped directory and only the given
   * environment (no NODE_PATH), as the Lambda runtime would; returns its result.
   */
  async function invoke(
    dir: string,
    env: Record<string, string>,
    event: unknown,
    remainingMs = 30_000,
  ): Promise<unknown> {
    const script = `
      const { handler } = require('./index.js');
      const deadline = Date.now() + ${remainingMs};
      const context = { functionVersion: '1', getRemainingTimeInMillis: () => deadline - Date.now() };
      handler(${JSON.stringify(event)}, context).then(
        (result) => process.stdout.write('\\n@@RESULT ' + JSON.stringify(result) + '\\n'),
        (error) => { console.error(error); process.exit(1); },
      );`;
    // The local runtime's preload resolves "*.localhost", where S3 requests for dotted bucket
    // names go (the bundles' S3 clients are exactly as on AWS: no forcePathStyle).
    const { stdout } = await run(process.execPath, ['-r', LOCAL_PRELOAD, '-e', script], {
      cwd: dir,
      env,
      timeout: 120_000,
      maxBuffer: 16 * 1024 * 1024,
    });
    const line = stdout.split('\n').find((l) => l.startsWith('@@RESULT '));
    if (!line) throw new Error(`handler printed no result:\n${stdout}`);
    return JSON.parse(line.slice('@@RESULT '.length));
  }

  function awsEnv(endpoints: Record<string, string>): Record<string, string> {
    return {
      AWS_REGION: TEST_REGION,
      AWS_ACCESS_KEY_ID: TEST_CREDENTIALS.accessKeyId,
      AWS_SECRET_ACCESS_KEY: TEST_CREDENTIALS.secretAccessKey,
      // Nothing listens here: calls to it fail, as they may for metrics without breaking anything.
      AWS_ENDPOINT_URL: 'http://127.0.0.1:9',
      ...Object.fromEntries(
        Object.entries(endpoints).map(([service, url]) => [`AWS_ENDPOINT_URL_${service}`, url]),
      ),
    };
  }

  /** A stand-in HTTP endpoint that records requests and answers with `respond`. */
  async function recorder(
    respond: (
      req: IncomingMessage,
      body: string,
    ) => { status: number; body?: string; headers?: Record<string, string> },
  ) {
    const requests: { url: string; body: string }[] = [];
    const server: Server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        requests.push({ url: req.url ?? '', body });
        const answer = respond(req, body);
        res.writeHead(answer.status, answer.headers ?? {});
        res.end(answer.body ?? '');
      });
    });
    server.listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
    return {
      endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
      requests,
      close: () => new Promise((resolve) => server.close(resolve)),
    };
  }

  it('writes the contract entries into each zip', () => {
    expect(zips.get('analyzer')?.entries).toEqual(
      expect.arrayContaining([
        'compiled_yara_rules.bin',
        'rules_manifest.json',
        'index.js',
        'index.js.map',
        'magic.mgc',
        'yara.node',
        '7zz.wasm',
        'sevenzip-worker.js',
        'sevenzip-worker.js.map',
      ]),
    );
    expect(zips.get('dispatcher')?.entries).toEqual(['index.js', 'index.js.map']);
    expect(zips.get('batcher')?.entries).toEqual(['index.js', 'index.js.map']);
    for (const zip of zips.values())
      expect(zip.path).toBe(path.join(outDir, `${zip.function}.zip`));
  });

  it.each(['analyzer', 'dispatcher', 'batcher'] as const)(
    '%s bundles the runtime core and none of the deployment model',
    async (fn) => {
      const map = JSON.parse(
        await readFile(path.join(await unzipped(fn), 'index.js.map'), 'utf8'),
      ) as { sources: string[] };

      expect(map.sources.some((source) => source.includes('packages/core/src/'))).toBe(true);
      expect(
        map.sources.filter((source) => /packages\/deployment\/|hcl2json/.test(source)),
      ).toEqual([]);
    },
  );

  /** The sources of a zip's bundle whose path contains `name`. */
  async function bundled(fn: LambdaFunctionName, name: string): Promise<string[]> {
    const map = JSON.parse(
      await readFile(path.join(await unzipped(fn), 'index.js.map'), 'utf8'),
    ) as { sources: string[] };
    return map.sources.filter((source) => source.includes(name));
  }

  it.each(['analyzer', 'dispatcher', 'batcher'] as const)(
    '%s logs through Powertools Logger and has no CloudWatch client',
    async (fn) => {
      expect((await bundled(fn, '@aws-lambda-powertools/logger/')).length).toBeGreaterThan(0);
      expect(await bundled(fn, 'client-cloudwatch')).toEqual([]);
    },
  );

  it.each(['analyzer', 'batcher'] as const)(
    '%s writes its metrics with Powertools Metrics',
    async (fn) => {
      expect((await bundled(fn, '@aws-lambda-powertools/metrics/')).length).toBeGreaterThan(0);
    },
  );

  it('keeps every zip under 10 MB', async () => {
    for (const zip of zips.values()) {
      const { size } = await stat(zip.path);
      expect({ fn: zip.function, size, under: size < 10 * 1024 * 1024 }).toEqual({
        fn: zip.function,
        size,
        under: true,
      });
    }
  });

  it('gives byte-identical zips for the same sources', async () => {
    const again = await mkdtemp(path.join(os.tmpdir(), 'ba-zips-again-'));
    scratch.push(again);

    const rebuilt = await buildLambdaZips({ outDir: again });

    for (const zip of rebuilt) {
      const first = zips.get(zip.function) as BuiltZip;
      expect(zip.sha256).toBe(first.sha256);
      const bytes = await readFile(zip.path);
      expect(createHash('sha256').update(bytes).digest('hex')).toBe(first.sha256);
    }
  }, 300_000);

  it('ships native code that needs only what Amazon Linux 2023 provides', async () => {
    const dir = await unzipped('analyzer');
    const files = (await readdir(dir)).filter((f) => /\.node$|^lib.+\.so(\.\d+)*$/.test(f));
    const shipped = new Set(files);
    expect(files).toContain('yara.node');

    for (const file of files) {
      const { stdout: dynamic } = await run('readelf', ['-d', path.join(dir, file)]);
      const needed = [...dynamic.matchAll(/\(NEEDED\)\s+Shared library: \[([^\]]+)\]/g)].map(
        (m) => m[1] as string,
      );
      expect(needed.filter((lib) => !ALLOWED_NEEDED.test(lib) && !shipped.has(lib))).toEqual([]);

      const { stdout: symbols } = await run('objdump', ['-T', path.join(dir, file)], {
        maxBuffer: 64 * 1024 * 1024,
      });
      const tooNew = [...symbols.matchAll(/\b(GLIBC|GLIBCXX|CXXABI)_(\d+(?:\.\d+)*)\b/g)]
        .filter(
          (m) =>
            compareVersions(
              (m[2] as string).split('.').map(Number),
              MAX_VERSIONS[m[1] as string] as number[],
            ) > 0,
        )
        .map((m) => `${file}: ${m[0]}`);
      expect([...new Set(tooNew)]).toEqual([]);
    }
  });

  describe('run from the unzipped zip with only the environment Terraform sets', () => {
    let s3: Emulator<S3Client>;
    let sqs: Emulator<SQSClient>;
    let dynamo: Emulator<DynamoDBClient>;

    beforeAll(async () => {
      [s3, sqs, dynamo] = await Promise.all([startS3(), startSqs(), startDynamo()]);
    });
    afterAll(async () => {
      await Promise.all([s3?.stop(), sqs?.stop(), dynamo?.stop()]);
    });

    async function newQueue(): Promise<string> {
      const { QueueUrl } = await sqs.client.send(
        new CreateQueueCommand({ QueueName: uniqueName('zip') }),
      );
      return QueueUrl as string;
    }

    async function receiveAll(QueueUrl: string): Promise<string[]> {
      const bodies: string[] = [];
      for (;;) {
        const { Messages = [] } = await sqs.client.send(
          new ReceiveMessageCommand({ QueueUrl, MaxNumberOfMessages: 10, VisibilityTimeout: 60 }),
        );
        if (Messages.length === 0) return bodies;
        bodies.push(...Messages.map((m) => m.Body as string));
      }
    }

    it('batcher: lists the bucket into the queue', async () => {
      const queueUrl = await newQueue();
      const env = functionEnvironments(config, { accountId: '123456789012', queueUrl }).batcher;
      const bucket = env.S3_BUCKET_NAME as string;
      await s3.client.send(new CreateBucketCommand({ Bucket: bucket }));
      const keys = Array.from({ length: 25 }, (_, i) => `zip test/${i} ü.bin`);
      await Promise.all(
        keys.map((Key) => s3.client.send(new PutObjectCommand({ Bucket: bucket, Key, Body: Key }))),
      );
      const dir = await unzipped('batcher');

      const result = await invoke(
        dir,
        { ...env, ...awsEnv({ S3: s3VirtualHostEndpoint(s3), SQS: sqs.endpoint }) },
        {},
      );

      expect(result).toBe(25);
      const enqueued = (await receiveAll(queueUrl)).flatMap((body) =>
        objectsOfNotification(body).map((r) => r.key),
      );
      expect(enqueued.sort()).toEqual([...keys].sort());
    });

    it('dispatcher: hands queued notifications to the analyzer alias', async () => {
      const queueUrl = await newQueue();
      const names = resourceNames(config);
      const env = {
        ...functionEnvironments(config, { accountId: '123456789012', queueUrl }).dispatcher,
        SQS_WAIT_TIME_SECONDS: '1', // keep the run short; the value's meaning is unchanged
      };
      for (const key of ['a.exe', 'b c.dll']) {
        await sqs.client.send(
          new SendMessageCommand({
            QueueUrl: queueUrl,
            MessageBody: JSON.stringify({
              Records: [s3EventRecord({ bucket: names.bucket, key })],
            }),
          }),
        );
      }
      // Each analyzer invocation holds one of the dispatcher's slots.
      await dynamo.client.send(
        new CreateTableCommand(dispatchSlotsTableDefinition(names.dispatchSlotsTable)),
      );
      const lambda = await recorder(() => ({ status: 202 }));
      const dir = await unzipped('dispatcher');
      try {
        const result = await invoke(
          dir,
          {
            ...env,
            ...awsEnv({ SQS: sqs.endpoint, LAMBDA: lambda.endpoint, DYNAMODB: dynamo.endpoint }),
          },
          {},
          4_000,
        );

        expect(result).toMatchObject({
          invocations: lambda.requests.length,
          dispatchedMessages: 2,
        });
        expect(lambda.requests.length).toBeGreaterThan(0);
        for (const request of lambda.requests) {
          expect(request.url).toBe(
            `/2015-03-31/functions/${names.analyzerFunction}/invocations?Qualifier=Production`,
          );
        }
        const payloads = lambda.requests.map(
          (r) =>
            JSON.parse(r.body) as {
              Records: { s3: { object: { key: string } } }[];
              SQSReceipts: string[];
              DispatchSlot: { Slot: number };
            },
        );
        expect(
          payloads.flatMap((p) => p.Records.map((r) => decodeS3Key(r.s3.object.key))).sort(),
        ).toEqual(['a.exe', 'b c.dll']);
        expect(payloads.flatMap((p) => p.SQSReceipts)).toHaveLength(2);
        // Distinct slots, among the lambda_analyze_concurrency_limit the dispatcher has.
        const slots = payloads.map((p) => p.DispatchSlot.Slot);
        expect(new Set(slots).size).toBe(slots.length);
        expect(Math.max(...slots)).toBeLessThan(config.lambda_analyze_concurrency_limit);
      } finally {
        await lambda.close();
      }
    });

    it('analyzer: loads the addon and compiled rules beside index.js and finds EICAR in an S3 object', async () => {
      const names = resourceNames(config);
      const env = functionEnvironments(config, {
        accountId: '123456789012',
        queueUrl: await newQueue(),
      }).analyzer;
      const bucket = uniqueName('zip-analyzer');
      await s3.client.send(new CreateBucketCommand({ Bucket: bucket }));
      const eicar = await readFile(
        path.join(REPO_ROOT, 'rules/samples/positive/eicar_test_file/eicar.com'),
      );
      await s3.client.send(
        new PutObjectCommand({
          Bucket: bucket,
          Key: 'dir/eicar test.com',
          Body: eicar,
          Metadata: { filepath: 'C:/Users/x/eicar.com' },
        }),
      );
      await s3.client.send(
        new PutObjectCommand({ Bucket: bucket, Key: 'clean.txt', Body: 'nothing to see here' }),
      );
      // EICAR in a 7z with encrypted names (`7z -p -mhe=on`): the zip's 7zz.wasm must open it.
      const sevenZipDir = await mkdtemp(path.join(os.tmpdir(), 'ba-7z-'));
      await writeFile(path.join(sevenZipDir, 'eicar.com'), eicar);
      await run('7z', ['a', '-bd', '-pinfected', '-mhe=on', 'locked.7z', 'eicar.com'], {
        cwd: sevenZipDir,
      });
      await s3.client.send(
        new PutObjectCommand({
          Bucket: bucket,
          Key: 'locked.7z',
          Body: await readFile(path.join(sevenZipDir, 'locked.7z')),
        }),
      );
      // The same inside a zip: the native walker hands the nested 7z to the zip's 7-Zip worker.
      await run('zip', ['-q', 'nested.zip', 'locked.7z'], { cwd: sevenZipDir });
      await s3.client.send(
        new PutObjectCommand({
          Bucket: bucket,
          Key: 'nested.zip',
          Body: await readFile(path.join(sevenZipDir, 'nested.zip')),
        }),
      );
      await rm(sevenZipDir, { recursive: true, force: true });
      await dynamo.client.send(new CreateTableCommand(matchTableDefinition(names.table)));
      await dynamo.client.send(new CreateTableCommand(verdictTableDefinition(names.verdictTable)));
      const sns = await recorder(() => ({
        status: 200,
        headers: { 'Content-Type': 'text/xml' },
        body: '<PublishResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/"><PublishResult><MessageId>m-1</MessageId></PublishResult><ResponseMetadata><RequestId>r-1</RequestId></ResponseMetadata></PublishResponse>',
      }));
      const dir = await unzipped('analyzer');
      try {
        const event = {
          Records: ['dir/eicar test.com', 'clean.txt', 'locked.7z', 'nested.zip'].map((key) =>
            s3EventRecord({ bucket, key }),
          ),
        };

        const result = (await invoke(
          dir,
          { ...env, ...awsEnv({ S3: s3.endpoint, DYNAMODB: dynamo.endpoint, SNS: sns.endpoint }) },
          event,
        )) as Record<
          string,
          {
            FileInfo: { SHA256: string };
            NumMatchedRules: number;
            MatchedRules: Record<string, { MemberPath?: string }>;
          }
        >;

        const sha256 = createHash('sha256').update(eicar).digest('hex');
        expect(result[`S3:${bucket}:dir/eicar test.com`]).toMatchObject({
          FileInfo: { SHA256: sha256 },
        });
        expect(result[`S3:${bucket}:dir/eicar test.com`]?.NumMatchedRules).toBeGreaterThan(0);
        expect(result[`S3:${bucket}:clean.txt`]?.NumMatchedRules).toBe(0);
        const { Item } = await dynamo.client.send(
          new GetItemCommand({
            TableName: names.verdictTable,
            Key: { Bucket: { S: bucket }, Key: { S: 'dir/eicar test.com' } },
          }),
        );
        expect(Item?.MatchAlertSha256).toEqual({ S: sha256 });
        expect(
          Object.values(result[`S3:${bucket}:locked.7z`]?.MatchedRules ?? {}).map(
            (rule) => rule.MemberPath,
          ),
        ).toContain('locked.7z!eicar.com');
        expect(
          Object.values(result[`S3:${bucket}:nested.zip`]?.MatchedRules ?? {}).map(
            (rule) => rule.MemberPath,
          ),
        ).toContain('nested.zip!locked.7z!eicar.com');
        // One alert per binary: EICAR itself, the 7z holding it and the zip holding that.
        expect(sns.requests).toHaveLength(3);
        const verdicts = await dynamo.client.send(
          new ScanCommand({ TableName: names.verdictTable }),
        );
        expect((verdicts.Items ?? []).map((item) => [item.Key?.S, item.Verdict?.S]).sort()).toEqual(
          [
            ['clean.txt', 'clean'],
            ['dir/eicar test.com', 'matched'],
            ['locked.7z', 'matched'],
            ['nested.zip', 'matched'],
          ],
        );
      } finally {
        await sns.close();
      }
    });
  });
});
