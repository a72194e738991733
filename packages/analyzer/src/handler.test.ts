import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { CreateBucketCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { CreateQueueCommand, type SQSClient } from '@aws-sdk/client-sqs';
import { ConfigError, s3EventRecord } from '@binaryalert/core';
import {
  captureEmf,
  startDynamo,
  startS3,
  startSqs,
  TEST_CREDENTIALS,
  TEST_REGION,
  uniqueName,
  type Emulator,
} from '@binaryalert/testing';
import { compileRules } from '@binaryalert/yara';
import { readVerdict } from './ledger';
import { createMatchTable, createVerdictTable } from './testing';

type HandlerModule = typeof import('./handler');
interface Stub {
  calls(): { args: unknown[] }[];
}

/**
 * Loads handler.ts afresh, as a new Lambda container would, with SNS (no local emulator) stubbed
 * at the client boundary of that fresh module registry.
 */
function coldStart() {
  let loaded: HandlerModule | undefined;
  let stubs: { sns: Stub } | undefined;
  jest.isolateModules(() => {
    const { mockClient } =
      jest.requireActual<typeof import('aws-sdk-client-mock')>('aws-sdk-client-mock');
    const sns = jest.requireActual<typeof import('@aws-sdk/client-sns')>('@aws-sdk/client-sns');
    stubs = { sns: mockClient(sns.SNSClient) };
    loaded = jest.requireActual<HandlerModule>('./handler');
  });
  return { ...loaded!, stubs: stubs! };
}

const commandNames = (stub: Stub) =>
  stub.calls().map((call) => (call.args[0] as object).constructor.name);

describe('handler', () => {
  let s3: Emulator<S3Client>;
  let sqs: Emulator<SQSClient>;
  let dynamo: Emulator<DynamoDBClient>;
  let dir: string;
  const savedEnv = { ...process.env };

  beforeAll(async () => {
    [s3, sqs, dynamo] = await Promise.all([startS3(), startSqs(), startDynamo()]);
    dir = await mkdtemp(path.join(os.tmpdir(), 'analyzer-handler-'));
  });
  afterAll(async () => {
    await Promise.all([s3.stop(), sqs.stop(), dynamo.stop()]);
    await rm(dir, { recursive: true, force: true });
  });
  afterEach(() => {
    process.env = { ...savedEnv };
  });

  it('analyzes an event with clients and rules built from the environment at cold start', async () => {
    const bucket = uniqueName('handler');
    const table = uniqueName('matches');
    await s3.client.send(new CreateBucketCommand({ Bucket: bucket }));
    await s3.client.send(
      new PutObjectCommand({
        Bucket: bucket,
        Key: 'dir/evil file.bin',
        Body: 'xx HANDLER_MARKER xx',
      }),
    );
    await createMatchTable(dynamo.client, table);
    await createVerdictTable(dynamo.client, `${table}-verdicts`);
    const queue = await sqs.client.send(new CreateQueueCommand({ QueueName: uniqueName('q') }));
    await writeFile(
      path.join(dir, 'h.yar'),
      'rule handler_marker { strings: $a = "HANDLER_MARKER" condition: $a }',
    );
    const { rules } = await compileRules([{ path: path.join(dir, 'h.yar'), namespace: 'h.yar' }]);
    const rulesPath = path.join(dir, 'compiled.bin');
    await rules.save(rulesPath);
    Object.assign(process.env, {
      AWS_REGION: TEST_REGION,
      AWS_ACCESS_KEY_ID: TEST_CREDENTIALS.accessKeyId,
      AWS_SECRET_ACCESS_KEY: TEST_CREDENTIALS.secretAccessKey,
      AWS_ENDPOINT_URL_S3: s3.endpoint,
      AWS_ENDPOINT_URL_DYNAMODB: dynamo.endpoint,
      AWS_ENDPOINT_URL_SQS: sqs.endpoint,
      YARA_MATCHES_DYNAMO_TABLE_NAME: table,
      VERDICTS_DYNAMO_TABLE_NAME: `${table}-verdicts`,
      VERDICT_TTL_DAYS: '30',
      YARA_ALERTS_SNS_TOPIC_ARN: 'arn:aws:sns:us-east-1:123456789012:alerts',
      NEGATIVE_ALERTS_SNS_TOPIC_ARN: '',
      SQS_QUEUE_URL: queue.QueueUrl,
      MAX_FILE_SIZE_MB: '1',
      SCAN_TIMEOUT_SECONDS: '10',
      ARCHIVE_PASSWORDS: '["infected"]',
      ARCHIVE_MAX_DEPTH: '5',
      ARCHIVE_MAX_MEMBERS: '10000',
      ARCHIVE_MAX_EXPANDED_MB: '64',
      ARCHIVE_MAX_RATIO: '250',
      COMPILED_RULES_PATH: rulesPath,
      AWS_LAMBDA_FUNCTION_NAME: 'p_binaryalert_analyzer', // set by Lambda
    });
    const { handler, stubs } = coldStart();
    const emf = captureEmf();

    let result: Awaited<ReturnType<typeof handler>>;
    try {
      result = await handler(
        { Records: [s3EventRecord({ bucket, key: 'dir/evil file.bin' })] },
        { functionVersion: '$LATEST' },
      );
    } finally {
      emf.restore();
    }

    expect(Object.keys(result)).toEqual([`S3:${bucket}:dir/evil file.bin`]);
    expect(commandNames(stubs.sns)).toEqual(['PublishCommand']);
    // Metrics are in the log (EMF), selected by the function's name as its service.
    expect(emf.lines).toHaveLength(1);
    expect(emf.metrics()).toContainEqual({
      namespace: 'BinaryAlert',
      name: 'MatchedBinaries',
      unit: 'Count',
      dimensionSets: [{ service: 'p_binaryalert_analyzer' }],
      values: [1],
    });
    const verdict = await readVerdict(dynamo.client, `${table}-verdicts`, {
      bucket,
      key: 'dir/evil file.bin',
    });
    expect(verdict).toMatchObject({ verdict: 'matched', rules: ['h.yar:handler_marker'] });
    // VERDICT_TTL_DAYS sets the item's expiry 30 days after its analysis.
    expect(verdict!.expiresAt! - Date.parse(verdict!.analyzedAt) / 1000).toBeCloseTo(
      30 * 86_400,
      -1,
    );
  });

  it('fails the cold start naming a missing variable', () => {
    delete process.env.YARA_MATCHES_DYNAMO_TABLE_NAME;

    let error: unknown;
    try {
      coldStart();
    } catch (e) {
      error = e;
    }

    // A fresh module registry has its own ConfigError class: compare by name.
    expect(error).toMatchObject({ name: ConfigError.name });
    expect(error).toMatchObject({
      message: expect.stringMatching(/YARA_MATCHES_DYNAMO_TABLE_NAME/),
    });
  });

  it('fails invocations when the compiled rules cannot be loaded', async () => {
    Object.assign(process.env, {
      YARA_MATCHES_DYNAMO_TABLE_NAME: 't',
      VERDICTS_DYNAMO_TABLE_NAME: 'v',
      YARA_ALERTS_SNS_TOPIC_ARN: 'arn:t',
      SQS_QUEUE_URL: 'http://127.0.0.1:1/q',
      MAX_FILE_SIZE_MB: '1',
      SCAN_TIMEOUT_SECONDS: '1',
      ARCHIVE_PASSWORDS: '["infected"]',
      ARCHIVE_MAX_DEPTH: '5',
      ARCHIVE_MAX_MEMBERS: '10000',
      ARCHIVE_MAX_EXPANDED_MB: '64',
      ARCHIVE_MAX_RATIO: '250',
      COMPILED_RULES_PATH: path.join(dir, 'missing.bin'),
    });
    const { handler } = coldStart();

    await expect(handler({ Records: [] }, { functionVersion: '1' })).rejects.toThrow(
      /missing\.bin/,
    );
  });
});
