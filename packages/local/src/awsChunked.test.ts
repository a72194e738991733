import { Readable } from 'node:stream';

import {
  AwsChunkedDecoder,
  ChunkedEncodingError,
  isAwsChunked,
  remainingContentEncoding,
} from './awsChunked';

async function decode(
  pieces: Buffer[],
): Promise<{ data: Buffer; trailers: Record<string, string> }> {
  const decoder = new AwsChunkedDecoder();
  const out: Buffer[] = [];
  for await (const chunk of Readable.from(pieces).pipe(decoder)) out.push(chunk as Buffer);
  return { data: Buffer.concat(out), trailers: decoder.trailers };
}

/** Splits a buffer into pieces of `size` bytes, so framing straddles chunk boundaries. */
function split(buffer: Buffer, size: number): Buffer[] {
  const pieces: Buffer[] = [];
  for (let i = 0; i < buffer.length; i += size) pieces.push(buffer.subarray(i, i + size));
  return pieces;
}

describe('AwsChunkedDecoder', () => {
  const payload = Buffer.from('MZ\r\n\x00binary\r\n0\r\n'.repeat(700), 'latin1');

  it('decodes unsigned chunks with a trailing checksum (SDK v3 default)', async () => {
    const body = Buffer.concat([
      Buffer.from(`${(8000).toString(16)}\r\n`),
      payload.subarray(0, 8000),
      Buffer.from(`\r\n${(payload.length - 8000).toString(16)}\r\n`),
      payload.subarray(8000),
      Buffer.from('\r\n0\r\nx-amz-checksum-crc32:AAAAAA==\r\n\r\n'),
    ]);
    for (const size of [1, 7, 4096, body.length]) {
      const { data, trailers } = await decode(split(body, size));
      expect(data.equals(payload)).toBe(true);
      expect(trailers).toEqual({ 'x-amz-checksum-crc32': 'AAAAAA==' });
    }
  });

  it('decodes signed chunks (STREAMING-AWS4-HMAC-SHA256-PAYLOAD)', async () => {
    const sig = 'chunk-signature=' + 'a'.repeat(64);
    const body = Buffer.concat([
      Buffer.from(`${payload.length.toString(16)};${sig}\r\n`),
      payload,
      Buffer.from(`\r\n0;${sig}\r\n\r\n`),
    ]);
    expect((await decode(split(body, 100))).data.equals(payload)).toBe(true);
  });

  it('rejects a body cut off inside a chunk', async () => {
    await expect(decode([Buffer.from('10\r\nshort')])).rejects.toThrow(ChunkedEncodingError);
  });

  it('rejects a malformed size line', async () => {
    await expect(decode([Buffer.from('zz\r\nabc\r\n0\r\n\r\n')])).rejects.toThrow(
      ChunkedEncodingError,
    );
  });

  it('rejects a flood of trailers instead of keeping them', async () => {
    // Prepare: the last chunk, then 256 Ki distinct trailing headers (6 MiB).
    const decoder = new AwsChunkedDecoder();
    function* body(): Generator<Buffer> {
      yield Buffer.from('3\r\nabc\r\n0\r\n');
      for (let i = 0; i < 256 * 1024; i += 1024) {
        yield Buffer.from(
          Array.from({ length: 1024 }, (_, j) => `x-amz-meta-${i + j}:value\r\n`).join(''),
        );
      }
    }

    // Act
    const decoded = (async () => {
      for await (const _ of Readable.from(body()).pipe(decoder));
    })();

    // Assert: refused once the trailers are past what one line may hold, as a long line is.
    await expect(decoded).rejects.toThrow(ChunkedEncodingError);
    expect(Object.keys(decoder.trailers).length).toBeLessThan(1024);
  });

  it('recognises aws-chunked requests and keeps other content encodings', () => {
    expect(isAwsChunked({ 'x-amz-content-sha256': 'STREAMING-UNSIGNED-PAYLOAD-TRAILER' })).toBe(
      true,
    );
    expect(isAwsChunked({ 'content-encoding': 'gzip, aws-chunked' })).toBe(true);
    expect(isAwsChunked({ 'x-amz-content-sha256': 'UNSIGNED-PAYLOAD' })).toBe(false);
    expect(remainingContentEncoding('aws-chunked,gzip')).toBe('gzip');
    expect(remainingContentEncoding('aws-chunked')).toBeUndefined();
  });
});
