/**
 * Run by the memory section in a fresh process (bundled, plain node): the analyzer's per-object
 * function (stream the object to /tmp, hash + scan it there) over the given keys, reporting the
 * peak JS heap and RSS. Prints one line "BENCH {json}".
 */
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { S3Client } from '@aws-sdk/client-s3';
import { SNSClient } from '@aws-sdk/client-sns';
import { SQSClient } from '@aws-sdk/client-sqs';

import {
  analyzeObject,
  fixedRules,
  unreleasedRules,
  type AnalyzerDeps,
} from '../../packages/analyzer/src';
import {
  createLogger,
  createMetrics,
  DEFAULT_ARCHIVE_SETTINGS,
  mapConcurrent,
} from '../../packages/core/src';
import { loadRules } from '../../packages/yara/src';

interface ChildArgs {
  endpoint: string;
  bucket: string;
  keys: string[];
  rulesPath: string;
  concurrency: number;
}

async function main(): Promise<void> {
  const args = JSON.parse(process.argv[2] ?? '{}') as ChildArgs;
  const peak = { heapUsed: 0, heapTotal: 0, rss: 0, external: 0 };
  const sample = () => {
    const usage = process.memoryUsage();
    peak.heapUsed = Math.max(peak.heapUsed, usage.heapUsed);
    peak.heapTotal = Math.max(peak.heapTotal, usage.heapTotal);
    peak.rss = Math.max(peak.rss, usage.rss);
    peak.external = Math.max(peak.external, usage.external + usage.arrayBuffers);
  };
  const timer = setInterval(sample, 10);
  const common = {
    region: 'us-east-1',
    credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
  };
  // Only S3 is reached: the files match no rule, so no bookkeeping or alert calls happen; the
  // verdict ledger's one write per object is answered here (its memory is not what is measured).
  const unused = { ...common, endpoint: 'http://127.0.0.1:9' };
  const dynamo = new DynamoDBClient(unused);
  dynamo.send = (() => Promise.resolve({})) as typeof dynamo.send;
  const log = createLogger('analyzer', () => undefined);
  const deps: AnalyzerDeps = {
    s3: new S3Client({ ...common, endpoint: args.endpoint, forcePathStyle: true }),
    dynamo,
    sns: new SNSClient(unused),
    sqs: new SQSClient(unused),
    metrics: createMetrics('bench', log),
    rules: fixedRules(unreleasedRules(await loadRules(args.rulesPath))),
    log,
  };
  const settings = {
    matchesTable: 'bench',
    verdictTable: 'bench-verdicts',
    verdictTtlDays: 0,
    alertsTopicArn: 'arn:aws:sns:us-east-1:123456789012:bench',
    queueUrl: 'http://127.0.0.1:9/123456789012/bench',
    maxFileBytes: 4 * 1024 * 1024 * 1024,
    scanTimeoutSeconds: 900,
    archives: DEFAULT_ARCHIVE_SETTINGS,
    concurrency: args.concurrency,
  };
  sample();
  const baseline = { ...peak };
  const started = performance.now();
  const outcomes = await mapConcurrent(args.keys, args.concurrency, (key) =>
    analyzeObject(deps, settings, { bucket: args.bucket, key }, 1),
  );
  const ms = performance.now() - started;
  clearInterval(timer);
  sample();
  process.stdout.write(
    `\nBENCH ${JSON.stringify({
      ms,
      statuses: outcomes.map((o) => o.status),
      baseline,
      peak,
      maxRssKb: process.resourceUsage().maxRSS,
    })}\n`,
  );
}

main().catch((error: unknown) => {
  process.stderr.write(
    `${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
  );
  process.exitCode = 1;
});
