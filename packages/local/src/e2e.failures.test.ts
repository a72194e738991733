import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DeleteObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import {
  GetQueueAttributesCommand,
  ReceiveMessageCommand,
  SendMessageCommand,
} from '@aws-sdk/client-sqs';
import { encodeS3Key, s3EventRecord } from '@binaryalert/core';

import { EICAR, startE2E, type E2E } from './testing/e2e';
import { waitFor } from './testing/fixtures';

jest.setTimeout(240_000);

const VISIBILITY_SECONDS = 12;

describe('the local stack end to end: failures', () => {
  let e2e: E2E;

  beforeAll(async () => {
    e2e = await startE2E({
      configOverrides: { max_receives: 2 },
      visibilityTimeoutSeconds: VISIBILITY_SECONDS,
      faults: { poisonPrefix: 'poison/' },
    });
  });

  afterAll(async () => {
    await e2e?.dispose();
  });

  const notify = (key: string) =>
    e2e.sqs.send(
      new SendMessageCommand({
        QueueUrl: e2e.stack.queueUrl,
        MessageBody: JSON.stringify({
          Records: [s3EventRecord({ bucket: e2e.stack.names.bucket, key })],
        }),
      }),
    );
  const count = async (queueUrl: string) => {
    const { Attributes = {} } = await e2e.sqs.send(
      new GetQueueAttributesCommand({
        QueueUrl: queueUrl,
        AttributeNames: ['ApproximateNumberOfMessages', 'ApproximateNumberOfMessagesNotVisible'],
      }),
    );
    return (
      Number(Attributes.ApproximateNumberOfMessages) +
      Number(Attributes.ApproximateNumberOfMessagesNotVisible)
    );
  };

  it('finishes a message whose object was deleted before analysis, without retrying it', async () => {
    const key = 'gone/deleted before analysis.exe';
    await e2e.s3.send(
      new PutObjectCommand({ Bucket: e2e.stack.names.bucket, Key: key, Body: 'soon gone' }),
    );
    await e2e.drained();
    await e2e.s3.send(new DeleteObjectCommand({ Bucket: e2e.stack.names.bucket, Key: key }));
    const skippedBefore = e2e.stack.metrics.sum('SkippedBinaries');
    await notify(key);

    await waitFor(
      () => (e2e.stack.metrics.sum('SkippedBinaries') > skippedBefore ? true : undefined),
      30_000,
      'the analyzer to skip the missing object',
    );
    await e2e.drained();
    // Longer than the visibility timeout: a message left undeleted would be back by now.
    await new Promise((ok) => setTimeout(ok, (VISIBILITY_SECONDS + 2) * 1000));
    expect(await count(e2e.stack.queueUrl)).toBe(0);
    expect(await count(e2e.stack.deadLetterQueueUrl)).toBe(0);
    expect(e2e.stack.metrics.sum('SkippedBinaries')).toBe(skippedBefore + 1);
    // The status line counts it too.
    expect((await e2e.stack.status()).skipped).toBe(skippedBefore + 1);
    const log = await readFile(join(e2e.dataDir, 'logs', 'analyzer.log'), 'utf8');
    expect(log).toContain(key);
  });

  it('moves a message that always fails to the dead-letter queue after max_receives', async () => {
    // GetObject under poison/ always answers 500 (an injected fault), which the analyzer treats
    // as a download failure to retry.
    const key = 'poison/nul\u0000byte.exe';
    await notify(key);
    await waitFor(
      async () => ((await count(e2e.stack.deadLetterQueueUrl)) === 1 ? true : undefined),
      90_000,
      'the poison message in the dead-letter queue',
    );
    await e2e.drained();
    expect(await count(e2e.stack.queueUrl)).toBe(0);
    const { Messages = [] } = await e2e.sqs.send(
      new ReceiveMessageCommand({ QueueUrl: e2e.stack.deadLetterQueueUrl }),
    );
    expect(Messages[0]?.Body).toContain(encodeS3Key(key));
    expect(e2e.stack.alerts).toEqual([]);
    await e2e.aws(['sqs', 'purge-queue', '--queue-url', e2e.stack.deadLetterQueueUrl]);
    expect(await count(e2e.stack.deadLetterQueueUrl)).toBe(0);
  });

  it('redelivers the message of a killed analyzer at once (not after the visibility timeout) and alerts once', async () => {
    const key = 'killed/large eicar.bin';
    const body = Buffer.alloc(40 * 1024 * 1024, 0x41);
    body.write(EICAR, body.length - EICAR.length - 10);
    await e2e.s3.send(
      new PutObjectCommand({ Bucket: e2e.stack.names.bucket, Key: key, Body: body }),
    );

    const encoded = encodeS3Key(key);
    const victim = await waitFor<number>(
      () =>
        e2e.stack.lambda
          .workerInfo(e2e.stack.names.analyzerFunction)
          .find((worker) => worker.busy && JSON.stringify(worker.event).includes(encoded))?.pid,
      30_000,
      'an analyzer working on the large object',
      10, // catch it early in the download, well before it could alert
    );
    process.kill(victim, 'SIGKILL');
    const killedAt = Date.now();

    // The runtime knew the dead worker's receipts and made its message visible again.
    await waitFor(
      () =>
        e2e.stack.lambda
          .workerInfo(e2e.stack.names.analyzerFunction)
          .some(
            (worker) =>
              worker.busy &&
              worker.pid !== victim &&
              JSON.stringify(worker.event).includes(encoded),
          ) || e2e.alertsFor(key).length > 0
          ? true
          : undefined,
      60_000,
      'another analyzer working on the large object',
      10,
    );
    expect(Date.now() - killedAt).toBeLessThan((VISIBILITY_SECONDS - 2) * 1000);
    await waitFor(
      () => (e2e.alertsFor(key).length > 0 ? true : undefined),
      90_000,
      'the alert after redelivery',
    );
    await e2e.drained();
    await new Promise((ok) => setTimeout(ok, 2000));
    expect(e2e.alertsFor(key)).toHaveLength(1);
    expect(await count(e2e.stack.queueUrl)).toBe(0);
    expect(await count(e2e.stack.deadLetterQueueUrl)).toBe(0);
  });
});
