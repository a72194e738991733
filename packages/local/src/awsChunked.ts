import { Transform, type TransformCallback } from 'node:stream';

/** A request body in aws-chunked framing that cannot be decoded. */
export class ChunkedEncodingError extends Error {
  override readonly name = 'ChunkedEncodingError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

const MAX_LINE = 8192;

/** Whether a request body is in aws-chunked framing (SigV4 streaming, with or without trailers). */
export function isAwsChunked(headers: Record<string, string | string[] | undefined>): boolean {
  const sha = headers['x-amz-content-sha256'];
  const encoding = headers['content-encoding'];
  return (
    (typeof sha === 'string' && sha.startsWith('STREAMING-')) ||
    (typeof encoding === 'string' &&
      encoding.split(',').some((part) => part.trim().toLowerCase() === 'aws-chunked'))
  );
}

/** The content-encoding header without `aws-chunked` (undefined when nothing else is left). */
export function remainingContentEncoding(encoding: string | undefined): string | undefined {
  if (!encoding) return undefined;
  const rest = encoding
    .split(',')
    .map((part) => part.trim())
    .filter((part) => part && part.toLowerCase() !== 'aws-chunked');
  return rest.length > 0 ? rest.join(',') : undefined;
}

/**
 * Decodes aws-chunked framing (`<hex size>[;chunk-signature=...]\r\n<data>\r\n ... 0\r\n<trailers>\r\n\r\n`)
 * into the object's bytes. Chunk signatures and trailing checksums are not verified.
 */
export class AwsChunkedDecoder extends Transform {
  private state: 'size' | 'data' | 'data-end' | 'trailer' | 'done' = 'size';
  private line = '';
  private remaining = 0;
  /** Bytes of trailer lines so far: all of them are kept, so they are bounded as one line is. */
  private trailerBytes = 0;
  /** Trailing headers (e.g. `x-amz-checksum-crc32`), available after the stream ends. */
  readonly trailers: Record<string, string> = {};

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    try {
      this.consume(chunk);
      callback();
    } catch (error) {
      callback(error as Error);
    }
  }

  override _flush(callback: TransformCallback): void {
    // A body that ends right after the last chunk's trailers without the final blank line is accepted.
    if (this.state === 'done' || (this.state === 'trailer' && this.line === '')) callback();
    else callback(new ChunkedEncodingError(`aws-chunked body ended early (in ${this.state})`));
  }

  private consume(chunk: Buffer): void {
    let offset = 0;
    while (offset < chunk.length) {
      if (this.state === 'data') {
        const take = Math.min(this.remaining, chunk.length - offset);
        this.push(chunk.subarray(offset, offset + take));
        offset += take;
        this.remaining -= take;
        if (this.remaining === 0) this.state = 'data-end';
        continue;
      }
      if (this.state === 'done') return; // ignore anything after the terminating blank line
      const newline = chunk.indexOf(0x0a, offset);
      const end = newline === -1 ? chunk.length : newline + 1;
      this.line += chunk.toString('latin1', offset, end);
      offset = end;
      if (this.line.length > MAX_LINE) throw new ChunkedEncodingError('aws-chunked line too long');
      if (newline === -1) continue;
      const text = this.line.replace(/\r?\n$/, '');
      this.line = '';
      this.onLine(text);
    }
  }

  private onLine(text: string): void {
    switch (this.state) {
      case 'data-end':
        if (text !== '') throw new ChunkedEncodingError('aws-chunked data not followed by CRLF');
        this.state = 'size';
        return;
      case 'size': {
        const sizeText = text.split(';')[0]?.trim() ?? '';
        if (!/^[0-9a-fA-F]+$/.test(sizeText)) {
          throw new ChunkedEncodingError(
            `invalid aws-chunked size line: ${JSON.stringify(text.slice(0, 80))}`,
          );
        }
        this.remaining = parseInt(sizeText, 16);
        this.state = this.remaining === 0 ? 'trailer' : 'data';
        return;
      }
      case 'trailer': {
        if (text === '') {
          this.state = 'done';
          return;
        }
        this.trailerBytes += text.length;
        if (this.trailerBytes > MAX_LINE)
          throw new ChunkedEncodingError('aws-chunked trailers too long');
        const colon = text.indexOf(':');
        if (colon > 0)
          this.trailers[text.slice(0, colon).trim().toLowerCase()] = text.slice(colon + 1).trim();
        return;
      }
      default:
        return;
    }
  }
}
