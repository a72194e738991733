import { execFileSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';

import {
  CreateBucketCommand,
  GetObjectCommand,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';

import type { LocalStack } from '../../packages/local/src';
import { startS3, uniqueName } from '../../packages/testing/src';
import type { BenchContext } from './context';
import { EICAR } from './corpus';
import {
  cpuByPid,
  cpuSince,
  interleave,
  MB,
  median,
  percentile,
  processTreeCpuSeconds,
  runTimed,
  type TimedRun,
} from './measure';
import type { Row, SectionResult, TargetCheck } from './report';
import { localStack } from './stack';

const SECTION = 'local pipeline';

async function waitFor(
  condition: () => Promise<boolean> | boolean,
  timeoutMs: number,
  what: string,
  intervalMs = 50,
): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!(await condition())) {
    if (performance.now() > deadline)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

async function idle(stack: LocalStack): Promise<void> {
  await waitFor(
    async () => {
      const status = await stack.status();
      return status.queued === 0 && status.inFlight === 0;
    },
    300_000,
    'the analysis queue to empty',
    200,
  );
}

/**
 * Upload-to-analyzed throughput of the local stack (S3 -> notification -> SQS -> dispatcher ->
 * analyzer workers running the deployment zip) on the synthetic files of 1 MB and more, against
 * `yara -N -C -r -p <cores>` on the same files with the same compiled rules (the analyzer zip's),
 * interleaved; then EICAR upload-to-alert latency on an idle queue.
 */
export async function benchPipeline(ctx: BenchContext): Promise<SectionResult> {
  const stack = await localStack(ctx);
  // Default settings but path-style addressing: the bucket name has dots and the endpoint is an
  // IP address, so virtual-hosted style cannot work from this process.
  const s3 = new S3Client({
    endpoint: stack.endpoint,
    region: stack.region,
    credentials: stack.credentials,
    forcePathStyle: true,
  });
  const bucket = stack.names.bucket;
  const capBytes = ctx.quick ? 16 * MB : 384 * MB;
  const large = ctx.synthetic.files.filter((file) => file.size >= MB);
  const chosen: typeof large = [];
  let chosenBytes = 0;
  for (const file of large) {
    if (chosenBytes >= capBytes) break;
    chosen.push(file);
    chosenBytes += file.size;
  }
  if (chosen.length === 0) throw new Error('the synthetic corpus has no file of 1 MB or more');
  const dir = path.join(ctx.workDir, 'pipeline-files');
  await fs.mkdir(dir, { recursive: true });
  for (const file of chosen) await fs.link(file.path, path.join(dir, path.basename(file.path)));
  const rulesFile = path.join(ctx.workDir, 'analyzer-rules.bin');
  await fs.writeFile(
    rulesFile,
    execFileSync(
      'unzip',
      ['-p', path.join(ctx.workDir, 'lambda', 'analyzer.zip'), 'compiled_yara_rules.bin'],
      {
        maxBuffer: 256 * MB,
      },
    ),
  );
  const mb = chosenBytes / MB;
  let round = 0;
  interface Round {
    ms: number;
    /** CPU seconds of every process of the round: the uploading client, the stack, its workers. */
    cpuS: number;
    uploadMs: number;
    downloadMs: number;
    scanMs: number;
    /** Of cpuS, each of the stack's own processes (the rest is the main process: the uploading
     * client, the front, SQS and the notifications). */
    cpuByProcess?: Record<ProcessGroup, number>;
  }
  const latencySums = () => ({
    download: stack.metrics.sum('S3DownloadLatency'),
    scan: stack.metrics.sum('ScanLatency'),
  });
  type ProcessGroup = 'analyzer workers' | 'dispatcher workers' | 'S3 store' | 'DynamoDB';
  const groupPids = (): Record<ProcessGroup, (number | undefined)[]> => ({
    'analyzer workers': stack.lambda
      .workerInfo(stack.names.analyzerFunction)
      .map((worker) => worker.pid),
    'dispatcher workers': stack.lambda
      .workerInfo(stack.names.dispatcherFunction)
      .map((worker) => worker.pid),
    'S3 store': [stack.emulators.s3.pid],
    DynamoDB: [stack.emulators.dynamo.pid],
  });
  const groupCpu = () =>
    Object.fromEntries(
      Object.entries(groupPids()).map(([group, pids]) => [group, cpuByPid(pids)]),
    ) as Record<ProcessGroup, Map<number, number>>;
  const uploadAndAnalyze = async (files: typeof chosen): Promise<Round> => {
    await idle(stack);
    const before = (await stack.status()).analyzed;
    const sums = latencySums();
    const prefix = `bench-${process.pid}-${round++}`;
    const cpuBefore = processTreeCpuSeconds();
    const groupsBefore = groupCpu();
    const started = performance.now();
    let next = 0;
    const uploader = async () => {
      while (next < files.length) {
        const file = files[next++] as (typeof files)[number];
        await s3.send(
          new PutObjectCommand({
            Bucket: bucket,
            Key: `${prefix}/${path.basename(file.path)}`,
            Body: await fs.readFile(file.path),
          }),
        );
      }
    };
    await Promise.all(Array.from({ length: 4 }, uploader));
    const uploadMs = performance.now() - started;
    await waitFor(
      async () => (await stack.status()).analyzed >= before + files.length,
      600_000,
      `${files.length} objects to be analyzed`,
    );
    const ms = performance.now() - started;
    const cpuS = processTreeCpuSeconds() - cpuBefore;
    const groupsAfter = groupCpu();
    const after = latencySums();
    return {
      ms,
      cpuS,
      uploadMs,
      downloadMs: after.download - sums.download,
      scanMs: after.scan - sums.scan,
      cpuByProcess: Object.fromEntries(
        Object.entries(groupsAfter).map(([group, cpu]) => [
          group,
          cpuSince(groupsBefore[group as ProcessGroup], cpu),
        ]),
      ) as Record<ProcessGroup, number>,
    };
  };
  const pipelineRun = () => uploadAndAnalyze(chosen);
  // Small objects (bytes negligible): what each object costs whatever its size (its notification,
  // queue message, invocation, ledger and DynamoDB writes, SDK calls on both sides).
  const small = ctx.synthetic.files
    .filter((file) => file.size < 64 * 1024)
    .slice(0, ctx.quick ? 20 : 100);
  if (small.length === 0) throw new Error('the synthetic corpus has no file under 64 KB');
  const smallRun = () => uploadAndAnalyze(small);
  // The S3 emulator alone, in a server of its own (no front proxy, no pipeline behind it): each
  // file uploaded and downloaded once, as the pipeline moves every byte.
  const raw = await startS3();
  const rawBucket = uniqueName('bench-raw');
  await raw.client.send(new CreateBucketCommand({ Bucket: rawBucket }));
  const rawS3Run = async (): Promise<Round> => {
    const prefix = `raw-${round++}`;
    const started = performance.now();
    const each = async (work: (file: (typeof chosen)[number]) => Promise<void>) => {
      let next = 0;
      await Promise.all(
        Array.from({ length: 4 }, async () => {
          while (next < chosen.length) await work(chosen[next++] as (typeof chosen)[number]);
        }),
      );
    };
    await each(async (file) => {
      await raw.client.send(
        new PutObjectCommand({
          Bucket: rawBucket,
          Key: `${prefix}/${path.basename(file.path)}`,
          Body: await fs.readFile(file.path),
        }),
      );
    });
    const uploadMs = performance.now() - started;
    await each(async (file) => {
      const response = await raw.client.send(
        new GetObjectCommand({ Bucket: rawBucket, Key: `${prefix}/${path.basename(file.path)}` }),
      );
      await response.Body?.transformToByteArray();
    });
    const ms = performance.now() - started;
    return { ms, cpuS: NaN, uploadMs, downloadMs: ms - uploadMs, scanMs: 0 };
  };
  ctx.cleanups.push(() => raw.stop());
  const yaraRun = async () =>
    await runTimed('yara', ['-N', '-C', '-r', '-p', String(ctx.cores), rulesFile, dir], {
      okCodes: [0, 1],
    });
  ctx.log(`local pipeline: ${chosen.length} files, ${mb.toFixed(0)} MB per round`);
  await pipelineRun(); // warm: workers started, rules loaded
  const runs = await interleave<Round | TimedRun>(
    [
      { name: 'pipeline', run: pipelineRun },
      { name: 'yara', run: yaraRun },
      { name: 'raw-s3', run: rawS3Run },
      { name: 'small objects', run: smallRun },
    ],
    ctx.reps,
  );
  const rounds = (runs.get('pipeline') ?? []) as Round[];
  const pipelineS = median(rounds.map((r) => r.ms)) / 1000;
  const uploadS = median(rounds.map((r) => r.uploadMs)) / 1000;
  const downloadS = median(rounds.map((r) => r.downloadMs)) / 1000;
  const scanS = median(rounds.map((r) => r.scanMs)) / 1000;
  const yaraRuns = (runs.get('yara') ?? []) as TimedRun[];
  const yaraS = median(yaraRuns.map((r) => r.wallMs)) / 1000;
  // CPU per MB: on a shared machine the walls are queueing, CPU time is what each side costs.
  const pipelineCpuS = median(rounds.map((r) => r.cpuS));
  const yaraCpuS = median(yaraRuns.map((r) => r.cpuSeconds));
  const cpuRatio = yaraCpuS / pipelineCpuS;
  const rawRounds = (runs.get('raw-s3') ?? []) as Round[];
  const rawUploadS = median(rawRounds.map((r) => r.uploadMs)) / 1000;
  const rawDownloadS = median(rawRounds.map((r) => r.downloadMs)) / 1000;
  const ratio = yaraS / pipelineS;
  const smallRounds = (runs.get('small objects') ?? []) as Round[];
  const cpuPerObjectS = median(smallRounds.map((r) => r.cpuS)) / small.length;
  // The large round's CPU less what its objects cost as objects: what its bytes cost.
  const perObjectShare = (cpuPerObjectS * chosen.length) / pipelineCpuS;
  const perByteMs = ((pipelineCpuS - cpuPerObjectS * chosen.length) * 1000) / mb;
  // Where a round's CPU goes, as the median of each process group over the rounds.
  const groupNames = Object.keys(rounds[0]?.cpuByProcess ?? {}) as ProcessGroup[];
  const groupMsPerMb = groupNames.map((group) => ({
    group,
    msPerMb: (median(rounds.map((r) => r.cpuByProcess?.[group] ?? NaN)) * 1000) / mb,
  }));
  const restMsPerMb =
    (median(
      rounds.map(
        (r) => r.cpuS - Object.values(r.cpuByProcess ?? {}).reduce((sum, cpu) => sum + cpu, 0),
      ),
    ) *
      1000) /
    mb;

  // EICAR: unique files (a new SHA-256 each time, so every one alerts), one at a time, idle queue.
  await idle(stack);
  const samples = ctx.quick ? 5 : 20;
  const latencies: number[] = [];
  for (let i = 0; i < samples; i++) {
    const before = stack.alerts.length;
    const started = performance.now();
    await s3.send(
      new PutObjectCommand({
        Bucket: bucket,
        Key: `bench-eicar-${process.pid}-${i}.txt`,
        Body: Buffer.from(`${EICAR}\n${process.pid}-${i}-${Date.now()}\n`, 'latin1'),
      }),
    );
    await waitFor(() => stack.alerts.length > before, 60_000, 'the EICAR alert', 5);
    latencies.push(performance.now() - started);
    // Vary the phase against the dispatcher's schedule.
    await new Promise((resolve) => setTimeout(resolve, 137 * (i % 7)));
  }
  s3.destroy();
  const p50 = percentile(latencies, 50);
  const p95 = percentile(latencies, 95);
  const rows: Row[] = [
    {
      section: SECTION,
      metric: `upload -> analyzed, ${chosen.length} files >= 1 MB`,
      value: mb / pipelineS,
      unit: 'MB/s',
      note: `${(chosen.length / pipelineS).toFixed(1)} files/s, ${pipelineS.toFixed(2)} s per round`,
    },
    {
      section: SECTION,
      metric: `yara -N -C -r -p ${ctx.cores}, same files and rules`,
      value: mb / yaraS,
      unit: 'MB/s',
      note: `${yaraS.toFixed(2)} s`,
    },
    { section: SECTION, metric: 'pipeline / yara CLI throughput', value: ratio, unit: 'x' },
    {
      section: SECTION,
      metric: 'CPU per MB: pipeline (client, stack, workers)',
      value: (pipelineCpuS * 1000) / mb,
      unit: 'ms',
      note: `${pipelineCpuS.toFixed(2)} s per round; yara ${((yaraCpuS * 1000) / mb).toFixed(2)} ms/MB (${yaraCpuS.toFixed(2)} s)`,
    },
    { section: SECTION, metric: 'yara CPU / pipeline CPU', value: cpuRatio, unit: 'x' },
    {
      section: SECTION,
      metric: 'CPU per object, whatever its size',
      value: cpuPerObjectS * 1000,
      unit: 'ms',
      note: `${small.length} files < 64 KB; ${(perObjectShare * 100).toFixed(0)}% of the CPU above (${(mb / chosen.length).toFixed(1)} MB per file); per byte ${perByteMs.toFixed(1)} ms/MB`,
    },
    {
      section: SECTION,
      metric: 'CPU per MB: the analyzer workers',
      value: groupMsPerMb.find((entry) => entry.group === 'analyzer workers')?.msPerMb ?? NaN,
      unit: 'ms',
      note: [
        ...groupMsPerMb
          .filter((entry) => entry.group !== 'analyzer workers')
          .map((entry) => `${entry.group} ${entry.msPerMb.toFixed(1)}`),
        `the main process (uploading client, front, SQS, notifications) ${restMsPerMb.toFixed(1)} ms/MB`,
      ].join(', '),
    },
    {
      section: SECTION,
      metric: 'of which: uploads finished after',
      value: uploadS,
      unit: 's',
      note: `${(mb / uploadS).toFixed(0)} MB/s into the stack's S3, 4 uploads at once`,
    },
    {
      section: SECTION,
      metric: 'local S3 store alone: PUT then GET the same files',
      value: mb / (rawUploadS + rawDownloadS),
      unit: 'MB/s',
      note: `PUT ${(mb / rawUploadS).toFixed(0)} MB/s, GET ${(mb / rawDownloadS).toFixed(0)} MB/s, 4 at once, no front proxy`,
    },
    {
      section: SECTION,
      metric: 'analyzer time downloading / scanning',
      value: downloadS,
      unit: 's',
      note: `summed over objects: download ${downloadS.toFixed(1)} s, hash+scan ${scanS.toFixed(1)} s (metrics)`,
    },
    {
      section: SECTION,
      metric: 'EICAR upload -> alert p50',
      value: p50,
      unit: 'ms',
      note: `${samples} uploads, idle queue`,
    },
    { section: SECTION, metric: 'EICAR upload -> alert p95', value: p95, unit: 'ms' },
  ];
  const targets: TargetCheck[] = [
    {
      target: 'local pipeline >= 0.3x yara CLI on files >= 1 MB',
      actual: `${ratio.toFixed(2)}x (by CPU time ${cpuRatio.toFixed(2)}x)`,
      met: ratio >= 0.3,
    },
    {
      target: 'EICAR upload-to-alert p50 < 2 s',
      actual: `${(p50 / 1000).toFixed(2)} s (p95 ${(p95 / 1000).toFixed(2)} s)`,
      met: p50 < 2000,
    },
  ];
  return {
    rows,
    targets,
    details: { rounds, rawS3: rawRounds, yara: yaraRuns, smallObjects: smallRounds, latencies },
  };
}
