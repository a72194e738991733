import {
  CreateQueueCommand,
  ReceiveMessageCommand,
  SendMessageBatchCommand,
  SQSClient,
  type SQSClient as SQSClientType,
} from '@aws-sdk/client-sqs';
import { loadTfvars, resourceNames, type BinaryAlertConfig } from '@binaryalert/deployment';
import { startSqs, type Emulator } from '@binaryalert/testing';
import { mockClient } from 'aws-sdk-client-mock';
import 'aws-sdk-client-mock-jest';
import {
  GetQueueAttributesCommand,
  GetQueueUrlCommand,
  PurgeQueueCommand,
} from '@aws-sdk/client-sqs';

// program before the command module: command modules import program, which registers them.
import { purgeQueue } from './purge-queue';

describe('purgeQueue', () => {
  let sqs: Emulator<SQSClientType>;
  let config: BinaryAlertConfig;

  beforeAll(async () => {
    sqs = await startSqs();
    config = { ...(await loadTfvars()), name_prefix: 'purgetest' };
  });
  afterAll(async () => {
    await sqs?.stop();
  });

  it('empties the local queue right away', async () => {
    const { QueueUrl } = await sqs.client.send(
      new CreateQueueCommand({ QueueName: resourceNames(config).queue }),
    );
    for (let batch = 0; batch < 3; batch++) {
      await sqs.client.send(
        new SendMessageBatchCommand({
          QueueUrl,
          Entries: Array.from({ length: 10 }, (_, i) => ({
            Id: String(i),
            MessageBody: `m${batch}-${i}`,
          })),
        }),
      );
    }
    const lines: string[] = [];

    const result = await purgeQueue({
      config,
      local: true,
      clients: { sqs: sqs.client },
      log: (l) => lines.push(l),
    });

    expect(result).toMatchObject({ deleted: 30, purgeRequested: false });
    const left = await sqs.client.send(
      new ReceiveMessageCommand({ QueueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 0 }),
    );
    expect(left.Messages ?? []).toEqual([]);
    expect(lines.join('\n')).toContain('Deleted 30 messages');
  });

  it('asks SQS to purge the queue on AWS', async () => {
    const client = new SQSClient({ region: 'us-east-1' });
    const mock = mockClient(client);
    mock.on(GetQueueUrlCommand).resolves({ QueueUrl: 'https://sqs.us-east-1.amazonaws.com/1/q' });
    mock.on(GetQueueAttributesCommand).resolves({
      Attributes: { ApproximateNumberOfMessages: '7', ApproximateNumberOfMessagesNotVisible: '2' },
    });
    mock.on(PurgeQueueCommand).resolves({});

    const result = await purgeQueue({ config, clients: { sqs: client }, log: () => undefined });

    expect(mock).toHaveReceivedCommandWith(GetQueueUrlCommand, {
      QueueName: resourceNames(config).queue,
    });
    expect(mock).toHaveReceivedCommandWith(PurgeQueueCommand, {
      QueueUrl: 'https://sqs.us-east-1.amazonaws.com/1/q',
    });
    expect(result).toMatchObject({ messagesBefore: 9, purgeRequested: true, deleted: 0 });
  });
});
