import {
  CreateQueueCommand,
  GetQueueAttributesCommand,
  ReceiveMessageCommand,
  SendMessageBatchCommand,
  type SQSClient,
} from '@aws-sdk/client-sqs';
import { startSqs, uniqueName, type Emulator } from '@binaryalert/testing';

import { createLogger } from './logger';
import { deleteReceipts } from './sqs-deletes';

describe('deleteReceipts', () => {
  let sqs: Emulator<SQSClient>;
  beforeAll(async () => {
    sqs = await startSqs();
  });
  afterAll(() => sqs.stop());

  it('deletes any number of messages, 10 per batch, and counts only what SQS deleted', async () => {
    const { QueueUrl } = await sqs.client.send(
      new CreateQueueCommand({ QueueName: uniqueName('deletes') }),
    );
    for (let start = 0; start < 23; start += 10) {
      await sqs.client.send(
        new SendMessageBatchCommand({
          QueueUrl,
          Entries: Array.from({ length: Math.min(10, 23 - start) }, (_, i) => ({
            Id: String(i),
            MessageBody: `m${start + i}`,
          })),
        }),
      );
    }
    const receipts: string[] = [];
    while (receipts.length < 23) {
      const { Messages = [] } = await sqs.client.send(
        new ReceiveMessageCommand({ QueueUrl, MaxNumberOfMessages: 10, VisibilityTimeout: 60 }),
      );
      receipts.push(...Messages.map((m) => m.ReceiptHandle!));
    }
    const lines: Record<string, unknown>[] = [];
    const log = createLogger('test', (line) =>
      lines.push(JSON.parse(line) as Record<string, unknown>),
    );
    const sent = jest.spyOn(sqs.client, 'send');

    const deleted = await deleteReceipts(
      sqs.client,
      QueueUrl!,
      [...receipts, 'not-a-receipt'],
      log,
    );

    expect(deleted).toBe(23);
    expect(sent).toHaveBeenCalledTimes(3);
    sent.mockRestore();
    expect(lines.map((line) => line.level)).toEqual(['WARN']);
    const { Attributes } = await sqs.client.send(
      new GetQueueAttributesCommand({ QueueUrl, AttributeNames: ['All'] }),
    );
    expect([
      Attributes?.ApproximateNumberOfMessages,
      Attributes?.ApproximateNumberOfMessagesNotVisible,
    ]).toEqual(['0', '0']);
  });

  it('logs a failed call instead of throwing (the messages come back and are analyzed again)', async () => {
    const lines: Record<string, unknown>[] = [];
    const log = createLogger('test', (line) =>
      lines.push(JSON.parse(line) as Record<string, unknown>),
    );

    const deleted = await deleteReceipts(
      sqs.client,
      `${sqs.endpoint}/000000000000/no-such-queue`,
      ['r'],
      log,
    );

    expect(deleted).toBe(0);
    expect(lines).toEqual([
      expect.objectContaining({
        level: 'ERROR',
        message: 'DeleteMessageBatch failed; the messages will be delivered again',
      }),
    ]);
  });
});
