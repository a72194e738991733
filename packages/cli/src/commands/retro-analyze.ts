import { InvokeCommand } from '@aws-sdk/client-lambda';
import { ListObjectsV2Command } from '@aws-sdk/client-s3';
import { GetQueueAttributesCommand, GetQueueUrlCommand } from '@aws-sdk/client-sqs';
import type { Command } from 'commander';
import {
  loadTfvars,
  PRODUCTION_ALIAS,
  resourceNames,
  type BinaryAlertConfig,
} from '@binaryalert/deployment';

import {
  awsClientSettings,
  createAwsClients,
  destroyAwsClients,
  type AwsClients,
  type LocalFlag,
} from '../aws';
import type { CommandRegistrar } from '../usage';
import { abortOnInterrupt } from '../interrupt';

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
  clients?: Pick<AwsClients, 's3' | 'sqs' | 'lambda'>;
  /** Show the queue draining until it is empty (default true). */
  watch?: boolean;
  pollIntervalMs?: number;
  /** How long an empty queue may just mean that the batcher has not enqueued anything yet. */
  startGraceMs?: number;
  /** Stops watching (Ctrl-C); the analysis itself goes on. */
  signal?: AbortSignal;
  out?: { write(text: string): unknown; isTTY?: boolean };
}

export interface RetroAnalyzeResult {
  bucketEmpty: boolean;
  batcherInvoked: boolean;
  /** The queue was seen empty after the batcher's work (or the start grace passed). */
  drained: boolean;
  /** Watching stopped by the signal before the queue drained. */
  interrupted: boolean;
  /** Most messages seen in the queue at once. */
  peakMessages: number;
}

/** Starting the batcher failed. */
export class RetroAnalyzeError extends Error {
  override readonly name = 'RetroAnalyzeError';
}

/**
 * Retroactive analysis: invokes the batcher asynchronously (on AWS, or the local stack with
 * `local`), which enqueues every object of the bucket, then shows a progress bar of the analysis
 * queue draining until it is empty or `signal` aborts.
 */
export async function retroAnalyze(options: RetroAnalyzeOptions): Promise<RetroAnalyzeResult> {
  const names = resourceNames(options.config);
  const out = options.out ?? process.stderr;
  const clients =
    options.clients ?? createAwsClients(awsClientSettings(options.config, options.local));
  const result: RetroAnalyzeResult = {
    bucketEmpty: false,
    batcherInvoked: false,
    drained: false,
    interrupted: false,
    peakMessages: 0,
  };
  try {
    const listed = await clients.s3.send(
      new ListObjectsV2Command({ Bucket: names.bucket, Prefix: options.prefix, MaxKeys: 1 }),
    );
    if ((listed.KeyCount ?? listed.Contents?.length ?? 0) === 0) {
      out.write(
        `Nothing to analyze: s3://${names.bucket}/${options.prefix ?? ''} holds no objects.\n`,
      );
      return { ...result, bucketEmpty: true, drained: true };
    }

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
    const progress = progressBar(out);
    const started = Date.now();
    let seenMessages = false;
    for (;;) {
      const left = await queueDepth(clients, QueueUrl as string);
      result.peakMessages = Math.max(result.peakMessages, left);
      if (left > 0) seenMessages = true;
      const graceOver = Date.now() - started >= (options.startGraceMs ?? 60_000);
      progress.update(left, result.peakMessages, seenMessages || graceOver);
      if (left === 0 && (seenMessages || graceOver)) {
        result.drained = true;
        progress.done('Retroactive analysis finished: the queue is empty.');
        break;
      }
      if (!(await sleep(options.pollIntervalMs ?? 2000, options.signal))) {
        result.interrupted = true;
        progress.done(
          `Stopped watching with ${left} messages left; the analysis goes on in the background.`,
        );
        break;
      }
    }
    return result;
  } finally {
    if (!options.clients) destroyAwsClients(clients);
  }
}

/** Messages not yet finished: waiting, being analyzed, or delayed. */
async function queueDepth(clients: Pick<AwsClients, 'sqs'>, QueueUrl: string): Promise<number> {
  const { Attributes = {} } = await clients.sqs.send(
    new GetQueueAttributesCommand({
      QueueUrl,
      AttributeNames: [
        'ApproximateNumberOfMessages',
        'ApproximateNumberOfMessagesNotVisible',
        'ApproximateNumberOfMessagesDelayed',
      ],
    }),
  );
  return (
    Number(Attributes.ApproximateNumberOfMessages ?? 0) +
    Number(Attributes.ApproximateNumberOfMessagesNotVisible ?? 0) +
    Number(Attributes.ApproximateNumberOfMessagesDelayed ?? 0)
  );
}

/** Resolves true after `ms`, or false as soon as the signal aborts. */
function sleep(ms: number, signal?: AbortSignal): Promise<boolean> {
  if (signal?.aborted) return Promise.resolve(false);
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve(true);
    }, ms);
    const onAbort = (): void => {
      clearTimeout(timer);
      resolve(false);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** A one-line bar on a terminal; plain lines when the depth changes otherwise. */
function progressBar(out: { write(text: string): unknown; isTTY?: boolean }) {
  const width = 30;
  let last = '';
  return {
    update(left: number, peak: number, started: boolean): void {
      let line: string;
      if (!started) line = 'Waiting for the batcher to queue the objects...';
      else {
        const fraction = peak === 0 ? 1 : (peak - left) / peak;
        const filled = Math.round(fraction * width);
        line = `[${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${Math.floor(fraction * 100)
          .toString()
          .padStart(3)}%  ${left} messages left`;
      }
      if (line === last) return;
      last = line;
      out.write(out.isTTY ? `\r\x1b[2K${line}` : `${line}\n`);
    },
    done(message: string): void {
      out.write(out.isTTY ? `\r\x1b[2K${message}\n` : `${message}\n`);
    },
  };
}

export const registerRetroAnalyze: CommandRegistrar = (program: Command) => {
  program
    .command('retro-analyze')
    .description(
      're-analyze every object in the bucket (invokes the batcher), showing the queue draining',
    )
    .option('--local [endpoint]', 'use the local stack (default http://127.0.0.1:4566)')
    .option('--prefix <prefix>', 'only objects whose key starts with this prefix')
    .option('--no-wait', 'start the batcher and return without watching the queue')
    .option(
      '--full',
      'download and scan every object with every rule (default: only what the last rules release changed)',
    )
    .action(
      async (flags: { local?: LocalFlag; prefix?: string; wait: boolean; full?: boolean }) => {
        const config = await loadTfvars();
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
