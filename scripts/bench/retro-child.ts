/**
 * Run by the retro section in its own process (bundled, plain node), as the batcher runs in a
 * Lambda worker apart from the local stack's emulators: enqueueBucket over the whole bucket.
 * Prints one line "BENCH {json}".
 */
import { LambdaClient } from '@aws-sdk/client-lambda';
import { S3Client } from '@aws-sdk/client-s3';
import { SQSClient } from '@aws-sdk/client-sqs';

import { enqueueBucket } from '../../packages/batcher/src';
import { createLogger, createMetrics } from '../../packages/core/src';

interface ChildArgs {
  endpoint: string;
  region: string;
  bucket: string;
  queueUrl: string;
  objectsPerMessage: number;
  functionName: string;
}

async function main(): Promise<void> {
  const args = JSON.parse(process.argv[2] ?? '{}') as ChildArgs;
  const clientConfig = {
    endpoint: args.endpoint,
    region: args.region,
    credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
  };
  const log = createLogger('batcher', () => undefined);
  const deps = {
    s3: new S3Client({ ...clientConfig, forcePathStyle: true }),
    sqs: new SQSClient(clientConfig),
    lambda: new LambdaClient(clientConfig),
    metrics: createMetrics('bench', log),
    log,
  };
  const started = performance.now();
  const result = await enqueueBucket(
    deps,
    {
      bucket: args.bucket,
      queueUrl: args.queueUrl,
      objectsPerMessage: args.objectsPerMessage,
      functionName: args.functionName,
      qualifier: 'Production',
    },
    {},
    () => 15 * 60 * 1000,
  );
  const ms = performance.now() - started;
  process.stdout.write(`\nBENCH ${JSON.stringify({ ms, ...result })}\n`);
}

main().catch((error: unknown) => {
  process.stderr.write(
    `${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
  );
  process.exitCode = 1;
});
