import path from 'node:path';

import {
  CreateBucketCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import {
  CreateQueueCommand,
  DeleteMessageBatchCommand,
  ReceiveMessageCommand,
  SQSClient,
} from '@aws-sdk/client-sqs';

import { loadTfvars } from '../../packages/deployment/src';
import { bundleEntry } from './bundle';
import type { BenchContext } from './context';
import { interleave, median, runTimed } from './measure';
import { resultLine } from './packaging';
import type { Row, SectionResult } from './report';
import { localStack } from './stack';

const SECTION = 'retro';
const TARGET_PER_SECOND = 5000;

/**
 * The batcher's enqueueBucket (its plain function, as its handler calls it, in a process of its
 * own like a Lambda worker; timed inside it, so without process start-up) over a bucket of
 * 10,000 objects in the local stack's S3, into a queue of the local stack's SQS (a separate bucket
 * and queue, so the analyzer does not start on them); then the drain rate of that queue with
 * receive + batch delete, as many receivers as the dispatcher runs. Interleaved repetitions.
 */
export async function benchRetro(ctx: BenchContext): Promise<SectionResult> {
  const stack = await localStack(ctx);
  const config = await loadTfvars(path.join(ctx.repoRoot, 'terraform.tfvars'));
  const clientConfig = {
    endpoint: stack.endpoint,
    region: stack.region,
    credentials: stack.credentials,
  };
  const s3 = new S3Client({ ...clientConfig, forcePathStyle: true });
  const sqs = new SQSClient(clientConfig);
  const objects = ctx.quick ? 1000 : 10_000;
  const bucket = `bench-retro-${process.pid}`;
  await s3.send(new CreateBucketCommand({ Bucket: bucket }));
  ctx.log(`retro: writing ${objects} objects`);
  const seedStarted = performance.now();
  let next = 0;
  const putter = async () => {
    while (next < objects) {
      const index = next++;
      await s3.send(
        new PutObjectCommand({
          Bucket: bucket,
          Key: `retro/${(index % 100).toString().padStart(2, '0')}/object-${index}.bin`,
          Body: `object ${index}`,
        }),
      );
    }
  };
  await Promise.all(Array.from({ length: 32 }, putter));
  const seedS = (performance.now() - seedStarted) / 1000;

  const queueUrl = (
    await sqs.send(new CreateQueueCommand({ QueueName: `bench-retro-${process.pid}` }))
  ).QueueUrl as string;
  const objectsPerMessage = config.objects_per_retro_message;
  const receivers = config.lambda_dispatch_receive_concurrency;
  const child = await bundleEntry(path.join(__dirname, 'retro-child.ts'), 'retro-child');

  const enqueue = async () => {
    const run = await runTimed(process.execPath, [
      child,
      JSON.stringify({
        endpoint: stack.endpoint,
        region: stack.region,
        bucket,
        queueUrl,
        objectsPerMessage,
        functionName: stack.names.batcherFunction,
      }),
    ]);
    const result = resultLine<{ ms: number; enqueuedKeys: number; failedKeys: number }>(run.stdout);
    if (result.enqueuedKeys !== objects || result.failedKeys > 0) {
      throw new Error(
        `enqueued ${result.enqueuedKeys} of ${objects} objects (${result.failedKeys} failed)`,
      );
    }
    return (objects / result.ms) * 1000;
  };
  const drain = async () => {
    const started = performance.now();
    let drained = 0;
    let emptyReceives = 0;
    const receiver = async () => {
      while (emptyReceives < receivers * 2) {
        const { Messages = [] } = await sqs.send(
          new ReceiveMessageCommand({ QueueUrl: queueUrl, MaxNumberOfMessages: 10 }),
        );
        if (Messages.length === 0) {
          emptyReceives++;
          continue;
        }
        for (const message of Messages) {
          drained +=
            (JSON.parse(message.Body ?? '{}') as { Records?: unknown[] }).Records?.length ?? 0;
        }
        await sqs.send(
          new DeleteMessageBatchCommand({
            QueueUrl: queueUrl,
            Entries: Messages.map((m, i) => ({ Id: String(i), ReceiptHandle: m.ReceiptHandle })),
          }),
        );
      }
    };
    await Promise.all(Array.from({ length: receivers }, receiver));
    if (drained !== objects) throw new Error(`drained ${drained} of ${objects} objects`);
    return (drained / (performance.now() - started)) * 1000;
  };
  // Listing alone (the emulator's share of the enqueue time).
  const list = async () => {
    const started = performance.now();
    let listed = 0;
    let token: string | undefined;
    do {
      const page = await s3.send(
        new ListObjectsV2Command({ Bucket: bucket, ContinuationToken: token, MaxKeys: 1000 }),
      );
      listed += page.KeyCount ?? 0;
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token !== undefined);
    return (listed / (performance.now() - started)) * 1000;
  };
  // Each repetition: an enqueue, the drain that empties the queue again, a listing.
  const runs = await interleave(
    [
      {
        name: 'round',
        run: async () => ({ enqueue: await enqueue(), drain: await drain(), list: await list() }),
      },
    ],
    ctx.reps,
  );
  const rounds = runs.get('round') ?? [];
  const enqueueRate = median(rounds.map((r) => r.enqueue));
  const drainRate = median(rounds.map((r) => r.drain));
  const listRate = median(rounds.map((r) => r.list));
  s3.destroy();
  sqs.destroy();
  const rows: Row[] = [
    {
      section: SECTION,
      metric: `batcher enqueue, ${objects} objects`,
      value: enqueueRate,
      unit: 'objects/s',
      note: `${objectsPerMessage} objects per message, local stack S3 + SQS`,
    },
    {
      section: SECTION,
      metric: 'queue drain (receive + batch delete)',
      value: drainRate,
      unit: 'objects/s',
      note: `${receivers} receivers`,
    },
    {
      section: SECTION,
      metric: 'ListObjectsV2 alone (local S3 store)',
      value: listRate,
      unit: 'objects/s',
      note: 'the ceiling the emulator sets on enqueue',
    },
    {
      section: SECTION,
      metric: 'writing the objects (PutObject, 32 at once)',
      value: objects / seedS,
      unit: 'objects/s',
      note: 'set-up, for scale',
    },
  ];
  return {
    rows,
    targets: [
      {
        target: `batcher enqueue >= ${TARGET_PER_SECOND} objects/s`,
        actual: `${enqueueRate.toFixed(0)} objects/s`,
        met: enqueueRate >= TARGET_PER_SECOND,
      },
    ],
    details: { rounds },
  };
}
