// Multipart uploads of the local S3 store: each upload is a directory `uploads/<id>/` holding its
// record, its parts and their records, until it is completed (joined into an object) or aborted.
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, readdir, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';

import { noSuchBucket, noSuchUpload, S3Error } from './errors';
import { newVersion, WRITE_BUFFER, type TempFiles } from './files';
import { checkKey } from './keys';
import type { ObjectHeaders } from './store';

const MAX_PART_NUMBER = 10_000;
/** S3's least size of each part but the last. */
const MIN_PART_BYTES = 5 << 20;
const UPLOAD_ID = /^[0-9a-f]{32}$/;

export interface Upload {
  id: string;
  bucket: string;
  key: string;
  headers: ObjectHeaders;
  initiated: string;
}

export interface PartRef {
  partNumber: number;
  etag: string;
}

export class MultipartUploads {
  private readonly uploads = new Map<string, Upload>();

  private constructor(
    private readonly root: string,
    private readonly files: TempFiles,
    private readonly hasBucket: (name: string) => boolean,
  ) {}

  /** Loads the uploads under `root`, removing those of buckets that are gone or unreadable. */
  static async open(
    root: string,
    files: TempFiles,
    hasBucket: (name: string) => boolean,
  ): Promise<MultipartUploads> {
    const uploads = new MultipartUploads(root, files, hasBucket);
    await mkdir(root, { recursive: true });
    for (const id of await readdir(root)) await uploads.load(id);
    return uploads;
  }

  private async load(id: string): Promise<void> {
    const dir = join(this.root, id);
    try {
      if (!UPLOAD_ID.test(id)) throw new Error('not an upload id');
      const upload = JSON.parse(await readFile(join(dir, 'upload.json'), 'utf8')) as Upload;
      if (upload.id !== id || !this.hasBucket(upload.bucket)) throw new Error('stale upload');
      this.uploads.set(id, upload);
    } catch {
      await rm(dir, { recursive: true, force: true });
    }
  }

  async create(bucket: string, key: string, headers: ObjectHeaders): Promise<string> {
    if (!this.hasBucket(bucket)) throw noSuchBucket(bucket);
    checkKey(key);
    const id = newVersion();
    const upload: Upload = { id, bucket, key, headers, initiated: new Date().toISOString() };
    const dir = join(this.root, id);
    await mkdir(dir, { recursive: true });
    await this.files.writeAtomic(join(dir, 'upload.json'), JSON.stringify(upload));
    this.uploads.set(id, upload);
    return id;
  }

  /** The upload `id` of this bucket and key; NoSuchUpload otherwise. */
  get(bucket: string, key: string, id: string): Upload {
    const upload = UPLOAD_ID.test(id) ? this.uploads.get(id) : undefined;
    if (!upload || upload.bucket !== bucket || upload.key !== key) throw noSuchUpload(id);
    return upload;
  }

  /** Stores one part (its Content-MD5 and Content-Length checked); returns its ETag. */
  async uploadPart(
    bucket: string,
    key: string,
    id: string,
    partNumber: number,
    body: Readable,
    check: { contentMd5?: string; expectedSize?: number } = {},
  ): Promise<string> {
    this.get(bucket, key, id);
    if (!Number.isInteger(partNumber) || partNumber < 1 || partNumber > MAX_PART_NUMBER) {
      throw new S3Error(
        400,
        'InvalidArgument',
        `Part number must be an integer between 1 and ${MAX_PART_NUMBER}, inclusive`,
      );
    }
    const tmp = this.files.path();
    try {
      const size = await this.files.receive(body, tmp, check);
      const etag = `"${newVersion()}"`;
      const dir = join(this.root, id);
      await rename(tmp, join(dir, `${partNumber}.part`));
      await this.files.writeAtomic(join(dir, `${partNumber}.json`), JSON.stringify({ etag, size }));
      if (!this.uploads.has(id)) {
        await rm(dir, { recursive: true, force: true });
        throw noSuchUpload(id);
      }
      return etag;
    } finally {
      await rm(tmp, { force: true });
    }
  }

  /**
   * Checks that `parts` are in ascending order, each was uploaded with that ETag and each but the
   * last holds at least 5 MiB.
   */
  async checkParts(id: string, parts: PartRef[]): Promise<void> {
    if (parts.length === 0) {
      throw new S3Error(
        400,
        'MalformedXML',
        'The XML you provided was not well-formed or did not validate against our published schema.',
      );
    }
    const dir = join(this.root, id);
    for (let i = 0; i < parts.length; i++) {
      const part = parts[i]!;
      if (i > 0 && part.partNumber <= parts[i - 1]!.partNumber) {
        throw new S3Error(
          400,
          'InvalidPartOrder',
          'The list of parts was not in ascending order. The parts list must be specified in order of the part number.',
        );
      }
      const record = await readFile(join(dir, `${part.partNumber}.json`), 'utf8').then(
        (text) => JSON.parse(text) as { etag: string; size: number },
        () => undefined,
      );
      if (!record || record.etag.replace(/"/g, '') !== part.etag.replace(/"/g, '')) {
        throw new S3Error(
          400,
          'InvalidPart',
          "One or more of the specified parts could not be found. The part may not have been uploaded, or the specified entity tag may not match the part's entity tag.",
        );
      }
      if (i < parts.length - 1 && record.size < MIN_PART_BYTES) {
        throw new S3Error(
          400,
          'EntityTooSmall',
          'Your proposed upload is smaller than the minimum allowed size',
          {
            ProposedSize: String(record.size),
            MinSizeAllowed: String(MIN_PART_BYTES),
            PartNumber: String(part.partNumber),
            ETag: record.etag,
          },
        );
      }
    }
  }

  /** Ends the upload (no more parts), joins `parts` into `path` in order, returns the size. */
  async join(id: string, parts: PartRef[], path: string): Promise<number> {
    this.uploads.delete(id);
    const out = createWriteStream(path, { highWaterMark: WRITE_BUFFER });
    let size = 0;
    for (const part of parts) {
      const stream = createReadStream(join(this.root, id, `${part.partNumber}.part`), {
        highWaterMark: WRITE_BUFFER,
      });
      for await (const chunk of stream as AsyncIterable<Buffer>) {
        size += chunk.length;
        if (!out.write(chunk)) await new Promise<void>((ok) => out.once('drain', () => ok()));
      }
    }
    await new Promise<void>((ok, fail) => {
      out.once('error', fail);
      out.end(ok);
    });
    return size;
  }

  /** AbortMultipartUpload: the upload of this bucket and key ends and its parts are removed. */
  async abort(bucket: string, key: string, id: string): Promise<void> {
    this.get(bucket, key, id);
    await this.remove(id);
  }

  /** Forgets the upload and removes its directory (its parts). */
  async remove(id: string): Promise<void> {
    this.uploads.delete(id);
    await rm(join(this.root, id), { recursive: true, force: true });
  }
}
