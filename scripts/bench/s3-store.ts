import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';

import {
  CreateBucketCommand,
  GetObjectCommand,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';

import type { BenchContext } from './context';
import { interleave, loadPerCore, MB, median, processCpuSeconds } from './measure';
import type { Row, SectionResult, TargetCheck } from './report';
import { localStack } from './stack';

const SECTION = 'local S3';
/** Large objects, as a user's uploads of installers and images are. */
const OBJECT_MB = 16;
const CONCURRENCY = 4;
/** A bucket without notifications, so no analysis competes for the cores. */
const BUCKET = 'bench-s3-throughput';
/** The figure: what serves S3 locally must move at least this much (PUT then GET). */
const TARGET_MB_PER_S = 300;

interface Pass {
  putMbPerS: number;
  getMbPerS: number;
  /** Bytes over the time of both passes: what a PUT-then-GET workload sees. */
  bothMbPerS: number;
  /** MB moved (PUT + GET) per CPU-second of the store's own process. */
  storeMbPerCpuS: number;
  /** MB moved per CPU-second of this process (the SDK client, and the front server when used). */
  clientMbPerCpuS: number;
}

const ownCpuSeconds = (): number => {
  const usage = process.cpuUsage();
  return (usage.user + usage.system) / 1e6;
};

async function inParallel(count: number, work: (index: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < count) await work(next++);
    }),
  );
}

async function timedPasses(
  count: number,
  put: (index: number) => Promise<void>,
  get: (index: number) => Promise<void>,
  storePid?: number,
): Promise<Pass> {
  const mb = count * OBJECT_MB;
  const store0 = processCpuSeconds(storePid);
  const own0 = ownCpuSeconds();
  const t0 = performance.now();
  await inParallel(count, put);
  const t1 = performance.now();
  await inParallel(count, get);
  const t2 = performance.now();
  return {
    putMbPerS: mb / ((t1 - t0) / 1000),
    getMbPerS: mb / ((t2 - t1) / 1000),
    bothMbPerS: mb / ((t2 - t0) / 1000),
    storeMbPerCpuS: (2 * mb) / (processCpuSeconds(storePid) - store0),
    clientMbPerCpuS: (2 * mb) / (ownCpuSeconds() - own0),
  };
}

/**
 * Throughput of the local S3 (the store in its supervised child process, reached through the
 * stack's front server as every client reaches it) for PUT then GET of 16 MB objects through the
 * real SDK client with its default settings (SigV4 payload hash and CRC32 on PUT over http), four
 * at once; against the same bytes written to and read back from files on the same disk (the floor
 * any store on this filesystem stands on), interleaved in one run.
 */
export async function benchS3Store(ctx: BenchContext): Promise<SectionResult> {
  const count = ctx.quick ? 8 : 32;
  const bodies = Array.from({ length: count }, () => randomBytes(OBJECT_MB * MB));
  const stack = await localStack(ctx);
  const clientFor = (endpoint: string) =>
    new S3Client({
      endpoint,
      region: stack.region,
      credentials: stack.credentials,
      forcePathStyle: true,
    });
  const viaFront = clientFor(stack.endpoint);
  const direct = clientFor(`http://127.0.0.1:${stack.emulators.s3.port}`);
  await viaFront.send(new CreateBucketCommand({ Bucket: BUCKET }));
  const fsDir = path.join(ctx.workDir, 's3-bench-fs');
  await fs.mkdir(fsDir, { recursive: true });

  // Each repetition overwrites the last one's objects and files: disk use stays at one set each.
  const sdkPasses = (s3: S3Client, prefix: string) => async (): Promise<Pass> => {
    return timedPasses(
      count,
      async (i) => {
        await s3.send(
          new PutObjectCommand({ Bucket: BUCKET, Key: `${prefix}${i}`, Body: bodies[i] }),
        );
      },
      async (i) => {
        const { Body } = await s3.send(
          new GetObjectCommand({ Bucket: BUCKET, Key: `${prefix}${i}` }),
        );
        let bytes = 0;
        for await (const chunk of Body as AsyncIterable<Uint8Array>) bytes += chunk.length;
        if (bytes !== OBJECT_MB * MB) throw new Error(`GET returned ${bytes} bytes`);
      },
      stack.emulators.s3.pid,
    );
  };
  const loadAtStart = loadPerCore();
  try {
    const results = await interleave<Pass>(
      [
        { name: 'front', run: sdkPasses(viaFront, 'front/') },
        { name: 'direct', run: sdkPasses(direct, 'direct/') },
        {
          name: 'fs',
          run: () =>
            timedPasses(
              count,
              (i) => fs.writeFile(path.join(fsDir, String(i)), bodies[i]!),
              async (i) => {
                const data = await fs.readFile(path.join(fsDir, String(i)));
                if (data.length !== OBJECT_MB * MB) throw new Error('short read');
              },
            ),
        },
      ],
      ctx.reps,
    );
    const med = (name: string, field: keyof Pass) =>
      median((results.get(name) ?? []).map((pass) => pass[field]));
    const front = med('front', 'bothMbPerS');
    const raw = med('fs', 'bothMbPerS');
    const load = `load per core ${loadAtStart.toFixed(2)} at start, ${loadPerCore().toFixed(2)} at end`;
    const rows: Row[] = [
      {
        section: SECTION,
        metric: `PUT ${OBJECT_MB} MB objects via the stack endpoint`,
        value: med('front', 'putMbPerS'),
        unit: 'MB/s',
      },
      {
        section: SECTION,
        metric: `GET ${OBJECT_MB} MB objects via the stack endpoint`,
        value: med('front', 'getMbPerS'),
        unit: 'MB/s',
      },
      {
        section: SECTION,
        metric: 'PUT then GET via the stack endpoint',
        value: front,
        unit: 'MB/s',
        note: `${count} x ${OBJECT_MB} MB, ${CONCURRENCY} at once, real SDK client`,
      },
      {
        section: SECTION,
        metric: 'PUT then GET straight to the store process',
        value: med('direct', 'bothMbPerS'),
        unit: 'MB/s',
        note: 'without the front server hop',
      },
      {
        section: SECTION,
        metric: 'store process: MB moved per CPU-second',
        value: med('direct', 'storeMbPerCpuS'),
        unit: 'MB/cpu-s',
        note: 'PUT + GET bytes over the store child process CPU time',
      },
      {
        section: SECTION,
        metric: 'SDK client: MB moved per CPU-second',
        value: med('direct', 'clientMbPerCpuS'),
        unit: 'MB/cpu-s',
        note: 'SigV4 payload SHA-256 and CRC32 on PUT over http',
      },
      {
        section: SECTION,
        metric: 'SDK client + front server: MB per CPU-second',
        value: med('front', 'clientMbPerCpuS'),
        unit: 'MB/cpu-s',
        note: 'the front proxies in this process',
      },
      {
        section: SECTION,
        metric: 'write then read the same bytes as files',
        value: raw,
        unit: 'MB/s',
        note: 'fs.writeFile / fs.readFile, same disk',
      },
      {
        section: SECTION,
        metric: 'stack endpoint vs files',
        value: front / raw,
        unit: 'x',
        note: load,
      },
    ];
    const targets: TargetCheck[] = [
      {
        target: `local S3 PUT then GET >= ${TARGET_MB_PER_S} MB/s`,
        actual: `${front.toFixed(0)} MB/s (${(front / raw).toFixed(2)}x files)`,
        met: front >= TARGET_MB_PER_S,
        note: load,
      },
    ];
    return { rows, targets, details: { passes: Object.fromEntries(results) } };
  } finally {
    viaFront.destroy();
    direct.destroy();
    await fs.rm(fsDir, { recursive: true, force: true });
  }
}
