import { randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { readFile, readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import {
  CreateBucketCommand,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
} from '@aws-sdk/client-s3';
import { clientConfig, startS3, uniqueName, type Emulator } from '@binaryalert/testing';
import {
  downloadBytes,
  downloadError,
  downloadForScan,
  downloadObject,
  IN_MEMORY_BYTES,
  privateTempDir,
} from './download';
import { DownloadError, ObjectAccessDeniedError, ObjectMissingError } from './errors';

describe('downloadObject', () => {
  let s3: Emulator<S3Client>;
  let bucket: string;
  let temp: Awaited<ReturnType<typeof privateTempDir>>;

  beforeAll(async () => {
    s3 = await startS3();
  });
  afterAll(async () => {
    await s3.stop();
  });
  beforeEach(async () => {
    bucket = uniqueName('download');
    await s3.client.send(new CreateBucketCommand({ Bucket: bucket }));
    temp = await privateTempDir();
  });
  afterEach(async () => {
    await temp.remove();
  });

  const put = (key: string, body: Buffer | string, metadata?: Record<string, string>) =>
    s3.client.send(
      new PutObjectCommand({
        Bucket: bucket,
        Key: key,
        Body: body,
        ...(metadata ? { Metadata: metadata } : {}),
      }),
    );

  it('streams the object into a private file and returns its metadata', async () => {
    const content = Buffer.alloc(300_000, 7);
    const key = 'dir with space/ünï 文件+plus.exe';
    await put(key, content, { filepath: 'C:/Windows/evil.exe' });

    const result = await downloadObject(s3.client, { bucket, key }, temp.dir, 1 << 20);

    if (result.kind !== 'downloaded') throw new Error(`unexpected ${result.kind}`);
    expect(await readFile(result.file)).toEqual(content);
    expect((await stat(result.file)).mode & 0o777).toBe(0o600);
    expect((await stat(temp.dir)).mode & 0o777).toBe(0o700);
    expect(result.size).toBe(content.length);
    expect(result.metadata).toEqual({ filepath: 'C:/Windows/evil.exe' });
    expect(new Date(result.lastModified).getTime()).toBeGreaterThan(Date.now() - 60_000);
    expect(result.downloadMs).toBeGreaterThanOrEqual(0);
  });

  it('skips an object whose event size is too large without requesting it', async () => {
    // The object does not even exist: a request would fail with ObjectMissingError.
    const result = await downloadObject(
      s3.client,
      { bucket, key: 'never-requested', size: 101 },
      temp.dir,
      100,
    );

    expect(result).toEqual({ kind: 'too-large', size: 101 });
  });

  it('skips an object whose Content-Length is too large without writing it', async () => {
    await put('big.bin', Buffer.alloc(5000));

    const result = await downloadObject(s3.client, { bucket, key: 'big.bin' }, temp.dir, 4999);

    expect(result).toEqual({ kind: 'too-large', size: 5000 });
    expect(await readdir(temp.dir)).toEqual([]);
  });

  it('downloads an empty object', async () => {
    await put('empty', '');

    const result = await downloadObject(s3.client, { bucket, key: 'empty' }, temp.dir, 10);

    expect(result).toMatchObject({ kind: 'downloaded', size: 0 });
  });

  it('writes an object of several staging buffers and an odd tail byte for byte', async () => {
    const content = Buffer.from(
      Array.from({ length: (5 << 20) / 2 + 3 }, (_, i) => (i * 2654435761) >>> 24),
    );
    await put('staged.bin', content);

    const result = await downloadObject(
      s3.client,
      { bucket, key: 'staged.bin' },
      temp.dir,
      8 << 20,
    );

    if (result.kind !== 'downloaded') throw new Error(`unexpected ${result.kind}`);
    expect(result.size).toBe(content.length);
    expect((await readFile(result.file)).equals(content)).toBe(true);
  });

  it('fails clearly when the body ends before its Content-Length (a dropped connection), on disk or in memory', async () => {
    await put('cut.bin', Buffer.alloc(300_000, 3));
    const client = new S3Client(clientConfig(s3.endpoint));
    client.middlewareStack.add(
      (next) => async (args) => {
        const result = await next(args);
        const output = result.output as { Body?: unknown };
        const body = output.Body;
        if (body instanceof Readable) {
          output.Body = Readable.from(
            (async function* () {
              for await (const chunk of body as AsyncIterable<Buffer>) {
                yield chunk.subarray(0, 1000);
                return;
              }
            })(),
          );
        }
        return result;
      },
      { step: 'finalizeRequest', name: 'cut' },
    );

    const error = await downloadObject(client, { bucket, key: 'cut.bin' }, temp.dir, 1 << 20).catch(
      (e: unknown) => e,
    );

    // The same cut body read into memory (an object the event calls small).
    const inMemory = await downloadForScan(
      client,
      { bucket, key: 'cut.bin', size: 300_000 },
      1 << 20,
      { tempRoot: temp.dir },
    ).catch((e: unknown) => e);

    expect(error).toBeInstanceOf(DownloadError);
    expect(String((error as Error).cause)).toContain('got 1000 of 300000 bytes');
    expect(inMemory).toBeInstanceOf(DownloadError);
    expect(String((inMemory as Error).cause)).toContain('got 1000 of 300000 bytes');
    client.destroy();
  });

  it('reports a missing key or bucket as ObjectMissingError naming the object', async () => {
    const missingKey = await downloadObject(
      s3.client,
      { bucket, key: 'gone.exe' },
      temp.dir,
      100,
    ).catch((error: unknown) => error);
    const missingBucket = await downloadObject(
      s3.client,
      { bucket: uniqueName('nobucket'), key: 'x' },
      temp.dir,
      100,
    ).catch((error: unknown) => error);

    expect(missingKey).toBeInstanceOf(ObjectMissingError);
    expect(missingKey).toMatchObject({ message: `S3:${bucket}:gone.exe does not exist` });
    expect(missingBucket).toBeInstanceOf(ObjectMissingError);
  });

  describe('downloadBytes (small objects, in memory)', () => {
    it('reads the object into memory with its ETag and metadata, writing nothing', async () => {
      const content = Buffer.from(Array.from({ length: 70_001 }, (_, i) => i % 251));
      await put('mem/ü.bin', content, { filepath: '/tmp/x.bin' });

      const result = await downloadBytes(s3.client, { bucket, key: 'mem/ü.bin' }, 100_000);

      if (result.kind !== 'downloaded') throw new Error(`unexpected ${result.kind}`);
      expect(result.bytes.equals(content)).toBe(true);
      expect(result.etag).toMatch(/^"[0-9a-f]+"$/);
      expect(result.metadata).toEqual({ filepath: '/tmp/x.bin' });
      expect(await readdir(temp.dir)).toEqual([]);
    });

    it('refuses other bytes than the ETag asked for (the object was replaced) with a clear DownloadError', async () => {
      await put('swap', 'first');
      const first = await downloadBytes(s3.client, { bucket, key: 'swap' }, 100);
      if (first.kind !== 'downloaded') throw new Error(`unexpected ${first.kind}`);
      await put('swap', 'second');

      const error = await downloadBytes(s3.client, { bucket, key: 'swap' }, 100, first.etag).catch(
        (caught: unknown) => caught,
      );

      expect(error).toBeInstanceOf(DownloadError);
      // S3's 412: If-Match failed.
      expect((error as Error).cause).toMatchObject({ name: 'PreconditionFailed' });
    });

    it('reads a body sent without a Content-Length whole, and stops one that grows past the limit', async () => {
      // S3 always announces the length; a server that streams chunked must still work.
      const content = Buffer.from(Array.from({ length: 150_000 }, (_, i) => (i * 7) % 256));
      const server = createServer((_req, res) => {
        res.writeHead(200, { 'content-type': 'application/octet-stream', etag: '"e"' });
        for (let at = 0; at < content.length; at += 40_000)
          res.write(content.subarray(at, at + 40_000));
        res.end();
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      const endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      const chunked = new S3Client(clientConfig(endpoint));
      try {
        const whole = await downloadBytes(chunked, { bucket, key: 'chunked' }, 200_000);
        if (whole.kind !== 'downloaded') throw new Error(`unexpected ${whole.kind}`);
        expect(whole.bytes.equals(content)).toBe(true);
        expect(await downloadBytes(chunked, { bucket, key: 'chunked' }, 100_000)).toMatchObject({
          kind: 'too-large',
        });
      } finally {
        chunked.destroy();
        server.closeAllConnections();
        await new Promise((resolve) => server.close(resolve));
      }
    });

    it('is too large by the event size (no request), by Content-Length, and missing objects are ObjectMissingError', async () => {
      await put('big', Buffer.alloc(5000));

      expect(await downloadBytes(s3.client, { bucket, key: 'not-there', size: 101 }, 100)).toEqual({
        kind: 'too-large',
        size: 101,
      });
      expect(await downloadBytes(s3.client, { bucket, key: 'big' }, 4999)).toEqual({
        kind: 'too-large',
        size: 5000,
      });
      await expect(downloadBytes(s3.client, { bucket, key: 'not-there' }, 100)).rejects.toThrow(
        ObjectMissingError,
      );
    });
  });

  describe('downloadForScan (memory or a private file, by the event size)', () => {
    it('reads an object the event calls small into memory and creates nothing under the temp root', async () => {
      const content = Buffer.from(Array.from({ length: 300_001 }, (_, i) => (i * 13) % 256));
      await put('small.bin', content, { filepath: 'C:/x.exe' });

      const result = await downloadForScan(
        s3.client,
        { bucket, key: 'small.bin', size: content.length },
        1 << 30,
        { tempRoot: temp.dir },
      );

      if (result.kind !== 'downloaded') throw new Error(`unexpected ${result.kind}`);
      expect(Buffer.isBuffer(result.source)).toBe(true);
      expect((result.source as Buffer).equals(content)).toBe(true);
      expect(result).toMatchObject({ size: content.length, tempDir: temp.dir });
      expect(result.metadata).toEqual({ filepath: 'C:/x.exe' });
      expect(new Date(result.lastModified).getTime()).toBeGreaterThan(Date.now() - 60_000);
      expect(await readdir(temp.dir)).toEqual([]);
    });

    it.each([
      ['the event gives no size', undefined],
      ['the event says it is at the memory bound', 100_000],
      // Replaced by a larger object after the event: not cut off, not skipped.
      ['the object grew past the memory bound since the event', 10],
    ])(
      'writes the object to a private file, removed with its directory, when %s',
      async (_why, size) => {
        const content = randomBytes(100_005);
        await put('large.bin', content);

        const result = await downloadForScan(
          s3.client,
          { bucket, key: 'large.bin', ...(size === undefined ? {} : { size }) },
          1 << 30,
          { tempRoot: temp.dir, inMemoryBytes: 100_000 },
        );

        if (result.kind !== 'downloaded') throw new Error(`unexpected ${result.kind}`);
        if (typeof result.source !== 'string') throw new Error('expected a file');
        expect((await readFile(result.source)).equals(content)).toBe(true);
        expect(await readdir(temp.dir)).toEqual([path.basename(result.tempDir)]);
        expect((await stat(result.tempDir)).mode & 0o777).toBe(0o700);
        await result.remove();
        await result.remove();
        expect(await readdir(temp.dir)).toEqual([]);
      },
    );

    it('is too large, writing nothing, when a small-looking object grew past the maximum size', async () => {
      await put('grown.bin', Buffer.alloc(5000));

      const result = await downloadForScan(
        s3.client,
        { bucket, key: 'grown.bin', size: 10 },
        4999,
        { tempRoot: temp.dir },
      );

      expect(result).toEqual({ kind: 'too-large', size: 5000 });
      expect(await readdir(temp.dir)).toEqual([]);
    });

    it('asks S3 when the event says too large: the key may hold smaller bytes since', async () => {
      await put('replaced.bin', Buffer.from('small now'));
      await put('still-big.bin', Buffer.alloc(6000));

      const replaced = await downloadForScan(
        s3.client,
        { bucket, key: 'replaced.bin', size: 5000 },
        4999,
        { tempRoot: temp.dir },
      );
      const stillBig = await downloadForScan(
        s3.client,
        { bucket, key: 'still-big.bin', size: 5000 },
        4999,
        { tempRoot: temp.dir },
      );

      expect(replaced).toMatchObject({ kind: 'downloaded', size: 9 });
      expect(stillBig).toEqual({ kind: 'too-large', size: 6000 });
      if (replaced.kind === 'downloaded') await replaced.remove();
      expect(await readdir(temp.dir)).toEqual([]);
    });

    it('leaves no directory behind when the download fails', async () => {
      const error = await downloadForScan(
        s3.client,
        { bucket, key: 'gone', size: IN_MEMORY_BYTES },
        1 << 30,
        { tempRoot: temp.dir },
      ).catch((caught: unknown) => caught);

      expect(error).toBeInstanceOf(ObjectMissingError);
      expect(await readdir(temp.dir)).toEqual([]);
    });
  });

  describe('in parallel ranged parts', () => {
    const ranged = { thresholdBytes: 100_000, partBytes: 64_000, partsInFlight: 3 };
    const content = Buffer.from(
      Array.from({ length: 1_000_003 }, (_, i) => (i * 2654435761) >>> 24),
    );
    /** A client of the same server whose requests a test can watch and whose responses it can alter. */
    function watchedClient(
      onRequest: (range: string | undefined) => Promise<void> = () => Promise.resolve(),
      alterBody: (range: string, body: Readable) => Readable = (_range, body) => body,
    ): { client: S3Client; ranges: string[] } {
      const client = new S3Client(clientConfig(s3.endpoint));
      const ranges: string[] = [];
      client.middlewareStack.add(
        (next) => async (args) => {
          const request = args.request as { headers: Record<string, string> };
          const range = request.headers.range;
          if (range) ranges.push(range);
          await onRequest(range);
          const result = await next(args);
          const output = result.output as { Body?: unknown };
          if (range && output.Body instanceof Readable) output.Body = alterBody(range, output.Body);
          return result;
        },
        { step: 'finalizeRequest', name: 'watch' },
      );
      return { client, ranges };
    }

    it('writes every part at its offset: the same bytes as one stream', async () => {
      await put('large.bin', content, { filepath: '/x/large.bin' });
      const { client, ranges } = watchedClient();

      const result = await downloadObject(
        client,
        { bucket, key: 'large.bin', size: content.length },
        temp.dir,
        10 << 20,
        ranged,
      );

      if (result.kind !== 'downloaded') throw new Error(`unexpected ${result.kind}`);
      expect((await readFile(result.file)).equals(content)).toBe(true);
      expect(result).toMatchObject({
        size: content.length,
        metadata: { filepath: '/x/large.bin' },
      });
      expect(ranges).toHaveLength(Math.ceil(content.length / ranged.partBytes));
      expect(ranges).toContain('bytes=0-63999');
      expect(ranges).toContain(`bytes=960000-${content.length - 1}`);
    });

    it('fails clearly when the object is replaced between its parts', async () => {
      await put('changing.bin', content);
      let replaced = false;
      const { client } = watchedClient(async (range) => {
        if (!replaced && range !== undefined && !range.startsWith('bytes=0-')) {
          replaced = true;
          await put('changing.bin', Buffer.alloc(content.length, 1));
        }
      });

      const error = await downloadObject(
        client,
        { bucket, key: 'changing.bin', size: content.length },
        temp.dir,
        10 << 20,
        ranged,
      ).catch((e: unknown) => e);

      expect(error).toBeInstanceOf(DownloadError);
      expect(String((error as Error).cause)).toContain('the object changed during the download');
    });

    it('fails clearly when a part comes back short (a dropped connection)', async () => {
      await put('short.bin', content);
      const { client } = watchedClient(undefined, (range, body) =>
        range === 'bytes=128000-191999'
          ? Readable.from(
              (async function* () {
                let sent = 0;
                for await (const chunk of body as AsyncIterable<Buffer>) {
                  const left = 1000 - sent;
                  if (left <= 0) break;
                  yield chunk.subarray(0, left);
                  sent += Math.min(left, chunk.length);
                }
              })(),
            )
          : body,
      );

      const error = await downloadObject(
        client,
        { bucket, key: 'short.bin', size: content.length },
        temp.dir,
        10 << 20,
        ranged,
      ).catch((e: unknown) => e);

      expect(error).toBeInstanceOf(DownloadError);
      expect(String((error as Error).cause)).toContain(
        'bytes 128000-191999: got 1000 of 64000 bytes',
      );
    });

    it('finds a too-large object from the first part and stops', async () => {
      await put('grown.bin', content);

      const result = await downloadObject(
        s3.client,
        // The event said small enough; the object (replaced since) is larger.
        { bucket, key: 'grown.bin', size: 200_000 },
        temp.dir,
        500_000,
        ranged,
      );

      expect(result).toEqual({ kind: 'too-large', size: content.length });
    });
  });
});

describe('downloadError', () => {
  const serviceError = (name: string, status: number) =>
    new S3ServiceException({ name, $fault: 'client', $metadata: { httpStatusCode: status } });

  it.each([
    ['NoSuchKey', 404, ObjectMissingError],
    ['NotFound', 404, ObjectMissingError],
    ['Unknown', 404, ObjectMissingError],
    ['AccessDenied', 403, ObjectAccessDeniedError],
    ['Forbidden', 403, ObjectAccessDeniedError],
    ['PreconditionFailed', 412, DownloadError],
    ['SlowDown', 503, DownloadError],
    ['InternalError', 500, DownloadError],
  ])('maps %s (%d) to the right error', (name, status, expected) => {
    const error = downloadError('S3:b:k', serviceError(name, status));

    expect(error).toBeInstanceOf(expected);
    expect(error.cause).toBeInstanceOf(S3ServiceException);
  });

  it('treats network errors as retryable', () => {
    expect(
      downloadError('S3:b:k', Object.assign(new Error('reset'), { code: 'ECONNRESET' })),
    ).toBeInstanceOf(DownloadError);
  });
});
