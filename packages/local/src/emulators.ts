import { createServer } from 'node:http';
import { join } from 'node:path';
import type { BinaryAlertConfig, ResourceNames } from '@binaryalert/deployment';
import dynalite from 'dynalite';
import { createRequestHandler } from 'local-aws-sqs';
import S3rver from 's3rver';

import { closeServer, listenLoopback } from './loopback';

/** An emulator listening on its own loopback port, behind the front server. */
export interface Emulator {
  port: number;
  close: () => Promise<void>;
}

/** DynamoDB (dynalite), persisted under `<dataDir>/dynamodb`. */
export async function startDynamo(dataDir: string): Promise<Emulator> {
  const server = dynalite({
    path: join(dataDir, 'dynamodb'),
    createTableMs: 0,
    deleteTableMs: 0,
    updateTableMs: 0,
  });
  const port = await listenLoopback(server, 0);
  return { port, close: () => closeServer(server) };
}

export interface SqsEmulator extends Emulator {
  /** Empties a queue at once (local-aws-sqs would wait 60 s); false when there is no such queue. */
  purgeQueue: (queueUrl: string) => boolean;
}

export interface SqsSettings {
  config: BinaryAlertConfig;
  names: ResourceNames;
  region: string;
  accountId: string;
  /** The front server's port: queue URLs name it. */
  frontPort: number;
  visibilityTimeoutSeconds: number;
}

/** SQS (local-aws-sqs): the analysis queue and its dead-letter queue, as terraform/sqs.tf configures them. */
export async function startSqs(settings: SqsSettings): Promise<SqsEmulator> {
  const { config, names, region, accountId } = settings;
  const { service, requestHandler } = createRequestHandler({
    port: settings.frontPort,
    hostname: '127.0.0.1',
    region,
    accountId,
    emulateQueueCreationLifecycle: false,
    queues: [
      {
        QueueName: names.deadLetterQueue,
        Attributes: { MessageRetentionPeriod: 14 * 24 * 3600 },
      },
      {
        QueueName: names.queue,
        Attributes: {
          VisibilityTimeout: settings.visibilityTimeoutSeconds,
          MessageRetentionPeriod: config.sqs_retention_minutes * 60,
          RedrivePolicy: JSON.stringify({
            deadLetterTargetArn: `arn:aws:sqs:${region}:${accountId}:${names.deadLetterQueue}`,
            maxReceiveCount: config.max_receives,
          }),
        },
      },
    ],
  });
  // local-aws-sqs counts in-flight messages in ApproximateNumberOfMessages too; AWS counts only
  // visible ones, and progress bars and the status line rely on that.
  for (const queue of service.Queues) {
    const getAttributes = queue.getAttributes.bind(queue);
    queue.getAttributes = (attributeNames: string[]) => {
      const attributes = getAttributes(attributeNames) as Record<string, string> | undefined;
      if (attributes?.ApproximateNumberOfMessages !== undefined) {
        const { ApproximateNumberOfMessagesNotVisible: notVisible = '0' } = getAttributes([
          'ApproximateNumberOfMessagesNotVisible',
        ]) as Record<string, string>;
        attributes.ApproximateNumberOfMessages = String(
          Math.max(0, Number(attributes.ApproximateNumberOfMessages) - Number(notVisible)),
        );
      }
      return attributes;
    };
  }
  const server = createServer((req, res) => void requestHandler(req, res));
  const port = await listenLoopback(server, 0);
  return {
    port,
    purgeQueue: (queueUrl) => {
      const name = queueUrl.split('/').pop();
      const queue = service.Queues.find((q) => q.QueueName === name);
      if (!queue) return false;
      queue.clearRecords();
      return true;
    },
    close: async () => {
      await closeServer(server);
      // Releases local-aws-sqs's per-message visibility and retention timers.
      for (const queue of service.Queues) queue.clearRecords();
    },
  };
}

/** An object created in a bucket, as the S3 emulator reports it. */
export interface ObjectCreated {
  bucket: string;
  key: string;
  size?: number;
  /** S3's event name, e.g. `ObjectCreated:Put`. */
  eventName: string;
}

export interface S3Emulator extends Emulator {
  /** `bucket/key` of each CompleteMultipartUpload being proxied (S3 names its event differently). */
  completions: Set<string>;
}

/** S3 (s3rver), objects under `<dataDir>/s3`; `buckets` exist from the start. */
export async function startS3(
  dataDir: string,
  buckets: string[],
  onObjectCreated: (event: ObjectCreated) => void,
): Promise<S3Emulator> {
  const s3 = new S3rver({
    address: '127.0.0.1',
    port: 0,
    silent: true,
    directory: join(dataDir, 's3'),
    allowMismatchedSignatures: true,
    vhostBuckets: false,
    configureBuckets: buckets.map((name) => ({ name })),
  });
  const address = await s3.run();
  const completions = new Set<string>();
  s3.on('event', (event) => {
    for (const raw of event.Records as {
      eventName?: string;
      s3?: { bucket?: { name?: string }; object?: { key?: string; size?: number } };
    }[]) {
      const bucket = raw.s3?.bucket?.name;
      const key = raw.s3?.object?.key;
      if (!bucket || key === undefined || !raw.eventName?.startsWith('ObjectCreated:')) continue;
      const size = raw.s3?.object?.size;
      const eventName =
        raw.eventName === 'ObjectCreated:Post' && completions.has(`${bucket}/${key}`)
          ? 'ObjectCreated:CompleteMultipartUpload'
          : raw.eventName;
      onObjectCreated({
        bucket,
        key,
        eventName,
        ...(size === undefined ? {} : { size: Number(size) }),
      });
    }
  });
  return { port: address.port, completions, close: () => s3.close() };
}
