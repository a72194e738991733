import {
  DeleteMessageBatchCommand,
  GetQueueAttributesCommand,
  GetQueueUrlCommand,
  PurgeQueueCommand,
  ReceiveMessageCommand,
} from '@aws-sdk/client-sqs';
import type { Command } from 'commander';
import { loadTfvars, resourceNames, type BinaryAlertConfig } from '@binaryalert/deployment';

import {
  awsClientSettings,
  createAwsClients,
  destroyAwsClients,
  type AwsClients,
  type LocalFlag,
} from '../aws';
import type { CommandRegistrar } from '../usage';

export interface PurgeQueueOptions {
  config: BinaryAlertConfig;
  local?: LocalFlag;
  clients?: Pick<AwsClients, 'sqs'>;
  log?: (line: string) => void;
}

export interface PurgeQueueResult {
  queueUrl: string;
  /** Messages in the queue before the purge (waiting + in flight). */
  messagesBefore: number;
  /** Messages deleted one by one (local stack). */
  deleted: number;
  /** Whether SQS PurgeQueue was requested (AWS). */
  purgeRequested: boolean;
}

/**
 * Empties the analysis queue. On AWS this is SQS PurgeQueue (which takes up to 60 s to finish).
 * The local stack's PurgeQueue only empties the queue 60 s later, and then also drops messages sent
 * in between, so locally the waiting messages are received and deleted right away instead.
 */
export async function purgeQueue(options: PurgeQueueOptions): Promise<PurgeQueueResult> {
  const log = options.log ?? ((line: string) => process.stdout.write(`${line}\n`));
  const { queue } = resourceNames(options.config);
  const isLocal = options.local !== undefined && options.local !== false;
  const clients =
    options.clients ?? createAwsClients(awsClientSettings(options.config, options.local));
  try {
    const { QueueUrl } = await clients.sqs.send(new GetQueueUrlCommand({ QueueName: queue }));
    const queueUrl = QueueUrl as string;
    const before = await depth(clients, queueUrl);
    const result: PurgeQueueResult = {
      queueUrl,
      messagesBefore: before.waiting + before.inFlight,
      deleted: 0,
      purgeRequested: false,
    };
    if (isLocal) {
      for (;;) {
        const { Messages = [] } = await clients.sqs.send(
          new ReceiveMessageCommand({
            QueueUrl: queueUrl,
            MaxNumberOfMessages: 10,
            WaitTimeSeconds: 0,
          }),
        );
        if (Messages.length === 0) break;
        const response = await clients.sqs.send(
          new DeleteMessageBatchCommand({
            QueueUrl: queueUrl,
            Entries: Messages.map((message, index) => ({
              Id: String(index),
              ReceiptHandle: message.ReceiptHandle,
            })),
          }),
        );
        result.deleted += response.Successful?.length ?? 0;
      }
      const after = await depth(clients, queueUrl);
      log(`Deleted ${result.deleted} messages from ${queue}.`);
      if (after.inFlight > 0) {
        log(
          `${after.inFlight} messages are being analyzed right now; they finish or return to the queue.`,
        );
      }
    } else {
      await clients.sqs.send(new PurgeQueueCommand({ QueueUrl: queueUrl }));
      result.purgeRequested = true;
      log(
        `Purging ${queue} (${result.messagesBefore} messages); SQS can take up to 60 seconds to finish.`,
      );
    }
    return result;
  } finally {
    if (!options.clients) destroyAwsClients(clients);
  }
}

async function depth(
  clients: Pick<AwsClients, 'sqs'>,
  QueueUrl: string,
): Promise<{ waiting: number; inFlight: number }> {
  const { Attributes = {} } = await clients.sqs.send(
    new GetQueueAttributesCommand({
      QueueUrl,
      AttributeNames: ['ApproximateNumberOfMessages', 'ApproximateNumberOfMessagesNotVisible'],
    }),
  );
  return {
    waiting: Number(Attributes.ApproximateNumberOfMessages ?? 0),
    inFlight: Number(Attributes.ApproximateNumberOfMessagesNotVisible ?? 0),
  };
}

export const registerPurgeQueue: CommandRegistrar = (program: Command) => {
  program
    .command('purge-queue')
    .description('delete every message waiting in the analysis queue')
    .option('--local [endpoint]', 'use the local stack (default http://127.0.0.1:4566)')
    .action(async (flags: { local?: LocalFlag }) => {
      await purgeQueue({ config: await loadTfvars(), local: flags.local });
    });
};
