import { createWriteStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { GetObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { objectId, type S3ObjectRef } from '@binaryalert/core';
import { DownloadError, ObjectAccessDeniedError, ObjectMissingError } from './errors';

export type DownloadResult =
  | {
      kind: 'downloaded';
      /** The private temp file holding the object. */
      file: string;
      size: number;
      lastModified: string;
      etag?: string;
      versionId?: string;
      metadata: Record<string, string>;
      downloadMs: number;
    }
  | { kind: 'too-large'; size: number };

/** A private temp directory (mode 0700) for one object; `remove` deletes it with its contents. */
export async function privateTempDir(
  root: string = os.tmpdir(),
): Promise<{ dir: string; remove: () => Promise<void> }> {
  const dir = await mkdtemp(path.join(root, 'binaryalert-'));
  return { dir, remove: () => rm(dir, { recursive: true, force: true }) };
}

function errorCode(error: unknown): { name?: string; status?: number } {
  const candidate = error as {
    name?: unknown;
    Code?: unknown;
    $metadata?: { httpStatusCode?: unknown };
  };
  const name = typeof candidate?.Code === 'string' ? candidate.Code : candidate?.name;
  const status = candidate?.$metadata?.httpStatusCode;
  return {
    ...(typeof name === 'string' ? { name } : {}),
    ...(typeof status === 'number' ? { status } : {}),
  };
}

/** Maps an S3 error to the typed error of this package. */
export function downloadError(id: string, error: unknown): Error {
  const { name, status } = errorCode(error);
  if (name === 'NoSuchKey' || name === 'NotFound' || name === 'NoSuchBucket' || status === 404) {
    return new ObjectMissingError(id, { cause: error });
  }
  if (name === 'AccessDenied' || name === 'Forbidden' || status === 403) {
    return new ObjectAccessDeniedError(id, { cause: error });
  }
  return new DownloadError(id, { cause: error });
}

/**
 * Streams one object into a new file (mode 0600) in `dir`, never holding it in memory. An object
 * larger than `maxBytes` (by the event's size, else the response's Content-Length) is not
 * downloaded: the body is discarded unread. Throws ObjectMissingError, ObjectAccessDeniedError or
 * DownloadError.
 */
export async function downloadObject(
  s3: S3Client,
  ref: S3ObjectRef,
  dir: string,
  maxBytes: number,
): Promise<DownloadResult> {
  if (ref.size !== undefined && ref.size > maxBytes) return { kind: 'too-large', size: ref.size };
  const id = objectId(ref.bucket, ref.key);
  const started = performance.now();
  let response;
  try {
    response = await s3.send(new GetObjectCommand({ Bucket: ref.bucket, Key: ref.key }));
  } catch (error) {
    throw downloadError(id, error);
  }
  const body = response.Body;
  const size = response.ContentLength;
  if (size !== undefined && size > maxBytes) {
    if (body instanceof Readable) body.destroy();
    return { kind: 'too-large', size };
  }
  if (!(body instanceof Readable)) {
    throw new DownloadError(id, { cause: new TypeError('GetObject returned no readable body') });
  }
  const file = path.join(dir, 'object');
  let written = 0;
  try {
    await pipeline(
      body,
      async function* limit(source: AsyncIterable<Buffer>) {
        for await (const chunk of source) {
          written += chunk.length;
          // Content-Length was missing or wrong: stop before the disk fills.
          if (written > maxBytes) throw new RangeError(`${id} is larger than ${maxBytes} bytes`);
          yield chunk;
        }
      },
      createWriteStream(file, { flags: 'wx', mode: 0o600 }),
    );
  } catch (error) {
    if (error instanceof RangeError) return { kind: 'too-large', size: written };
    throw new DownloadError(id, { cause: error });
  }
  return {
    kind: 'downloaded',
    file,
    size: written,
    lastModified: response.LastModified?.toISOString() ?? '',
    ...(response.ETag ? { etag: response.ETag } : {}),
    ...(response.VersionId ? { versionId: response.VersionId } : {}),
    metadata: { ...(response.Metadata ?? {}) },
    downloadMs: performance.now() - started,
  };
}
