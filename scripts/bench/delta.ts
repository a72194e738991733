import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';

import { CreateTableCommand, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { CreateBucketCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { ListTopicsCommand, SNSClient } from '@aws-sdk/client-sns';

import { releaseRules } from '../../packages/cli/src/rules/release';
import { loadTfvars } from '../../packages/deployment/src';
import { matchTableDefinition, verdictTableDefinition } from '../../packages/core/src';
import { bundleEntry } from './bundle';
import type { BenchContext } from './context';
import { copyElfCorpus } from './corpus';
import { MB, processCpuSeconds, runTimed } from './measure';
import { resultLine } from './packaging';
import type { Row, SectionResult } from './report';
import { writeRulesDir } from './rules-section';
import { localStack } from './stack';

const SECTION = 'delta';
const TARGET_RATIO = 0.1;
const KEYS_PER_FILE = 5;

interface Timing {
  wallMs: number;
  cpuMs: number;
}

interface ChildResult extends Timing {
  /** CPU ms of the local stack's processes meanwhile: DynamoDB, S3, and this one (the front). */
  emulatorCpuMs?: number;
  emulatorCpuByProcess?: Record<'dynamodb' | 's3' | 'front', number>;
  /** When the measured analysis began and ended (epoch ms). */
  startedAt: number;
  endedAt: number;
  objects: number;
  rulesVersion: number;
  ruleCount: number;
  deltaRules: number | null;
  getObject: number;
  headObject: number;
  /** Requests the analysis sent, by command. */
  requests: Record<string, number>;
  /** Keys the analysis downloaded, and their bytes. */
  readKeys: string[];
  readBytes: number;
  /** Wall time with a request to S3 or DynamoDB awaiting its answer. */
  waitingMs: number;
}

interface PartsResult extends Omit<ChildResult, 'wallMs' | 'cpuMs'> {
  download: Timing;
  downloadToMemory: Timing;
  deltaScan: Timing;
  fullScan: Timing;
  /** Per key: CPU ms of its download into memory + scan with the delta rules. */
  readCostByKey: Record<string, number>;
}

/** The local stack's CPU seconds by process, e.g. "0.40 s (0.25 + 0.10 + 0.05)". */
function stackCpuText(result: ChildResult): string {
  const parts = result.emulatorCpuByProcess!;
  return `${(result.emulatorCpuMs! / 1000).toFixed(2)} s (${[parts.dynamodb, parts.s3, parts.front].map((ms) => (ms / 1000).toFixed(2)).join(' + ')})`;
}

/** Requests per object, e.g. "GetObject 1.00, UpdateItem 2.00, BatchGetItem 0.20". */
function requestsPerObject(result: ChildResult): string {
  return Object.entries(result.requests)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([name, n]) => `${name} ${(n / result.objects).toFixed(2)}`)
    .join(', ');
}

/**
 * Re-scan after a rules release (#12 item 5): a bucket analyzed with 5,000 generated + the
 * project's rules (release v1); one rule file is added (release v2, its delta = that file); then
 * the analyzer (handleInvocation, in a process of its own like a Lambda worker, against the local
 * stack's S3 and DynamoDB) re-analyzes the bucket with the delta re-scan and, after it, in full
 * (`--full`). Same objects, same process set-up, measured one after the other in this run:
 * their wall and CPU ratios are the figures. A second bucket holds every file under 5 keys: the
 * delta re-scan's downloads per distinct file.
 */
export async function benchDelta(ctx: BenchContext): Promise<SectionResult> {
  const stack = await localStack(ctx);
  const tfvars = await loadTfvars(path.join(ctx.repoRoot, 'terraform.tfvars'));
  const clientConfig = {
    endpoint: stack.endpoint,
    region: stack.region,
    credentials: stack.credentials,
  };
  const s3 = new S3Client({ ...clientConfig, forcePathStyle: true });
  const dynamo = new DynamoDBClient(clientConfig);
  const sns = new SNSClient(clientConfig);
  const run = `${process.pid}`;
  const rulesBucket = `bench-delta-rules-${run}`;
  await s3.send(new CreateBucketCommand({ Bucket: rulesBucket }));
  // The stack's own alerts topic (its SNS has no CreateTopic); nothing here is expected to alert.
  const { Topics = [] } = await sns.send(new ListTopicsCommand({}));
  const TopicArn = Topics.map((topic) => topic.TopicArn).find((arn) =>
    arn?.endsWith(`:${stack.names.matchesTopic}`),
  );

  // v1: 5,000 generated rules + the project's; v2: v1 + one new rule in a file of its own (what
  // `manage.ts new-rule` makes), matching nothing in the corpus.
  const rulesDir = path.join(ctx.workDir, 'rules-delta');
  await writeRulesDir(rulesDir, ctx.repoRoot, ctx.seed, 5000);
  ctx.log('delta: releasing v1 (5,000 generated + project rules)');
  await releaseRules({ s3, bucket: rulesBucket, rulesDir, testSamples: false });
  const corpus = await copyElfCorpus(path.join(ctx.workDir, 'elf-delta'), {
    roots: ['/usr/bin', '/usr/lib'],
    maxBytes: (ctx.quick ? 12 : 96) * MB,
  });
  const copied = corpus.files.slice(0, Math.max(1, Math.floor(corpus.files.length / 4)));
  // /usr/bin holds some identical files: "each file once" means each distinct SHA-256 once.
  const distinctCopied = new Set(
    await Promise.all(
      copied.map(async (file) =>
        createHash('sha256')
          .update(await fs.readFile(file.path))
          .digest('hex'),
      ),
    ),
  ).size;
  const child = await bundleEntry(path.join(__dirname, 'delta-child.ts'), 'delta-child');
  const tempRoot = path.join(ctx.workDir, 'delta-tmp');
  await fs.mkdir(tempRoot, { recursive: true });

  async function bucketOf(name: string, files: string[], keysPerFile: number) {
    const bucket = `bench-delta-${name}-${run}`;
    const tables = { matchesTable: `${bucket}-matches`, verdictTable: `${bucket}-verdicts` };
    await s3.send(new CreateBucketCommand({ Bucket: bucket }));
    await dynamo.send(new CreateTableCommand(matchTableDefinition(tables.matchesTable)));
    await dynamo.send(new CreateTableCommand(verdictTableDefinition(tables.verdictTable)));
    for (let copy = 0; copy < keysPerFile; copy++) {
      for (const [index, file] of files.entries()) {
        const Key = `copy-${copy}/${index}-${path.basename(file)}`;
        await s3.send(new PutObjectCommand({ Bucket: bucket, Key, Body: await fs.readFile(file) }));
      }
    }
    return { bucket, ...tables };
  }
  const childArgs = (
    target: Awaited<ReturnType<typeof bucketOf>>,
    mode: 'full' | 'delta' | 'delta-unfiltered' | 'parts',
    worker?: { index: number; of: number; start: string },
  ) =>
    JSON.stringify({
      endpoint: stack.endpoint,
      workerEndpoints: stack.workerEndpoints,
      region: stack.region,
      rulesBucket,
      bakedRules: ctx.compiledRules,
      alertsTopicArn: TopicArn,
      mode,
      concurrency: ctx.cores,
      tempRoot,
      objectsPerMessage: tfvars.objects_per_retro_message,
      ...(worker ? { worker } : {}),
      ...target,
    });
  // What the local stack's own processes spend meanwhile (on AWS, the services' work).
  const stackCpuMs = () => ({
    dynamodb: 1000 * processCpuSeconds(stack.emulators.dynamo.pid),
    s3: 1000 * processCpuSeconds(stack.emulators.s3.pid),
    front: 1000 * processCpuSeconds(process.pid),
  });
  const withStackCpu = async <Result>(run: () => Promise<Result>): Promise<Result> => {
    const before = stackCpuMs();
    const result = await run();
    const after = stackCpuMs();
    const emulatorCpuByProcess = {
      dynamodb: after.dynamodb - before.dynamodb,
      s3: after.s3 - before.s3,
      front: after.front - before.front,
    };
    const emulatorCpuMs = Object.values(emulatorCpuByProcess).reduce((a, b) => a + b, 0);
    return { ...result, emulatorCpuMs, emulatorCpuByProcess };
  };
  const analyze = <Result = ChildResult>(
    target: Awaited<ReturnType<typeof bucketOf>>,
    mode: 'full' | 'delta' | 'delta-unfiltered' | 'parts',
  ): Promise<Result> =>
    withStackCpu(async () =>
      resultLine<Result>(
        (await runTimed(process.execPath, [child, childArgs(target, mode)])).stdout,
      ),
    );
  // `workers` processes at once, as the dispatcher runs concurrent analyzer invocations (each in
  // an execution environment of its own), started together once all are ready: wall time from
  // the first start to the last end, CPU summed.
  const analyzeInWorkers = async (
    target: Awaited<ReturnType<typeof bucketOf>>,
    mode: 'full' | 'delta',
    workers: number,
  ): Promise<ChildResult> => {
    const start = path.join(ctx.workDir, `delta-start-${mode}-${Date.now()}`);
    let failed: Error | undefined;
    const runs = Array.from({ length: workers }, (_, index) =>
      runTimed(process.execPath, [child, childArgs(target, mode, { index, of: workers, start })]),
    );
    for (const run of runs) {
      run.catch((error: unknown) => {
        failed = error instanceof Error ? error : new Error('a worker failed');
      });
    }
    const ready = async () =>
      (await fs.readdir(ctx.workDir)).filter((name) =>
        name.startsWith(`${path.basename(start)}.ready.`),
      ).length;
    while ((await ready()) < workers) {
      if (failed) throw failed;
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    await fs.writeFile(start, '');
    const results = (await Promise.all(runs)).map((run) => resultLine<ChildResult>(run.stdout));
    const requests: Record<string, number> = {};
    for (const result of results) {
      for (const [name, n] of Object.entries(result.requests)) {
        requests[name] = (requests[name] ?? 0) + n;
      }
    }
    const startedAt = Math.min(...results.map((result) => result.startedAt));
    const endedAt = Math.max(...results.map((result) => result.endedAt));
    const sum = (pick: (result: ChildResult) => number) =>
      results.reduce((total, result) => total + pick(result), 0);
    return {
      ...results[0]!,
      startedAt,
      endedAt,
      wallMs: endedAt - startedAt,
      cpuMs: sum((result) => result.cpuMs),
      getObject: sum((result) => result.getObject),
      headObject: sum((result) => result.headObject),
      requests,
      readKeys: results.flatMap((result) => result.readKeys),
      readBytes: sum((result) => result.readBytes),
      waitingMs: Math.max(...results.map((result) => result.waitingMs)),
    };
  };

  ctx.log(`delta: ${corpus.files.length} ELF files (${(corpus.totalBytes / MB).toFixed(0)} MB)`);
  const distinct = await bucketOf(
    'one-key',
    corpus.files.map((file) => file.path),
    1,
  );
  const copies = await bucketOf(
    'five-keys',
    copied.map((file) => file.path),
    KEYS_PER_FILE,
  );
  ctx.log('delta: analyzing both buckets with v1 (set-up)');
  const setup = [await analyze(distinct, 'full'), await analyze(copies, 'full')];

  await fs.mkdir(path.join(rulesDir, 'custom'), { recursive: true });
  await fs.writeFile(
    path.join(rulesDir, 'custom', 'bench_added_rule.yara'),
    'rule bench_added_rule { strings: $a = "BENCH_ADDED_RULE_MARKER_7f3a" condition: $a }\n',
  );
  const v2 = await releaseRules({ s3, bucket: rulesBucket, rulesDir, testSamples: false });
  ctx.log(`delta: released v${v2.release.version} (+${v2.added.length} rule)`);

  const delta = await analyze(distinct, 'delta');
  const full = await analyze(distinct, 'full');
  const copiesDelta = await analyze(copies, 'delta');
  const copiesFull = await analyze(copies, 'full');
  // The same with the content prefilter ignored, after another one-rule release (v3 builds on the
  // v2 verdicts the full runs left): every distinct file read, as a rule the prefilter cannot
  // rule anything out for would need.
  await fs.writeFile(
    path.join(rulesDir, 'custom', 'bench_added_rule_2.yara'),
    'rule bench_added_rule_2 { strings: $a = "BENCH_SECOND_RULE_MARKER_c41d" ascii wide condition: $a }\n',
  );
  const v3 = await releaseRules({ s3, bucket: rulesBucket, rulesDir, testSamples: false });
  ctx.log(`delta: released v${v3.release.version} (+${v3.added.length} rule)`);
  const unfiltered = await analyze(distinct, 'delta-unfiltered');
  const copiesUnfiltered = await analyze(copies, 'delta-unfiltered');
  const parts = await analyze<PartsResult>(distinct, 'parts');
  // Re-scans as the dispatcher runs them (lambda_analyze_concurrency_limit invocations at once)
  // after a fourth one-rule release: the delta's wall is mostly waiting, which overlaps then.
  await fs.writeFile(
    path.join(rulesDir, 'custom', 'bench_added_rule_3.yara'),
    'rule bench_added_rule_3 { strings: $a = "BENCH_THIRD_RULE_MARKER_9e21" condition: $a }\n',
  );
  await releaseRules({ s3, bucket: rulesBucket, rulesDir, testSamples: false });
  const inFlight = tfvars.lambda_analyze_concurrency_limit;
  const deltaAtOnce = await withStackCpu(() => analyzeInWorkers(distinct, 'delta', inFlight));
  const fullAtOnce = await withStackCpu(() => analyzeInWorkers(distinct, 'full', inFlight));
  s3.destroy();
  dynamo.destroy();
  sns.destroy();

  const wallRatio = delta.wallMs / full.wallMs;
  const cpuRatio = delta.cpuMs / full.cpuMs;
  const downloadsPerFile = copiesUnfiltered.getObject / distinctCopied;
  // The objects the prefilter could not rule out, and what reading them cost (measured per object:
  // they are not average objects; the largest files are the ones too varied for a signature).
  const readCostMs = delta.readKeys.reduce((sum, key) => sum + (parts.readCostByKey[key] ?? 0), 0);
  const mb = corpus.totalBytes / MB;
  const n = corpus.files.length;
  const perObject = (timing: Timing) => timing.cpuMs / n;
  // While a new rule must read each distinct file, the delta costs at least its download and its
  // scan with the delta rules; a full analysis at least its download and its scan with all.
  const floor =
    (parts.downloadToMemory.cpuMs + parts.deltaScan.cpuMs) /
    (parts.download.cpuMs + parts.fullScan.cpuMs);
  const rows: Row[] = [
    {
      section: SECTION,
      metric: `full re-analysis, ${corpus.files.length} ELF files (${mb.toFixed(0)} MB), ${full.ruleCount} rules`,
      value: full.wallMs / 1000,
      unit: 's',
      note: `analyzer CPU ${(full.cpuMs / 1000).toFixed(2)} s; per object: ${requestsPerObject(full)}`,
    },
    {
      section: SECTION,
      metric: `delta re-analysis after adding 1 rule (delta: ${delta.deltaRules} rule)`,
      value: delta.wallMs / 1000,
      unit: 's',
      note: `analyzer CPU ${(delta.cpuMs / 1000).toFixed(2)} s; waiting on S3 or DynamoDB ${(delta.waitingMs / 1000).toFixed(2)} s; per object: ${requestsPerObject(delta)}`,
    },
    { section: SECTION, metric: 'delta / full, wall time', value: wallRatio, unit: 'x' },
    { section: SECTION, metric: 'delta / full, analyzer CPU', value: cpuRatio, unit: 'x' },
    {
      section: SECTION,
      metric: 'analyzer CPU per object: full re-analysis',
      value: perObject(full),
      unit: 'ms',
      note: `download ${perObject(parts.download).toFixed(2)} ms + hash and scan with ${full.ruleCount} rules ${perObject(parts.fullScan).toFixed(2)} ms + the rest (ledger, temp dirs, invocation) ${(perObject(full) - perObject(parts.download) - perObject(parts.fullScan)).toFixed(2)} ms`,
    },
    {
      section: SECTION,
      metric: 'analyzer CPU per object: delta re-analysis',
      value: perObject(delta),
      unit: 'ms',
      note: `${delta.getObject} of ${n} objects read (${(delta.readBytes / MB).toFixed(1)} MB, ${((100 * delta.readBytes) / corpus.totalBytes).toFixed(0)}% of the bytes): their download into memory and scan with the delta ${(readCostMs / n).toFixed(2)} ms + the rest (ledger read and carried verdicts, invocation) ${(perObject(delta) - readCostMs / n).toFixed(2)} ms`,
    },
    {
      section: SECTION,
      metric: 'delta / full without the objects the prefilter could not rule out (CPU)',
      value: (delta.cpuMs - readCostMs) / full.cpuMs,
      unit: 'x',
      note: `the delta's CPU less the measured cost of reading and scanning those ${delta.readKeys.length} objects: what settling every other object from the ledger costs`,
    },
    {
      section: SECTION,
      metric: 'delta / full, CPU of the analyzer and the local stack (DynamoDB, S3, front)',
      value: (delta.cpuMs + delta.emulatorCpuMs!) / (full.cpuMs + full.emulatorCpuMs!),
      unit: 'x',
      note: `the local stack's processes (DynamoDB, S3, front): delta ${stackCpuText(delta)}, full ${stackCpuText(full)} (on AWS, the services' work); with invocations at once on ${ctx.cores} cores the wall follows this`,
    },
    {
      section: SECTION,
      metric: `delta / full, wall time, ${inFlight} invocations at once (reported)`,
      value: deltaAtOnce.wallMs / fullAtOnce.wallMs,
      unit: 'x',
      note: `as the dispatcher runs them (lambda_analyze_concurrency_limit), after another one-rule release: delta ${(deltaAtOnce.wallMs / 1000).toFixed(2)} s, full ${(fullAtOnce.wallMs / 1000).toFixed(2)} s; analyzer CPU ${(deltaAtOnce.cpuMs / fullAtOnce.cpuMs).toFixed(3)} x`,
    },
    {
      section: SECTION,
      metric: 'delta / full without the content prefilter (every distinct file read), analyzer CPU',
      value: unfiltered.cpuMs / full.cpuMs,
      unit: 'x',
      note: `wall ${(unfiltered.wallMs / full.wallMs).toFixed(3)} x; ${(unfiltered.cpuMs / n).toFixed(2)} ms CPU per object; per object: ${requestsPerObject(unfiltered)}`,
    },
    {
      section: SECTION,
      metric: 'floor of delta / full while each distinct file is read (CPU)',
      value: floor,
      unit: 'x',
      note: '(download into memory + delta scan) / (download as a full analysis does it + full scan), measured apart in the same run',
    },
    {
      section: SECTION,
      metric: `${copied.length} files (${distinctCopied} distinct) x ${KEYS_PER_FILE} keys: delta re-scan downloads per distinct file`,
      value: downloadsPerFile,
      unit: 'x',
      note: `without the prefilter: ${copiesUnfiltered.getObject} downloads (each followed by one scan with the delta), ${copiesUnfiltered.headObject} HEADs for ${copied.length * KEYS_PER_FILE} keys; with it: ${copiesDelta.getObject} downloads`,
    },
    {
      section: SECTION,
      metric: `${copied.length} files x ${KEYS_PER_FILE} keys: delta / full, wall time`,
      value: copiesDelta.wallMs / copiesFull.wallMs,
      unit: 'x',
      note: `analyzer CPU ${(copiesDelta.cpuMs / copiesFull.cpuMs).toFixed(3)} x; per key ${(copiesDelta.cpuMs / copiesDelta.objects).toFixed(2)} ms (delta: ${requestsPerObject(copiesDelta)}) vs ${(copiesFull.cpuMs / copiesFull.objects).toFixed(2)} ms (full)`,
    },
  ];
  return {
    rows,
    targets: [
      {
        target: `delta re-analysis wall time <= ${TARGET_RATIO * 100}% of full`,
        actual: `${(wallRatio * 100).toFixed(1)}%`,
        met: wallRatio <= TARGET_RATIO,
      },
      {
        target: `delta re-analysis analyzer CPU <= ${TARGET_RATIO * 100}% of full`,
        actual: `${(cpuRatio * 100).toFixed(1)}%`,
        met: cpuRatio <= TARGET_RATIO,
      },
      {
        target: `every file under ${KEYS_PER_FILE} keys downloaded and scanned once (at most)`,
        actual: `${downloadsPerFile.toFixed(2)} downloads per file without the prefilter, ${(copiesDelta.getObject / distinctCopied).toFixed(2)} with it`,
        met:
          copiesUnfiltered.getObject === distinctCopied && copiesDelta.getObject <= distinctCopied,
      },
    ],
    details: {
      setup,
      delta,
      full,
      parts,
      copiesDelta,
      copiesFull,
      unfiltered,
      copiesUnfiltered,
      deltaAtOnce,
      fullAtOnce,
      files: corpus.files.length,
      copied: copied.length,
    },
  };
}
