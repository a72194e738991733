import { GetQueueUrlCommand } from '@aws-sdk/client-sqs';
import type { Command } from 'commander';
import path from 'node:path';
import {
  DEFAULT_TFVARS_PATH,
  loadTfvars,
  resourceNames,
  type BinaryAlertConfig,
} from '@binaryalert/deployment';
import { reconcileVerdicts, type ReconcileOutcome } from '@binaryalert/local';

import {
  awsClientSettings,
  createAwsClients,
  destroyAwsClients,
  type AwsClients,
  type LocalFlag,
} from '../aws';
import type { CommandRegistrar } from '../usage';

export interface ReconcileOptions {
  config: BinaryAlertConfig;
  /** `--local [endpoint]`: the running local stack instead of AWS. */
  local?: LocalFlag;
  clients?: Pick<AwsClients, 's3' | 'sqs' | 'dynamodb'>;
  log?: (line: string) => void;
}

/**
 * Queues again every object of the bucket without a verdict for its current content, as the local
 * stack does at each start, on demand (e.g. while `manage.ts local` runs, after a worker or the
 * stack's queue lost work). An object still waiting in the queue is analyzed twice, never alerted
 * twice.
 */
export async function reconcile(options: ReconcileOptions): Promise<ReconcileOutcome> {
  const log = options.log ?? ((line: string) => process.stdout.write(`${line}\n`));
  const names = resourceNames(options.config);
  const clients =
    options.clients ?? createAwsClients(awsClientSettings(options.config, options.local));
  try {
    const { QueueUrl } = await clients.sqs.send(new GetQueueUrlCommand({ QueueName: names.queue }));
    const outcome = await reconcileVerdicts(
      { s3: clients.s3, dynamo: clients.dynamodb, sqs: clients.sqs },
      { bucket: names.bucket, verdictTable: names.verdictTable, queueUrl: QueueUrl as string },
    );
    log(
      `${outcome.listed} objects in s3://${names.bucket}: ${outcome.covered} have a verdict for ` +
        `their current content; queued ${outcome.queued} again (no verdict ${outcome.gaps['no verdict']}, ` +
        `content changed ${outcome.gaps['content changed']}, last analysis failed ${outcome.gaps.failed}).`,
    );
    return outcome;
  } finally {
    if (!options.clients) destroyAwsClients(clients);
  }
}

export const registerReconcile: CommandRegistrar = (program: Command) => {
  program
    .command('reconcile')
    .description(
      'queue again every object without a verdict for its current content (the local stack does this at start)',
    )
    .option('--local [endpoint]', 'the running local stack (default http://127.0.0.1:4566)')
    .option(
      '--tfvars <file>',
      'settings file (names the bucket, queue and ledger)',
      DEFAULT_TFVARS_PATH,
    )
    .action(async (flags: { local?: LocalFlag; tfvars: string }) => {
      const config = await loadTfvars(path.resolve(flags.tfvars));
      await reconcile({ config, local: flags.local });
    });
};
