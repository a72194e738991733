import { createReadStream, promises as fs } from 'node:fs';
import path from 'node:path';

import { CreateBucketCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';

import { startS3, uniqueName } from '../../packages/testing/src';
import { bundleEntry } from './bundle';
import type { BenchContext } from './context';
import { writeLargeFile } from './corpus';
import { MB, runTimed } from './measure';
import { resultLine } from './packaging';
import type { Row, SectionResult } from './report';

const SECTION = 'memory';
const HEAP_TARGET_MB = 150;

interface ChildResult {
  ms: number;
  statuses: string[];
  baseline: { heapUsed: number; rss: number };
  peak: { heapUsed: number; heapTotal: number; rss: number; external: number };
  maxRssKb: number;
}

async function upload(s3: S3Client, bucket: string, key: string, file: string): Promise<void> {
  const { size } = await fs.stat(file);
  await s3.send(
    new PutObjectCommand({
      Bucket: bucket,
      Key: key,
      Body: createReadStream(file),
      ContentLength: size,
    }),
  );
}

/**
 * Peak JS heap and RSS of the analyzer's per-object function (analyzeObject: streamed download to
 * /tmp, then hash + scan there) in a fresh process, for one large object and a batch of ten,
 * served by s3rver. Files are generated in the scratch directory and removed afterwards.
 */
export async function benchMemory(ctx: BenchContext): Promise<SectionResult> {
  const largeBytes = ctx.quick ? 128 * MB : 1024 * MB;
  const batchBytes = ctx.quick ? 8 * MB : 100 * MB;
  const child = await bundleEntry(path.join(__dirname, 'memory-child.ts'), 'memory-child');
  const s3 = await startS3();
  const dir = path.join(ctx.workDir, 'memory');
  await fs.mkdir(dir, { recursive: true });
  const rows: Row[] = [];
  let worstHeap = 0;
  try {
    const bucket = uniqueName('bench-memory');
    await s3.client.send(new CreateBucketCommand({ Bucket: bucket }));
    const cases = [
      { label: `1 x ${largeBytes / MB} MB`, count: 1, size: largeBytes },
      { label: `10 x ${batchBytes / MB} MB, ${ctx.cores} at once`, count: 10, size: batchBytes },
    ];
    for (const [index, testCase] of cases.entries()) {
      const keys: string[] = [];
      for (let k = 0; k < testCase.count; k++) {
        const file = path.join(dir, `case${index}-${k}.bin`);
        await writeLargeFile(file, testCase.size, `${ctx.seed}:${index}:${k}`);
        const key = `case${index}/object-${k}.bin`;
        await upload(s3.client, bucket, key, file);
        await fs.unlink(file);
        keys.push(key);
      }
      ctx.log(`memory: ${testCase.label}`);
      const run = await runTimed(process.execPath, [
        child,
        JSON.stringify({
          endpoint: s3.endpoint,
          bucket,
          keys,
          rulesPath: ctx.compiledRules,
          concurrency: ctx.cores,
        }),
      ]);
      const result = resultLine<ChildResult>(run.stdout);
      const failed = result.statuses.filter((status) => status !== 'analyzed').length;
      const heapMb = result.peak.heapUsed / MB;
      worstHeap = Math.max(worstHeap, heapMb);
      const totalMb = (testCase.count * testCase.size) / MB;
      rows.push(
        {
          section: SECTION,
          metric: `${testCase.label}: peak JS heap`,
          value: heapMb,
          unit: 'MB',
          note: `${(result.baseline.heapUsed / MB).toFixed(0)} MB after start-up; heap total ${(result.peak.heapTotal / MB).toFixed(0)} MB, buffers ${(result.peak.external / MB).toFixed(0)} MB`,
        },
        {
          section: SECTION,
          metric: `${testCase.label}: peak RSS`,
          value: result.maxRssKb / 1024,
          unit: 'MB',
          note: 'includes the mapped file pages libyara scans',
        },
        {
          section: SECTION,
          metric: `${testCase.label}: download + analysis`,
          value: totalMb / (result.ms / 1000),
          unit: 'MB/s',
          note: failed ? `${failed} objects NOT analyzed` : 'all analyzed; one run',
        },
      );
    }
  } finally {
    await s3.stop();
    await fs.rm(dir, { recursive: true, force: true });
  }
  return {
    rows,
    targets: [
      {
        target: `JS heap < ${HEAP_TARGET_MB} MB whatever the file size`,
        actual: `${worstHeap.toFixed(0)} MB peak`,
        met: worstHeap < HEAP_TARGET_MB,
      },
    ],
  };
}
