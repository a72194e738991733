import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { join, relative } from 'node:path';
import { promisify } from 'node:util';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateBucketCommand,
  DeleteBucketCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
} from '@aws-sdk/client-s3';

import { tempDir } from '../testing/fixtures';
import { startS3Server, type S3Server } from './server';
import type { ObjectCreatedEvent } from './store';

const run = promisify(execFile);

/** Every file under `dir`, relative to it. */
async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries.filter((e) => e.isFile()).map((e) => relative(dir, join(e.parentPath, e.name)));
}

/** A raw HTTP request to the server (paths exactly as given: no client normalizes them). */
function raw(
  port: number,
  method: string,
  path: string,
  headers: Record<string, string> = {},
  body?: string,
): Promise<{ status: number; body: string }> {
  return new Promise((ok, fail) => {
    const req = request({ host: '127.0.0.1', port, method, path, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        ok({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }),
      );
    });
    req.on('error', fail);
    req.end(body);
  });
}

const SIGNED = {
  authorization:
    'AWS4-HMAC-SHA256 Credential=x/20250101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=0',
};

describe('local S3 store', () => {
  let parent: { path: string; remove: () => Promise<void> };
  let dataDir: string;
  let server: S3Server;
  let s3: S3Client;
  let events: ObjectCreatedEvent[];
  const bucket = 'test-bucket';

  const aws = async (args: string[]): Promise<string> =>
    (
      await run('/usr/bin/aws', ['--endpoint-url', server.endpoint, ...args], {
        env: {
          ...process.env,
          AWS_ACCESS_KEY_ID: 'any',
          AWS_SECRET_ACCESS_KEY: 'thing',
          AWS_DEFAULT_REGION: 'us-east-1',
          AWS_CONFIG_FILE: '/dev/null',
          AWS_SHARED_CREDENTIALS_FILE: '/dev/null',
        },
      })
    ).stdout;
  const body = async (key: string): Promise<string> =>
    (await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }))).Body!.transformToString();

  beforeAll(async () => {
    parent = await tempDir('ba-s3-');
    dataDir = join(parent.path, 'data');
    events = [];
    server = await startS3Server({
      dir: dataDir,
      buckets: [bucket],
      onCreated: (e) => events.push(e),
    });
    s3 = new S3Client({
      endpoint: server.endpoint,
      region: 'us-east-1',
      credentials: { accessKeyId: 'any', secretAccessKey: 'thing' },
      forcePathStyle: true,
    });
  });

  afterAll(async () => {
    s3?.destroy();
    await server?.close();
    await parent?.remove();
  });

  it('keeps traversal keys as keys, inside the data directory (SDK, aws CLI, raw paths)', async () => {
    const keys = [
      '../../escape-sdk.txt',
      'a/../../../escape-2.txt',
      'keys2/dot/../../escape.txt',
      'escape.txt',
    ];
    for (const key of keys) {
      await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: `sdk:${key}` }));
    }
    await writeFile(join(parent.path, 'local.txt'), 'from the aws CLI');
    await aws(['s3', 'cp', join(parent.path, 'local.txt'), `s3://${bucket}/../../escape-cli.txt`]);
    await aws([
      's3api',
      'put-object',
      '--bucket',
      bucket,
      '--key',
      '../../../escape-api.txt',
      '--body',
      join(parent.path, 'local.txt'),
    ]);
    // Encoded forms a client could send: each is the key it decodes to, never a path.
    expect(
      (await raw(server.port, 'PUT', `/${bucket}/..%2F..%2Fescape-enc.txt`, SIGNED, 'enc')).status,
    ).toBe(200);
    expect(
      (await raw(server.port, 'PUT', `/${bucket}/%2E%2E/%2E%2E/escape-dots.txt`, SIGNED, 'dots'))
        .status,
    ).toBe(200);
    expect(
      (await raw(server.port, 'PUT', `/${bucket}/../../escape-raw.txt`, SIGNED, 'raw')).status,
    ).toBe(200);

    for (const key of keys) expect(await body(key)).toBe(`sdk:${key}`);
    expect(await body('../../escape-cli.txt')).toBe('from the aws CLI');
    expect(await body('../../../escape-api.txt')).toBe('from the aws CLI');
    expect(await body('../../escape-enc.txt')).toBe('enc');
    expect(await body('../../escape-dots.txt')).toBe('dots');
    expect(await body('../../escape-raw.txt')).toBe('raw');
    const listed = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: '..' }));
    expect(listed.Contents?.map((o) => o.Key)).toEqual(
      expect.arrayContaining(['../../escape-sdk.txt', '../../escape-raw.txt']),
    );

    await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: '../../escape-sdk.txt' }));
    await aws(['s3', 'rm', `s3://${bucket}/../../escape-cli.txt`]);
    await expect(body('../../escape-sdk.txt')).rejects.toThrow(/does not exist/);
    // Nothing but the data directory (and the CLI's source file) in the parent.
    expect((await readdir(parent.path)).sort()).toEqual(['data', 'local.txt']);
    for (const file of await filesUnder(dataDir)) {
      expect(file).toMatch(
        /^(buckets\/test-bucket\/(bucket\.json|objects\/[0-9a-f]{2}\/[0-9a-f]{64}\.(json|[0-9a-f]{32})))$/,
      );
    }
  });

  it('stores a 1,024-byte key and refuses 1,025 bytes with KeyTooLongError', async () => {
    const key = 'k'.repeat(1024);
    const unicodeKey = `${'é'.repeat(511)}x`; // 1,023 bytes of UTF-8
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: 'long' }));
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: unicodeKey, Body: 'unicode' }));
    await writeFile(join(parent.path, 'empty'), '');
    await aws([
      's3api',
      'put-object',
      '--bucket',
      bucket,
      '--key',
      `cli-${'c'.repeat(1020)}`,
      '--body',
      join(parent.path, 'empty'),
    ]);
    expect(await body(key)).toBe('long');
    expect(await body(unicodeKey)).toBe('unicode');
    expect(
      (await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: `cli-${'c'.repeat(1020)}` })))
        .ContentLength,
    ).toBe(0);
    await expect(
      s3.send(new PutObjectCommand({ Bucket: bucket, Key: `${key}k`, Body: 'x' })),
    ).rejects.toMatchObject({ name: 'KeyTooLongError' });
  });

  it('round-trips unicode, spaces, plus signs and control characters in keys', async () => {
    const keys = [
      'ü/日本語 file+1.exe',
      'emoji/😀 🎉.bin',
      'tab\tand\u0001ctl',
      'x%2Fy',
      'a//b',
      ' lead',
    ];
    for (const key of keys)
      await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: key }));
    for (const key of keys) expect(await body(key)).toBe(key);
    const cli = JSON.parse(
      await aws(['s3api', 'list-objects-v2', '--bucket', bucket, '--prefix', 'emoji/']),
    ) as {
      Contents: { Key: string }[];
    };
    expect(cli.Contents.map((o) => o.Key)).toEqual(['emoji/😀 🎉.bin']);
    const page = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: 'tab' }));
    expect(page.Contents?.map((o) => o.Key)).toEqual(['tab\tand\u0001ctl']);
  });

  it('survives concurrent puts, deletes and lists under one prefix', async () => {
    const prefix = 'race/deep/dir/';
    const work: Promise<unknown>[] = [];
    for (let round = 0; round < 20; round++) {
      for (let i = 0; i < 10; i++) {
        const key = `${prefix}${i}`;
        work.push(s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: `${round}` })));
        work.push(s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: key })));
        work.push(s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix })));
      }
    }
    const outcomes = await Promise.allSettled(work);
    expect(outcomes.filter((o) => o.status === 'rejected')).toEqual([]);
    // A last write per key decides, and what is listed can be read.
    await Promise.all(
      Array.from({ length: 10 }, (_, i) =>
        s3.send(new PutObjectCommand({ Bucket: bucket, Key: `${prefix}${i}`, Body: 'final' })),
      ),
    );
    const listed = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix }));
    expect(listed.KeyCount).toBe(10);
    for (const o of listed.Contents ?? []) expect(await body(o.Key!)).toBe('final');
    // No temp file or stale content left behind.
    expect((await filesUnder(join(dataDir, 'tmp'))).length).toBe(0);
  });

  it('pages lists with prefix, delimiter, continuation tokens (V2) and markers (V1)', async () => {
    const keys = ['list/a/1', 'list/a/2', 'list/b', 'list/c/1', 'list/d', 'list/e'];
    await Promise.all(
      keys.map((Key) => s3.send(new PutObjectCommand({ Bucket: bucket, Key, Body: Key }))),
    );
    const seen: string[] = [];
    let token: string | undefined;
    do {
      const page = await s3.send(
        new ListObjectsV2Command({
          Bucket: bucket,
          Prefix: 'list/',
          Delimiter: '/',
          MaxKeys: 2,
          ContinuationToken: token,
        }),
      );
      seen.push(
        ...(page.CommonPrefixes ?? []).map((p) => p.Prefix!),
        ...(page.Contents ?? []).map((o) => o.Key!),
      );
      token = page.NextContinuationToken;
    } while (token);
    expect(seen.sort()).toEqual(['list/a/', 'list/b', 'list/c/', 'list/d', 'list/e']);
    const v1 = await s3.send(
      new ListObjectsCommand({ Bucket: bucket, Prefix: 'list/', Marker: 'list/b' }),
    );
    expect(v1.Contents?.map((o) => o.Key)).toEqual(['list/c/1', 'list/d', 'list/e']);
    const cli = (await aws(['s3', 'ls', '--recursive', `s3://${bucket}/list/`])).trim().split('\n');
    expect(cli).toHaveLength(6);
  });

  it('applies conditional writes as S3 does: If-None-Match * and If-Match', async () => {
    const put = (Body: string, condition: { IfNoneMatch?: string; IfMatch?: string }) =>
      s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'claimed', Body, ...condition }));
    const first = await put('first', { IfNoneMatch: '*' });

    await expect(put('second', { IfNoneMatch: '*' })).rejects.toMatchObject({
      $metadata: { httpStatusCode: 412 },
    });
    await expect(put('second', { IfMatch: '"other"' })).rejects.toMatchObject({
      $metadata: { httpStatusCode: 412 },
    });
    await expect(
      s3.send(
        new PutObjectCommand({ Bucket: bucket, Key: 'absent', Body: 'x', IfMatch: first.ETag }),
      ),
    ).rejects.toMatchObject({ $metadata: { httpStatusCode: 404 } });
    const read = async () =>
      (
        await s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'claimed' }))
      ).Body!.transformToString();
    expect(await read()).toBe('first');
    await put('third', { IfMatch: first.ETag! });
    expect(await read()).toBe('third');
  });

  it('serves ranges, conditional GETs, copies, batch deletes and multipart uploads', async () => {
    const data = randomBytes(3 * 1024 * 1024);
    await s3.send(
      new PutObjectCommand({
        Bucket: bucket,
        Key: 'blob',
        Body: data,
        Metadata: { filepath: '/x/y' },
      }),
    );
    const ranged = await s3.send(
      new GetObjectCommand({ Bucket: bucket, Key: 'blob', Range: 'bytes=100-199' }),
    );
    expect(Buffer.from(await ranged.Body!.transformToByteArray())).toEqual(data.subarray(100, 200));
    expect(ranged.ContentRange).toBe(`bytes 100-199/${data.length}`);
    const head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: 'blob' }));
    expect(head.Metadata).toEqual({ filepath: '/x/y' });
    await expect(
      s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'blob', IfMatch: '"other"' })),
    ).rejects.toMatchObject({ $metadata: { httpStatusCode: 412 } });
    await expect(
      s3.send(
        new GetObjectCommand({ Bucket: bucket, Key: 'blob', Range: `bytes=${data.length}-` }),
      ),
    ).rejects.toMatchObject({ $metadata: { httpStatusCode: 416 } });

    await s3.send(
      new CopyObjectCommand({ Bucket: bucket, Key: 'copy of blob', CopySource: `${bucket}/blob` }),
    );
    const copied = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'copy of blob' }));
    expect(Buffer.from(await copied.Body!.transformToByteArray()).equals(data)).toBe(true);

    const { UploadId } = await s3.send(
      new CreateMultipartUploadCommand({ Bucket: bucket, Key: 'multi/../part' }),
    );
    const parts = [randomBytes(5 * 1024 * 1024), randomBytes(1000)];
    const etags = await Promise.all(
      parts.map(
        async (Body, i) =>
          (
            await s3.send(
              new UploadPartCommand({
                Bucket: bucket,
                Key: 'multi/../part',
                UploadId,
                PartNumber: i + 1,
                Body,
              }),
            )
          ).ETag!,
      ),
    );
    await s3.send(
      new CompleteMultipartUploadCommand({
        Bucket: bucket,
        Key: 'multi/../part',
        UploadId,
        MultipartUpload: { Parts: etags.map((ETag, i) => ({ ETag, PartNumber: i + 1 })) },
      }),
    );
    const joined = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'multi/../part' }));
    expect(
      Buffer.from(await joined.Body!.transformToByteArray()).equals(Buffer.concat(parts)),
    ).toBe(true);
    expect(events.find((e) => e.key === 'multi/../part')?.eventName).toBe(
      'ObjectCreated:CompleteMultipartUpload',
    );

    // The aws CLI uploads and downloads files over 8 MB in parts and ranges.
    const big = randomBytes(20 * 1024 * 1024);
    await writeFile(join(parent.path, 'big.bin'), big);
    await aws(['s3', 'cp', join(parent.path, 'big.bin'), `s3://${bucket}/big/../big.bin`]);
    await aws(['s3', 'cp', `s3://${bucket}/big/../big.bin`, join(parent.path, 'big-back.bin')]);
    expect((await readFile(join(parent.path, 'big-back.bin'))).equals(big)).toBe(true);

    const deleted = await s3.send(
      new DeleteObjectsCommand({
        Bucket: bucket,
        Delete: { Objects: [{ Key: 'blob' }, { Key: 'copy of blob' }, { Key: 'never<&>' }] },
      }),
    );
    expect(deleted.Deleted?.map((d) => d.Key).sort()).toEqual(['blob', 'copy of blob', 'never<&>']);
    await expect(
      s3.send(new HeadObjectCommand({ Bucket: bucket, Key: 'blob' })),
    ).rejects.toMatchObject({ name: 'NotFound' });
  });

  it('answers request documents full of unclosed tags at once, as MalformedXML', async () => {
    // Prepare: an upload to complete, and documents of 1 MiB whose tags never close.
    const upload = await s3.send(
      new CreateMultipartUploadCommand({ Bucket: bucket, Key: 'xml/unclosed' }),
    );
    const documents = [
      { query: '?delete', xml: `<Delete>${'<Object>'.repeat(128 * 1024)}</Delete>` },
      {
        query: '?delete',
        xml: `<Delete><Object>${'<Key>'.repeat(200 * 1024)}</Object></Delete>`,
      },
      {
        query: '?delete',
        xml: `<Delete><Object><Key>a</Key></Object>${'<Quiet>'.repeat(140 * 1024)}</Delete>`,
      },
      {
        query: `?uploadId=${upload.UploadId}`,
        path: 'xml/unclosed',
        xml: `<CompleteMultipartUpload>${'<Part>'.repeat(170 * 1024)}</CompleteMultipartUpload>`,
      },
    ];

    // Act: each is sent; then a request that needs the store's event loop.
    const answers = [];
    for (const { query, path = '', xml } of documents) {
      answers.push(await raw(server.port, 'POST', `/${bucket}/${path}${query}`, SIGNED, xml));
    }
    const listed = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: 'xml/' }));

    // Assert: each refused as S3 refuses a document that does not validate; the store still serves.
    for (const answer of answers.slice(0, 2)) {
      expect(answer.status).toBe(400);
      expect(answer.body).toContain('<Code>MalformedXML</Code>');
    }
    expect(answers[2]).toMatchObject({ status: 200 });
    expect(answers[3]?.status).toBe(400);
    expect(listed.KeyCount).toBe(0);
  }, 15_000);

  it('completes an upload completed concurrently once; the others find no such upload', async () => {
    // Prepare: an upload of three 5 MiB parts.
    const key = 'multipart/concurrent';
    const { UploadId } = await s3.send(
      new CreateMultipartUploadCommand({ Bucket: bucket, Key: key }),
    );
    const data = randomBytes(15 << 20);
    const parts: { PartNumber: number; ETag: string | undefined }[] = [];
    for (let n = 1; n <= 3; n++) {
      const { ETag } = await s3.send(
        new UploadPartCommand({
          Bucket: bucket,
          Key: key,
          UploadId,
          PartNumber: n,
          Body: data.subarray((n - 1) * (5 << 20), n * (5 << 20)),
        }),
      );
      parts.push({ PartNumber: n, ETag });
    }
    const before = events.length;
    const once = new S3Client({
      endpoint: server.endpoint,
      region: 'us-east-1',
      credentials: { accessKeyId: 'any', secretAccessKey: 'thing' },
      forcePathStyle: true,
      maxAttempts: 1,
    });

    // Act: eight completes at once.
    const outcomes = await Promise.allSettled(
      Array.from({ length: 8 }, () =>
        once.send(
          new CompleteMultipartUploadCommand({
            Bucket: bucket,
            Key: key,
            UploadId,
            MultipartUpload: { Parts: parts },
          }),
        ),
      ),
    );
    once.destroy();

    // Assert: one object, one notification; every other complete is NoSuchUpload, none a 500.
    expect(outcomes.filter((o) => o.status === 'fulfilled')).toHaveLength(1);
    for (const outcome of outcomes) {
      if (outcome.status === 'rejected')
        expect(outcome.reason).toMatchObject({ name: 'NoSuchUpload' });
    }
    expect(events.slice(before).filter((e) => e.key === key)).toHaveLength(1);
    expect(
      Buffer.from(
        await (
          await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }))
        ).Body!.transformToByteArray(),
      ).equals(data),
    ).toBe(true);
  });

  it('refuses to copy an object onto itself unchanged, as S3 does', async () => {
    // Prepare
    const key = 'copy/self';
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: 'same' }));
    const before = events.length;

    // Act
    const unchanged = await s3
      .send(new CopyObjectCommand({ Bucket: bucket, Key: key, CopySource: `${bucket}/${key}` }))
      .catch((error: unknown) => error);
    const replaced = await s3.send(
      new CopyObjectCommand({
        Bucket: bucket,
        Key: key,
        CopySource: `${bucket}/${key}`,
        MetadataDirective: 'REPLACE',
        Metadata: { filepath: '/new' },
      }),
    );

    // Assert: the unchanged copy is InvalidRequest; one with new metadata is a copy (and event).
    expect(unchanged).toMatchObject({
      name: 'InvalidRequest',
      $metadata: { httpStatusCode: 400 },
    });
    expect(replaced.CopyObjectResult?.ETag).toBeDefined();
    expect(events.slice(before).map((e) => e.eventName)).toEqual(['ObjectCreated:Copy']);
  });

  it('refuses a copy source that is not valid percent-encoding with 400 InvalidArgument', async () => {
    // Act
    const answer = await raw(server.port, 'PUT', `/${bucket}/copy/bad-source`, {
      ...SIGNED,
      'x-amz-copy-source': `/${bucket}/%E0%A4%A`,
    });

    // Assert: the client's error (not a 500 the SDKs retry).
    expect(answer.status).toBe(400);
    expect(answer.body).toContain('<Code>InvalidArgument</Code>');
  });

  it('stores objects in a bucket deleted and created again under the same name', async () => {
    // Prepare: a bucket that held a key, then was emptied and deleted, then created again.
    const again = 'again-bucket';
    const key = 'in/a/shard';
    await s3.send(new CreateBucketCommand({ Bucket: again }));
    await s3.send(new PutObjectCommand({ Bucket: again, Key: key, Body: 'first' }));
    await s3.send(new DeleteObjectCommand({ Bucket: again, Key: key }));
    await s3.send(new DeleteBucketCommand({ Bucket: again }));
    await s3.send(new CreateBucketCommand({ Bucket: again }));

    // Act: the same key (so the same shard directory) again.
    await s3.send(new PutObjectCommand({ Bucket: again, Key: key, Body: 'second' }));

    // Assert
    const stored = await s3.send(new GetObjectCommand({ Bucket: again, Key: key }));
    expect(await stored.Body!.transformToString()).toBe('second');
  });

  it('checks the Content-MD5 of a part, as of an object', async () => {
    // Prepare: an upload, and a part sent with the MD5 of other bytes.
    const key = 'multipart/md5';
    const { UploadId } = await s3.send(
      new CreateMultipartUploadCommand({ Bucket: bucket, Key: key }),
    );
    const md5Of = (text: string) => createHash('md5').update(text).digest('base64');

    // Act
    const answer = await raw(
      server.port,
      'PUT',
      `/${bucket}/${key}?uploadId=${UploadId}&partNumber=1`,
      { ...SIGNED, 'content-md5': md5Of('what was meant') },
      'what arrived',
    );
    const right = await raw(
      server.port,
      'PUT',
      `/${bucket}/${key}?uploadId=${UploadId}&partNumber=2`,
      { ...SIGNED, 'content-md5': md5Of('what arrived') },
      'what arrived',
    );

    // Assert: the mismatch refused as S3 refuses it; a matching part stored.
    expect(answer.status).toBe(400);
    expect(answer.body).toContain('<Code>BadDigest</Code>');
    expect(right.status).toBe(200);
  });

  it('refuses to complete an upload whose parts before the last are under 5 MiB, as S3 does', async () => {
    // Prepare: two parts of 1 KiB.
    const key = 'multipart/small';
    const before = events.length;
    const { UploadId } = await s3.send(
      new CreateMultipartUploadCommand({ Bucket: bucket, Key: key }),
    );
    const parts = [];
    for (const PartNumber of [1, 2]) {
      const { ETag } = await s3.send(
        new UploadPartCommand({
          Bucket: bucket,
          Key: key,
          UploadId,
          PartNumber,
          Body: randomBytes(1024),
        }),
      );
      parts.push({ PartNumber, ETag });
    }

    // Act
    const completed = await s3
      .send(
        new CompleteMultipartUploadCommand({
          Bucket: bucket,
          Key: key,
          UploadId,
          MultipartUpload: { Parts: parts },
        }),
      )
      .catch((error: unknown) => error);

    // Assert: EntityTooSmall; nothing stored or notified, and the upload can still be aborted.
    expect(completed).toMatchObject({ name: 'EntityTooSmall', $metadata: { httpStatusCode: 400 } });
    expect(events.length).toBe(before);
    await s3.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId }));
  });

  it('refuses user metadata over 2 KB with MetadataTooLarge, as S3 does', async () => {
    // Prepare: 2,049 bytes of metadata (names and values), and exactly 2,048.
    const tooLarge = { filepath: 'C:/'.repeat(679) + 'x.', a: 'b' };
    const largest = { filepath: 'C:/'.repeat(679) + 'x', a: 'b' };

    // Act
    const refused = await Promise.all([
      s3
        .send(
          new PutObjectCommand({ Bucket: bucket, Key: 'meta/put', Body: 'x', Metadata: tooLarge }),
        )
        .catch((error: unknown) => error),
      s3
        .send(
          new CreateMultipartUploadCommand({ Bucket: bucket, Key: 'meta/mpu', Metadata: tooLarge }),
        )
        .catch((error: unknown) => error),
    ]);
    await s3.send(
      new PutObjectCommand({ Bucket: bucket, Key: 'meta/ok', Body: 'x', Metadata: largest }),
    );

    // Assert
    for (const error of refused) {
      expect(error).toMatchObject({ name: 'MetadataTooLarge', $metadata: { httpStatusCode: 400 } });
    }
    const head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: 'meta/ok' }));
    expect(head.Metadata).toEqual(largest);
  });

  it('lists nothing and nothing more for max-keys=0, as S3 does', async () => {
    // Prepare
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'zero/a', Body: 'a' }));

    // Act
    const v2 = await s3.send(
      new ListObjectsV2Command({ Bucket: bucket, Prefix: 'zero/', MaxKeys: 0 }),
    );
    const v1 = await s3.send(
      new ListObjectsCommand({ Bucket: bucket, Prefix: 'zero/', MaxKeys: 0 }),
    );

    // Assert: not truncated (it was, with no token or marker to go on from).
    expect(v2).toMatchObject({ KeyCount: 0, IsTruncated: false });
    expect(v2.NextContinuationToken).toBeUndefined();
    expect(v1.IsTruncated).toBe(false);
    expect(v1.NextMarker).toBeUndefined();
  });

  it('answers character references that name no character as MalformedXML', async () => {
    // Prepare: keys whose references are past U+10FFFF or far past any number.
    const documents = ['&#x110000;', '&#99999999999999999999;'].map(
      (reference) => `<Delete><Object><Key>k${reference}</Key></Object></Delete>`,
    );

    // Act
    const answers = await Promise.all(
      documents.map((xml) => raw(server.port, 'POST', `/${bucket}?delete`, SIGNED, xml)),
    );

    // Assert: the client's error, as S3 answers a document it cannot read (not a 500).
    for (const answer of answers) {
      expect(answer.status).toBe(400);
      expect(answer.body).toContain('<Code>MalformedXML</Code>');
    }
  });

  it('refuses a PUT whose aws-chunked framing is broken with 400 IncompleteBody, storing nothing', async () => {
    // Prepare: a size line that is not hex, and a body cut off inside a chunk.
    const before = events.length;
    const streaming = { ...SIGNED, 'x-amz-content-sha256': 'STREAMING-UNSIGNED-PAYLOAD-TRAILER' };

    // Act
    const answers = [
      await raw(
        server.port,
        'PUT',
        `/${bucket}/chunked/bad-size`,
        streaming,
        'zz\r\nabc\r\n0\r\n\r\n',
      ),
      await raw(server.port, 'PUT', `/${bucket}/chunked/cut`, streaming, '10\r\nshort'),
    ];

    // Assert: the client's error, as S3 answers it (not a 500 the SDKs retry); nothing stored.
    for (const answer of answers) {
      expect(answer.status).toBe(400);
      expect(answer.body).toContain('<Code>IncompleteBody</Code>');
    }
    const listed = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: 'chunked/' }));
    expect(listed.KeyCount).toBe(0);
    expect(events.length).toBe(before);
  });

  it('reports each created object once with its key and size', async () => {
    const before = events.length;
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'events/x y+z', Body: 'abc' }));
    expect(events.slice(before)).toEqual([
      expect.objectContaining({
        bucket,
        key: 'events/x y+z',
        size: 3,
        eventName: 'ObjectCreated:Put',
      }),
    ]);
  });

  it('refuses form POSTs, foreign Host headers, Origin headers and unsigned writes', async () => {
    const form = await raw(
      server.port,
      'POST',
      `/${bucket}`,
      {
        'content-type': 'multipart/form-data; boundary=x',
        origin: 'http://evil.example',
      },
      '--x\r\nContent-Disposition: form-data; name="key"\r\n\r\n../../pwn\r\n--x--\r\n',
    );
    expect(form.status).toBe(403);
    const rebound = await raw(server.port, 'GET', `/${bucket}?list-type=2`, {
      host: 'evil.example',
    });
    expect(rebound).toEqual({
      status: 403,
      body: expect.stringContaining('is not this machine') as string,
    });
    expect((await raw(server.port, 'PUT', `/${bucket}/unsigned`, {}, 'x')).status).toBe(403);
    expect(
      (
        await raw(
          server.port,
          'PUT',
          `/${bucket}/page`,
          { ...SIGNED, origin: 'http://evil.example' },
          'x',
        )
      ).status,
    ).toBe(403);
    await expect(body('unsigned')).rejects.toThrow(/does not exist/);
  });

  it('keeps objects across a restart and drops what a crash left half-written', async () => {
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'persist/me', Body: 'kept' }));
    const shard = join(dataDir, 'buckets', bucket, 'objects', 'ab');
    await writeFile(join(dataDir, 'tmp', 'half-upload'), 'partial');
    const orphan = `ab${'0'.repeat(62)}.${'f'.repeat(32)}`;
    await mkdir(shard, { recursive: true });
    await writeFile(join(shard, orphan), 'orphan content');
    await server.close();
    server = await startS3Server({ dir: dataDir, port: server.port });
    expect(await body('persist/me')).toBe('kept');
    expect(await filesUnder(join(dataDir, 'tmp'))).toEqual([]);
    expect(await readdir(shard)).not.toContain(orphan);
  });
});
