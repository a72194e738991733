import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { startS3Server } from '../../packages/local/src/s3/server';

async function main() {
  const dir = await mkdtemp(join(tmpdir(), 's3m-'));
  const server = await startS3Server({ dir, buckets: ['bench'] });
  const s3 = new S3Client({
    endpoint: server.endpoint,
    region: 'us-east-1',
    credentials: { accessKeyId: 'a', secretAccessKey: 'b' },
    forcePathStyle: true,
    ...(process.env.NOCRC
      ? {
          requestChecksumCalculation: 'WHEN_REQUIRED' as const,
          responseChecksumValidation: 'WHEN_REQUIRED' as const,
        }
      : {}),
  });
  const files = Array.from({ length: 64 }, () => randomBytes(4 << 20));
  const mb = files.length * 4;
  for (let rep = 0; rep < 3; rep++) {
    let next = 0;
    const t0 = performance.now();
    await Promise.all(
      Array.from({ length: 4 }, async () => {
        while (next < files.length) {
          const i = next++;
          await s3.send(
            new PutObjectCommand({ Bucket: 'bench', Key: `f/${rep}/${i}`, Body: files[i] }),
          );
        }
      }),
    );
    const t1 = performance.now();
    next = 0;
    await Promise.all(
      Array.from({ length: 4 }, async () => {
        while (next < files.length) {
          const i = next++;
          const r = await s3.send(new GetObjectCommand({ Bucket: 'bench', Key: `f/${rep}/${i}` }));
          await r.Body!.transformToByteArray();
        }
      }),
    );
    const t2 = performance.now();
    console.log(
      `PUT ${(mb / ((t1 - t0) / 1000)).toFixed(0)} MB/s, GET ${(mb / ((t2 - t1) / 1000)).toFixed(0)} MB/s, PUT+GET ${(mb / ((t2 - t0) / 1000)).toFixed(0)} MB/s`,
    );
  }
  s3.destroy();
  await server.close();
  await rm(dir, { recursive: true, force: true });
}
void main();
