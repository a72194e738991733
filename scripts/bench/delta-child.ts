/**
 * Run by the delta section in its own process (bundled, plain node), as the analyzer runs in a
 * Lambda worker apart from the local stack's emulators: loads the rules bucket's current release,
 * lists the bucket and packs the records as the batcher does (its packMessages: `full` records, or
 * `delta` records carrying the listing's ETag, size and Last-Modified, `objects_per_retro_message`
 * to a message), then analyzes them with handleInvocation, ten messages per invocation as SQS
 * hands them over during a re-scan, one invocation after the other (as a `worker`: its share of
 * them, started with the others). Its own wall and CPU time exclude the rules' loading and the
 * listing (the batcher's work, the same in both modes). `parts` instead
 * measures the parts of one object's cost one after the other over the whole bucket: download
 * (GetObject into a temp file, as a full analysis does; into memory, as the delta re-scan does),
 * hash + scan with the delta rules, hash + scan with every rule.
 * Prints one line "BENCH {json}".
 */
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { ListObjectsV2Command, S3Client, type _Object } from '@aws-sdk/client-s3';
import { SNSClient } from '@aws-sdk/client-sns';
import { SQSClient } from '@aws-sdk/client-sqs';

import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';

import {
  DYNAMO_CLIENT_OPTIONS,
  handleInvocation,
  loadBakedRules,
  rulesFromBucket,
  type AnalyzerSettings,
} from '../../packages/analyzer/src';
import {
  downloadBytes,
  downloadForScan,
  privateTempDir,
  type ScanSource,
} from '../../packages/analyzer/src/download';
import { packMessages } from '../../packages/batcher/src';
import {
  analyzeFile,
  createLogger,
  createMetrics,
  DEFAULT_ARCHIVE_SETTINGS,
  mapConcurrent,
  s3ObjectRef,
  type S3EventRecord,
} from '../../packages/core/src';

interface ChildArgs {
  endpoint: string;
  /** Where the local stack's Lambda workers reach S3 and DynamoDB (its workerEndpoints). */
  workerEndpoints: { s3: string; dynamodb: string };
  region: string;
  bucket: string;
  rulesBucket: string;
  /** The release-less fallback (never used: the bucket holds a release). */
  bakedRules: string;
  matchesTable: string;
  verdictTable: string;
  alertsTopicArn: string;
  /** `delta-unfiltered`: a delta re-scan with the release's content prefilter ignored (every file read). */
  mode: 'full' | 'delta' | 'delta-unfiltered' | 'parts';
  concurrency: number;
  tempRoot: string;
  /** The batcher's keys per message (tfvars objects_per_retro_message). */
  objectsPerMessage: number;
  /**
   * One of several processes re-analyzing the bucket at once, as concurrent Lambda invocations
   * run in execution environments of their own: it takes every `of`-th invocation from `index`,
   * and starts when the file `start` exists (after writing `start.ready.<index>`).
   */
  worker?: { index: number; of: number; start: string };
}

/** SQS hands over at most 10 messages at once: the dispatcher's receive and Lambda's batch_size. */
const MESSAGES_PER_INVOCATION = 10;

async function main(): Promise<void> {
  const args = JSON.parse(process.argv[2] ?? '{}') as ChildArgs;
  const clientConfig = {
    endpoint: args.endpoint,
    region: args.region,
    credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
  };
  const s3 = new S3Client({
    ...clientConfig,
    endpoint: args.workerEndpoints.s3,
    forcePathStyle: true,
  });
  const dynamo = new DynamoDBClient({
    ...clientConfig,
    ...DYNAMO_CLIENT_OPTIONS,
    endpoint: args.workerEndpoints.dynamodb,
  });
  // Requests the analysis sends, by command (GetObject, HeadObject, GetItem, BatchGetItem, ...).
  const requests: Record<string, number> = {};
  // The keys the analysis downloaded (the objects the delta could not settle from the ledger).
  const readKeys = new Set<string>();
  let readBytes = 0;
  // Wall time with at least one request awaiting its answer (a GetObject's until its headers).
  const waiting = { ms: 0, outstanding: 0, since: 0 };
  for (const client of [s3, dynamo] as const) {
    (client as S3Client).middlewareStack.add(
      (next, context) => async (input) => {
        const name = (context.commandName ?? '?').replace(/Command$/, '');
        requests[name] = (requests[name] ?? 0) + 1;
        if (waiting.outstanding++ === 0) waiting.since = performance.now();
        try {
          if (name !== 'GetObject') return await next(input);
          readKeys.add((input.input as { Key: string }).Key);
          const result = await next(input);
          readBytes += (result.output as { ContentLength?: number }).ContentLength ?? 0;
          return result;
        } finally {
          if (--waiting.outstanding === 0) waiting.ms += performance.now() - waiting.since;
        }
      },
      { step: 'initialize', name: 'benchCounts' },
    );
  }
  const log = createLogger('analyzer', () => undefined);
  const baked = await loadBakedRules(args.bakedRules, `${args.bakedRules}.no-manifest`);
  const rules = rulesFromBucket(
    s3,
    { bucket: args.rulesBucket, refreshSeconds: 3600, tempRoot: args.tempRoot },
    baked,
    log,
  );
  const loaded = await rules.current();
  const withoutPrefilter = async () => {
    const active = await rules.current();
    const delta = active.manifest.delta && { ...active.manifest.delta, prefilter: undefined };
    return { ...active, manifest: { ...active.manifest, delta } };
  };
  const deps = {
    s3,
    dynamo,
    sns: new SNSClient(clientConfig),
    sqs: new SQSClient(clientConfig),
    metrics: createMetrics('bench', log),
    rules: args.mode === 'delta-unfiltered' ? { current: withoutPrefilter } : rules,
    log,
  };
  const settings: AnalyzerSettings = {
    matchesTable: args.matchesTable,
    verdictTable: args.verdictTable,
    verdictTtlDays: 0,
    alertsTopicArn: args.alertsTopicArn,
    queueUrl: 'unused: direct S3 events',
    maxFileBytes: 1024 ** 3,
    scanTimeoutSeconds: 60,
    archives: DEFAULT_ARCHIVE_SETTINGS,
    concurrency: args.concurrency,
    tempRoot: args.tempRoot,
  };

  // The batcher's listing and messages (not measured: its own Lambda, the same in both modes).
  const listedAt = new Date();
  const objects: _Object[] = [];
  let ContinuationToken: string | undefined;
  do {
    const page = await s3.send(
      new ListObjectsV2Command({ Bucket: args.bucket, ContinuationToken }),
    );
    objects.push(...(page.Contents ?? []));
    ContinuationToken = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (ContinuationToken);
  const messages = packMessages(
    args.bucket,
    objects,
    args.objectsPerMessage,
    args.mode.startsWith('delta') ? 'delta' : 'full',
    listedAt,
  ).map((message) => (JSON.parse(message.body) as { Records: S3EventRecord[] }).Records);
  let invocations: S3EventRecord[][] = [];
  for (let start = 0; start < messages.length; start += MESSAGES_PER_INVOCATION) {
    invocations.push(messages.slice(start, start + MESSAGES_PER_INVOCATION).flat());
  }
  const { worker } = args;
  if (worker) {
    invocations = invocations.filter((_, index) => index % worker.of === worker.index);
    await writeFile(`${worker.start}.ready.${worker.index}`, '');
    while (!existsSync(worker.start)) await new Promise((resolve) => setTimeout(resolve, 2));
  }

  // Only the analysis counts: not the release's own downloads above, nor the listing.
  for (const name of Object.keys(requests)) delete requests[name];
  readKeys.clear();
  readBytes = 0;
  waiting.ms = 0;
  const result =
    args.mode === 'parts'
      ? await measureParts(deps, settings, loaded, invocations.flat())
      : await measure(() =>
          mapConcurrent(invocations, 1, (Records) =>
            handleInvocation(deps, settings, { Records }, 1),
          ),
        );
  process.stdout.write(
    `\nBENCH ${JSON.stringify({
      ...result,
      objects: objects.length,
      rulesVersion: loaded.manifest.version,
      ruleCount: loaded.compiled.ruleCount,
      deltaRules: loaded.manifest.delta?.ruleCount ?? null,
      getObject: requests.GetObject ?? 0,
      headObject: requests.HeadObject ?? 0,
      requests,
      readKeys: [...readKeys],
      readBytes,
      waitingMs: waiting.ms,
    })}\n`,
  );
}

/** Wall and CPU time (user + system, all threads) of `work`, and when it began and ended (epoch ms). */
async function measure(
  work: () => Promise<unknown>,
): Promise<{ wallMs: number; cpuMs: number; startedAt: number; endedAt: number }> {
  const cpu0 = process.cpuUsage();
  const started = performance.now();
  await work();
  const ended = performance.now();
  const cpu = process.cpuUsage(cpu0);
  return {
    wallMs: ended - started,
    cpuMs: (cpu.user + cpu.system) / 1000,
    startedAt: performance.timeOrigin + started,
    endedAt: performance.timeOrigin + ended,
  };
}

/** CPU time (user + system, all threads) of `work`, in ms. */
async function cpuOf(work: () => Promise<unknown>): Promise<number> {
  const cpu0 = process.cpuUsage();
  await work();
  const cpu = process.cpuUsage(cpu0);
  return (cpu.user + cpu.system) / 1000;
}

/**
 * The parts of an object's analysis, each over every object, one after the other: the download
 * alone (as the analyzer does it: into memory, or into a temp file from 16 MiB up), then the hash +
 * scan of those bytes with the delta rules, then with every rule (libyara in the thread pool,
 * counted in CPU).
 * `readCostByKey`: each object's download into memory + scan with the delta, in CPU ms (what a
 * delta re-scan spends on an object it must read; objects differ in size by 1,000x).
 */
async function measureParts(
  deps: { s3: S3Client },
  settings: AnalyzerSettings,
  rules: { compiled: Parameters<typeof analyzeFile>[0]; delta?: Parameters<typeof analyzeFile>[0] },
  records: S3EventRecord[],
): Promise<
  Record<
    'download' | 'downloadToMemory' | 'deltaScan' | 'fullScan',
    { wallMs: number; cpuMs: number }
  > & { readCostByKey: Record<string, number> }
> {
  const temp = await privateTempDir(settings.tempRoot);
  const sources: Extract<ScanSource, { kind: 'downloaded' }>[] = [];
  const sourceKeys: string[] = [];
  try {
    const download = await measure(async () => {
      for (const record of records) {
        const got = await downloadForScan(deps.s3, s3ObjectRef(record), settings.maxFileBytes, {
          tempRoot: temp.dir,
        });
        if (got.kind === 'downloaded') {
          sources.push(got);
          sourceKeys.push(record.s3.object.key);
        }
      }
    });
    // What a delta re-scan does for an object it must read: into memory, no temp file.
    const readCostByKey: Record<string, number> = {};
    const downloadToMemory = await measure(async () => {
      for (const record of records) {
        readCostByKey[record.s3.object.key] = await cpuOf(() =>
          downloadBytes(deps.s3, s3ObjectRef(record), settings.maxFileBytes),
        );
      }
    });
    const scanWith = (compiled: Parameters<typeof analyzeFile>[0]) =>
      measure(async () => {
        for (const { source } of sources) {
          // With the content signature, as a full analysis computes it (one more pass).
          await analyzeFile(compiled, source, {
            timeoutSeconds: settings.scanTimeoutSeconds,
            contentSignature: compiled === rules.compiled,
          });
        }
      });
    const deltaScan = rules.delta ? await scanWith(rules.delta) : { wallMs: 0, cpuMs: 0 };
    const fullScan = await scanWith(rules.compiled);
    if (rules.delta) {
      for (const [index, { source }] of sources.entries()) {
        readCostByKey[sourceKeys[index]!]! += await cpuOf(() =>
          analyzeFile(rules.delta!, source, { timeoutSeconds: settings.scanTimeoutSeconds }),
        );
      }
    }
    return { download, downloadToMemory, deltaScan, fullScan, readCostByKey };
  } finally {
    for (const source of sources) await source.remove();
    await temp.remove();
  }
}

main().catch((error: unknown) => {
  process.stderr.write(
    `${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
  );
  process.exitCode = 1;
});
