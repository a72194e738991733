import { InvokeCommand } from '@aws-sdk/client-lambda';
import { ListObjectsV2Command } from '@aws-sdk/client-s3';
import { GetQueueUrlCommand } from '@aws-sdk/client-sqs';
import type { Command } from 'commander';
import path from 'node:path';
import {
  DEFAULT_TFVARS_PATH,
  loadTfvars,
  PRODUCTION_ALIAS,
  resourceNames,
  type BinaryAlertConfig,
} from '@binaryalert/deployment';
import { currentRelease } from '@binaryalert/core';

import {
  awsClientSettings,
  createAwsClients,
  destroyAwsClients,
  type AwsClients,
  type LocalFlag,
} from '../aws';
import type { CommandRegistrar } from '../usage';
import { abortOnInterrupt } from '../interrupt';
import {
  formatDuration,
  verdictCounts,
  watchRetroProgress,
  type RetroWatchOutcome,
} from './retro-progress';

export interface RetroAnalyzeOptions {
  config: BinaryAlertConfig;
  /** `--local [endpoint]`: talk to the local stack instead of AWS. */
  local?: LocalFlag;
  /** Only objects under this key prefix. */
  prefix?: string;
  /**
   * `delta`: scan with the current release's new and changed rules only, each SHA-256 once,
   * carrying other verdicts over (analyzer delta.ts); `full` (default here; `--full`): everything.
   */
  mode?: 'full' | 'delta';
  /** Injected clients (tests); otherwise built for AWS or the local stack. */
  clients?: Pick<AwsClients, 's3' | 'sqs' | 'lambda' | 'dynamodb'>;
  /** Watch the objects get their verdicts until every one has a new one (default true). */
  watch?: boolean;
  pollIntervalMs?: number;
  /** Give up watching when the queue is empty and no verdict arrived for this long. */
  stallMs?: number;
  /** Stops watching (Ctrl-C); the analysis itself goes on. */
  signal?: AbortSignal;
  out?: { write(text: string): unknown; isTTY?: boolean };
}

export interface RetroAnalyzeResult extends Partial<RetroWatchOutcome> {
  bucketEmpty: boolean;
  batcherInvoked: boolean;
  /** Every listed object has a verdict newer than the start (or, for a delta re-scan, one of
   * the current release). */
  finished: boolean;
  /** Watching stopped by the signal before that. */
  interrupted: boolean;
}

/** Starting the batcher failed. */
export class RetroAnalyzeError extends Error {
  override readonly name = 'RetroAnalyzeError';
}

/**
 * Retroactive analysis: invokes the batcher asynchronously (on AWS, or the local stack with
 * `local`), which enqueues every object of the bucket, then shows the objects getting their
 * verdicts (from the ledger) until every listed object has one newer than the start (a delta
 * re-scan: or a matched or clean one of the current release, which it leaves as is), or `signal`
 * aborts (the analysis goes on), and prints the verdict counts.
 */
export async function retroAnalyze(options: RetroAnalyzeOptions): Promise<RetroAnalyzeResult> {
  const names = resourceNames(options.config);
  const out = options.out ?? process.stderr;
  const clients =
    options.clients ?? createAwsClients(awsClientSettings(options.config, options.local));
  const result: RetroAnalyzeResult = {
    bucketEmpty: false,
    batcherInvoked: false,
    finished: false,
    interrupted: false,
  };
  try {
    const listed = await clients.s3.send(
      new ListObjectsV2Command({ Bucket: names.bucket, Prefix: options.prefix, MaxKeys: 1 }),
    );
    if ((listed.KeyCount ?? listed.Contents?.length ?? 0) === 0) {
      out.write(
        `Nothing to analyze: s3://${names.bucket}/${options.prefix ?? ''} holds no objects.\n`,
      );
      return { ...result, bucketEmpty: true, finished: true };
    }
    // A delta re-scan leaves a verdict of the current release as it is (nothing written): those
    // count as analyzed. Unknown (no release, or none readable): only new verdicts count.
    const release =
      options.mode === 'delta'
        ? await currentRelease(clients.s3, names.rulesBucket).catch(() => undefined)
        : undefined;
    // Verdicts from here on are the retro-analysis's (the ledger's AnalyzedAt is when an
    // analyzer began reading; AWS and local clocks are assumed in step within a second).
    const since = new Date().toISOString();
    const startedAt = Date.now();

    try {
      const response = await clients.lambda.send(
        new InvokeCommand({
          FunctionName: names.batcherFunction,
          Qualifier: PRODUCTION_ALIAS,
          InvocationType: 'Event',
          Payload: Buffer.from(
            JSON.stringify({
              ...(options.prefix ? { Prefix: options.prefix } : {}),
              Mode: options.mode ?? 'full',
            }),
          ),
        }),
      );
      if (response.StatusCode !== 202) throw new Error(`unexpected status ${response.StatusCode}`);
    } catch (error) {
      throw new RetroAnalyzeError(
        `could not invoke ${names.batcherFunction}:${PRODUCTION_ALIAS}: ${(error as Error).message}`,
        { cause: error },
      );
    }
    result.batcherInvoked = true;
    out.write(
      `Started ${names.batcherFunction}: every object in s3://${names.bucket}/${options.prefix ?? ''} is being queued for analysis.\n`,
    );
    if (options.watch === false) return result;

    const { QueueUrl } = await clients.sqs.send(new GetQueueUrlCommand({ QueueName: names.queue }));
    const watched = await watchRetroProgress({
      clients,
      bucket: names.bucket,
      verdictTable: names.verdictTable,
      queueUrl: QueueUrl as string,
      ...(options.prefix ? { prefix: options.prefix } : {}),
      since,
      ...(release ? { rulesVersion: release.version } : {}),
      ...(options.pollIntervalMs === undefined ? {} : { pollIntervalMs: options.pollIntervalMs }),
      ...(options.stallMs === undefined ? {} : { stallMs: options.stallMs }),
      ...(options.signal ? { signal: options.signal } : {}),
      out,
    });
    Object.assign(result, watched);
    const took = formatDuration((Date.now() - startedAt) / 1000);
    const counts = verdictCounts(watched.verdicts);
    if (watched.finished) {
      out.write(
        `Retroactive analysis finished: ${watched.analyzed} objects analyzed in ${took} (${counts}).\n`,
      );
    } else if (watched.interrupted) {
      out.write(
        `Stopped watching at ${watched.analyzed} of ${watched.listed} objects (${counts}); the analysis goes on in the background.\n`,
      );
    } else {
      out.write(
        `No new verdict for a while and the queue is empty: ${watched.listed - watched.analyzed} of ${watched.listed} objects have no verdict from this run (${counts}). ` +
          `The batcher may have failed to queue them (see its logs); \`manage.ts results summary\` lists objects without a verdict.\n`,
      );
    }
    if (watched.verdicts.skipped + watched.verdicts.failed + watched.verdicts.partial > 0) {
      out.write(
        `See them with: manage.ts results --verdict skipped|failed|partial --since ${since}${options.local ? ' --local' : ''}\n`,
      );
    }
    return result;
  } finally {
    if (!options.clients) destroyAwsClients(clients);
  }
}

export const registerRetroAnalyze: CommandRegistrar = (program: Command) => {
  program
    .command('retro-analyze')
    .description(
      're-analyze every object in the bucket (invokes the batcher), showing the queue draining',
    )
    .option('--local [endpoint]', 'use the local stack (default http://127.0.0.1:4566)')
    .option('--prefix <prefix>', 'only objects whose key starts with this prefix')
    .option('--no-wait', 'start the batcher and return without watching the progress')
    .option(
      '--full',
      'download and scan every object with every rule (default: only what the last rules release changed)',
    )
    .option(
      '--tfvars <file>',
      'settings file (names the bucket, queue and ledger)',
      DEFAULT_TFVARS_PATH,
    )
    .action(
      async (flags: {
        local?: LocalFlag;
        prefix?: string;
        wait: boolean;
        full?: boolean;
        tfvars: string;
      }) => {
        const config = await loadTfvars(path.resolve(flags.tfvars));
        await abortOnInterrupt((signal) =>
          retroAnalyze({
            config,
            local: flags.local,
            prefix: flags.prefix,
            mode: flags.full ? 'full' : 'delta',
            watch: flags.wait,
            signal,
          }),
        );
      },
    );
};
