// The store's file primitives: fresh names, a temp directory whose files are renamed into place,
// and streaming a request body to disk with its Content-Length and Content-MD5 checked.
import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Transform, type Readable, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';

import { S3Error } from './errors';

/** Buffer size of the store's file reads and writes. */
export const WRITE_BUFFER = 1 << 20;

/** A fresh random name: object versions, upload ids, ETags, temp files. */
export function newVersion(): string {
  return randomBytes(16).toString('hex');
}

/** Counts the bytes of a stream as they pass and hashes them only when asked (Content-MD5). */
class Meter extends Transform {
  bytes = 0;
  private readonly md5;
  constructor(wantMd5: boolean) {
    super();
    this.md5 = wantMd5 ? createHash('md5') : undefined;
  }
  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.bytes += chunk.length;
    this.md5?.update(chunk);
    callback(null, chunk);
  }
  md5Base64(): string | undefined {
    return this.md5?.digest('base64');
  }
}

/** Files written under one directory (emptied at open) and renamed into place when complete. */
export class TempFiles {
  constructor(readonly dir: string) {}

  /** Empties the directory: what a crash left there was never renamed into place. */
  async reset(): Promise<void> {
    await rm(this.dir, { recursive: true, force: true });
    await mkdir(this.dir, { recursive: true });
  }

  path(): string {
    return join(this.dir, newVersion());
  }

  /** Writes a file atomically: to the temp directory, then renamed over `path`. */
  async writeAtomic(path: string, data: string): Promise<void> {
    const tmp = this.path();
    await writeFile(tmp, data);
    await rename(tmp, path);
  }

  /**
   * Streams `body` to `path` and returns its size; `contentMd5` (base64, from Content-MD5) and
   * `expectedSize` (Content-Length) are checked.
   */
  async receive(
    body: Readable,
    path: string,
    check: { contentMd5?: string | undefined; expectedSize?: number | undefined } = {},
  ): Promise<number> {
    const meter = new Meter(check.contentMd5 !== undefined);
    await pipeline(body, meter, createWriteStream(path, { highWaterMark: WRITE_BUFFER }));
    if (check.expectedSize !== undefined && meter.bytes !== check.expectedSize) {
      throw new S3Error(
        400,
        'IncompleteBody',
        'You did not provide the number of bytes specified by the Content-Length HTTP header.',
      );
    }
    if (check.contentMd5 !== undefined && meter.md5Base64() !== check.contentMd5) {
      throw new S3Error(
        400,
        'BadDigest',
        'The Content-MD5 you specified did not match what we received.',
      );
    }
    return meter.bytes;
  }
}
