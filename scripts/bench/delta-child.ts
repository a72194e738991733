/**
 * Run by the delta section in its own process (bundled, plain node), as the analyzer runs in a
 * Lambda worker apart from the local stack's emulators: loads the rules bucket's current release,
 * then analyzes the given keys with handleInvocation, 10 records per invocation (`full`: S3's own
 * records; `delta`: the batcher's delta re-scan records). Its own wall and CPU time exclude the
 * rules' loading. Prints one line "BENCH {json}".
 */
import { CloudWatchClient } from '@aws-sdk/client-cloudwatch';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { S3Client } from '@aws-sdk/client-s3';
import { SNSClient } from '@aws-sdk/client-sns';
import { SQSClient } from '@aws-sdk/client-sqs';

import {
  handleInvocation,
  loadBakedRules,
  rulesFromBucket,
  type AnalyzerSettings,
} from '../../packages/analyzer/src';
import { createLogger, DEFAULT_ARCHIVE_SETTINGS, s3EventRecord } from '../../packages/core/src';

interface ChildArgs {
  endpoint: string;
  region: string;
  bucket: string;
  rulesBucket: string;
  /** The release-less fallback (never used: the bucket holds a release). */
  bakedRules: string;
  matchesTable: string;
  verdictTable: string;
  alertsTopicArn: string;
  keys: string[];
  mode: 'full' | 'delta';
  concurrency: number;
  tempRoot: string;
}

const RECORDS_PER_INVOCATION = 10;

async function main(): Promise<void> {
  const args = JSON.parse(process.argv[2] ?? '{}') as ChildArgs;
  const clientConfig = {
    endpoint: args.endpoint,
    region: args.region,
    credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
  };
  const s3 = new S3Client({ ...clientConfig, forcePathStyle: true });
  const counts = { getObject: 0, headObject: 0 };
  s3.middlewareStack.add(
    (next, context) => async (input) => {
      if (context.commandName === 'GetObjectCommand') counts.getObject++;
      if (context.commandName === 'HeadObjectCommand') counts.headObject++;
      return next(input);
    },
    { step: 'initialize', name: 'benchCounts' },
  );
  const log = createLogger('analyzer', () => undefined);
  const baked = await loadBakedRules(args.bakedRules, `${args.bakedRules}.no-manifest`);
  const rules = rulesFromBucket(
    s3,
    { bucket: args.rulesBucket, refreshSeconds: 3600, tempRoot: args.tempRoot },
    baked,
    log,
  );
  const loaded = await rules.current();
  const deps = {
    s3,
    dynamo: new DynamoDBClient(clientConfig),
    sns: new SNSClient(clientConfig),
    sqs: new SQSClient(clientConfig),
    cloudwatch: new CloudWatchClient(clientConfig),
    rules,
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

  // Only the analysis counts: not the release's own downloads above.
  counts.getObject = 0;
  counts.headObject = 0;
  const cpu0 = process.cpuUsage();
  const started = performance.now();
  for (let start = 0; start < args.keys.length; start += RECORDS_PER_INVOCATION) {
    const Records = args.keys.slice(start, start + RECORDS_PER_INVOCATION).map((key) =>
      s3EventRecord({
        bucket: args.bucket,
        key,
        ...(args.mode === 'delta' ? { retro: 'delta' } : {}),
      }),
    );
    await handleInvocation(deps, settings, { Records }, 1);
  }
  const wallMs = performance.now() - started;
  const cpu = process.cpuUsage(cpu0);
  process.stdout.write(
    `\nBENCH ${JSON.stringify({
      wallMs,
      cpuMs: (cpu.user + cpu.system) / 1000,
      rulesVersion: loaded.manifest.version,
      ruleCount: loaded.compiled.ruleCount,
      deltaRules: loaded.manifest.delta?.ruleCount ?? null,
      ...counts,
    })}\n`,
  );
}

main().catch((error: unknown) => {
  process.stderr.write(
    `${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
  );
  process.exitCode = 1;
});
