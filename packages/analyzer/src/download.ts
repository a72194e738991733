import { mkdtemp, open, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { GetObjectCommand, type GetObjectCommandOutput, type S3Client } from '@aws-sdk/client-s3';
import { objectId, type S3ObjectRef } from '@binaryalert/core';
import { DownloadError, ObjectAccessDeniedError, ObjectMissingError } from './errors';

/** What a download tells about the object besides its bytes. */
export interface DownloadedFacts {
  size: number;
  lastModified: string;
  etag?: string;
  versionId?: string;
  metadata: Record<string, string>;
  downloadMs: number;
}

export type DownloadResult =
  | ({
      kind: 'downloaded';
      /** The private temp file holding the object. */
      file: string;
    } & DownloadedFacts)
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

/** How large objects are fetched: like the AWS CLI's multipart download, in parallel ranged GETs. */
export interface RangedDownloadSettings {
  /** Objects at least this large (by the event's size) are fetched in parts. */
  thresholdBytes: number;
  partBytes: number;
  /** Parts requested at once per object. */
  partsInFlight: number;
}

/** One stream tops out well below what S3 serves one Lambda; parts of 8 MiB, 4 at a time. */
export const DEFAULT_RANGED_DOWNLOAD: RangedDownloadSettings = {
  thresholdBytes: 16 * 1024 * 1024,
  partBytes: 8 * 1024 * 1024,
  partsInFlight: 4,
};

/**
 * Streams one object into a new file (mode 0600) in `dir`, never holding it in memory; objects of
 * at least `ranged.thresholdBytes` come in parallel ranged GETs written at their offsets. An object
 * larger than `maxBytes` (by the event's size, else the response's Content-Length) is not
 * downloaded: the body is discarded unread. Throws ObjectMissingError, ObjectAccessDeniedError or
 * DownloadError (also when the object changed or a part came back short mid-download).
 */
export async function downloadObject(
  s3: S3Client,
  ref: S3ObjectRef,
  dir: string,
  maxBytes: number,
  ranged: RangedDownloadSettings = DEFAULT_RANGED_DOWNLOAD,
  /** Only these bytes (an ETag): another object under the key fails with a DownloadError. */
  ifMatch?: string,
): Promise<DownloadResult> {
  if (ref.size !== undefined && ref.size > maxBytes) return { kind: 'too-large', size: ref.size };
  const id = objectId(ref.bucket, ref.key);
  const started = performance.now();
  const inParts = ref.size !== undefined && ref.size >= ranged.thresholdBytes;
  const response = await getObject(s3, ref, {
    ...(inParts ? { Range: `bytes=0-${ranged.partBytes - 1}` } : {}),
    ...(ifMatch ? { IfMatch: ifMatch } : {}),
  });
  // A server that ignores Range answers with the whole object: stream it as one.
  const total = inParts ? totalFromContentRange(response.ContentRange) : undefined;
  if (total !== undefined) {
    if (total > maxBytes) {
      if (response.Body instanceof Readable) response.Body.destroy();
      return { kind: 'too-large', size: total };
    }
    const file = path.join(dir, 'object');
    await downloadParts(s3, ref, id, file, response, total, ranged);
    return {
      kind: 'downloaded',
      file,
      size: total,
      lastModified: response.LastModified?.toISOString() ?? '',
      ...(response.ETag ? { etag: response.ETag } : {}),
      ...(response.VersionId ? { versionId: response.VersionId } : {}),
      metadata: { ...(response.Metadata ?? {}) },
      downloadMs: performance.now() - started,
    };
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
  let written: number;
  try {
    const handle = await open(file, 'wx', 0o600);
    try {
      written = await writeAt(handle, body, 0, maxBytes, size);
    } finally {
      await handle.close();
    }
  } catch (error) {
    throw new DownloadError(id, { cause: error });
  }
  // Content-Length was missing or wrong: stopped reading before the disk filled.
  if (written > maxBytes) return { kind: 'too-large', size: written };
  if (size !== undefined && written !== size) {
    throw new DownloadError(id, {
      cause: new Error(`got ${written} of ${size} bytes (Content-Length)`),
    });
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

/** GetObject, its errors mapped to this package's (downloadError). */
async function getObject(
  s3: S3Client,
  ref: S3ObjectRef,
  conditions: { Range?: string; IfMatch?: string },
): Promise<GetObjectCommandOutput> {
  try {
    return await s3.send(new GetObjectCommand({ Bucket: ref.bucket, Key: ref.key, ...conditions }));
  } catch (error) {
    throw downloadError(objectId(ref.bucket, ref.key), error);
  }
}

export type BytesDownload =
  | {
      kind: 'downloaded';
      bytes: Buffer;
      lastModified: string;
      etag?: string;
      versionId?: string;
      metadata: Record<string, string>;
    }
  | { kind: 'too-large'; size: number };

/**
 * Reads one object into memory, for an object known to be small (a delta re-scan of a listed
 * object): no temp directory, no file written and read back. `ifMatch` and the errors as
 * downloadObject's; more than `maxBytes` (by the event's size, the response's Content-Length or
 * the bytes that came) is too large.
 */
export async function downloadBytes(
  s3: S3Client,
  ref: S3ObjectRef,
  maxBytes: number,
  ifMatch?: string,
): Promise<BytesDownload> {
  if (ref.size !== undefined && ref.size > maxBytes) return { kind: 'too-large', size: ref.size };
  const id = objectId(ref.bucket, ref.key);
  const response = await getObject(s3, ref, ifMatch ? { IfMatch: ifMatch } : {});
  const body = response.Body;
  if (response.ContentLength !== undefined && response.ContentLength > maxBytes) {
    destroyBody(body);
    return { kind: 'too-large', size: response.ContentLength };
  }
  if (!(body instanceof Readable)) {
    throw new DownloadError(id, { cause: new TypeError('GetObject returned no readable body') });
  }
  // Into one buffer of the announced size as the bytes arrive (no copy of the whole at the end);
  // chunks only when S3 announced no length or sent more or less than it.
  const announced = response.ContentLength;
  let bytes = announced === undefined ? undefined : Buffer.allocUnsafe(announced);
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of body as AsyncIterable<Buffer>) {
      if (size + chunk.length > maxBytes) {
        body.destroy();
        return { kind: 'too-large', size: size + chunk.length };
      }
      if (bytes && size + chunk.length <= bytes.length) chunk.copy(bytes, size);
      else {
        if (bytes) chunks.push(bytes.subarray(0, size));
        bytes = undefined;
        chunks.push(chunk);
      }
      size += chunk.length;
    }
  } catch (error) {
    throw new DownloadError(id, { cause: error });
  }
  // A body cut short (a dropped connection) must not pass for the whole object.
  if (announced !== undefined && size !== announced) {
    throw new DownloadError(id, {
      cause: new Error(`got ${size} of ${announced} bytes (Content-Length)`),
    });
  }
  return {
    kind: 'downloaded',
    bytes: bytes ? bytes.subarray(0, size) : Buffer.concat(chunks, size),
    lastModified: response.LastModified?.toISOString() ?? '',
    ...(response.ETag ? { etag: response.ETag } : {}),
    ...(response.VersionId ? { versionId: response.VersionId } : {}),
    metadata: { ...(response.Metadata ?? {}) },
  };
}

/**
 * Objects smaller than this (by the event's size) are read into memory to be scanned: no temp
 * directory, no file written and read back (members of containers inside still spill to anonymous
 * files past 16 MiB). At most one per scan slot, plus the one downloading ahead, is held at once;
 * a function with little memory uses a lower bound (config.ts inMemoryBytes).
 */
export const IN_MEMORY_BYTES = DEFAULT_RANGED_DOWNLOAD.thresholdBytes;

/** An object ready to be scanned: its bytes in memory or in a private temp file. */
export type ScanSource =
  | ({
      kind: 'downloaded';
      /** The bytes, or the private temp file holding them. */
      source: Buffer | string;
      /** Where the scan spills large members: the object's private directory, or the temp root. */
      tempDir: string;
      /** Deletes the temp file and its directory (nothing for bytes in memory); may be called again. */
      remove: () => Promise<void>;
    } & DownloadedFacts)
  | { kind: 'too-large'; size: number };

/**
 * Downloads one object for its scan: into memory when the event says it is smaller than
 * `inMemoryBytes` (default IN_MEMORY_BYTES), else into a file in a new private directory under
 * `tempRoot` (downloadObject). An object that turns out larger than the event said goes to a file
 * after all, unless it is larger than `maxBytes`: too large is decided by the object S3 returns,
 * never by the event's size alone. `ifMatch` and the errors as downloadObject's.
 */
export async function downloadForScan(
  s3: S3Client,
  ref: S3ObjectRef,
  maxBytes: number,
  options: { tempRoot?: string; inMemoryBytes?: number; ifMatch?: string } = {},
): Promise<ScanSource> {
  const { tempRoot = os.tmpdir(), inMemoryBytes = IN_MEMORY_BYTES, ifMatch } = options;
  // The size may be an earlier upload's (an event delivered late or again, a stale listing): an
  // object that looks too large is asked for, and its Content-Length decides (the body unread).
  const { size: _eventSize, ...withoutSize } = ref;
  const target: S3ObjectRef = ref.size !== undefined && ref.size > maxBytes ? withoutSize : ref;
  if (target.size !== undefined && target.size < inMemoryBytes) {
    const started = performance.now();
    const download = await downloadBytes(
      s3,
      target,
      Math.min(maxBytes, inMemoryBytes - 1),
      ifMatch,
    );
    if (download.kind === 'downloaded') {
      const { bytes, kind, ...facts } = download;
      return {
        kind,
        source: bytes,
        size: bytes.length,
        ...facts,
        downloadMs: performance.now() - started,
        tempDir: tempRoot,
        remove: () => Promise.resolve(),
      };
    }
    if (download.size > maxBytes) return download;
    // Replaced by a larger object since the event: read it again, into a file.
  }
  const temp = await privateTempDir(tempRoot);
  try {
    const download = await downloadObject(s3, target, temp.dir, maxBytes, undefined, ifMatch);
    if (download.kind === 'too-large') {
      await temp.remove();
      return download;
    }
    const { file, ...facts } = download;
    return { ...facts, source: file, tempDir: temp.dir, remove: temp.remove };
  } catch (error) {
    await temp.remove().catch(() => undefined);
    throw error;
  }
}

/** The object's full size from `Content-Range: bytes 0-8388607/52428800`; undefined without one. */
function totalFromContentRange(contentRange: string | undefined): number | undefined {
  const match = /^bytes \d+-\d+\/(\d+)$/.exec(contentRange ?? '');
  return match ? Number(match[1]) : undefined;
}

type GetObjectResponse = Pick<GetObjectCommandOutput, 'Body' | 'ETag' | 'VersionId'>;

/**
 * Writes the first part (already requested) and fetches the others, `partsInFlight` at a time,
 * each written at its offset. Every later part asks for the first part's version (If-Match on the
 * ETag, and the version id when the bucket has versions), so an object replaced mid-download fails
 * with a clear DownloadError instead of a file spliced from two objects; a part that comes back
 * short fails the same way.
 */
async function downloadParts(
  s3: S3Client,
  ref: S3ObjectRef,
  id: string,
  file: string,
  first: GetObjectResponse,
  total: number,
  ranged: RangedDownloadSettings,
): Promise<void> {
  const handle = await open(file, 'wx', 0o600);
  try {
    await handle.truncate(total);
    const parts: { start: number; end: number }[] = [];
    for (let start = 0; start < total; start += ranged.partBytes) {
      parts.push({ start, end: Math.min(start + ranged.partBytes, total) - 1 });
    }
    const fetchPart = async (part: { start: number; end: number }, index: number) => {
      let response: GetObjectResponse = first;
      if (index > 0) {
        try {
          response = await s3.send(
            new GetObjectCommand({
              Bucket: ref.bucket,
              Key: ref.key,
              Range: `bytes=${part.start}-${part.end}`,
              ...(first.ETag ? { IfMatch: first.ETag } : {}),
              ...(first.VersionId ? { VersionId: first.VersionId } : {}),
            }),
          );
        } catch (error) {
          const { name, status } = errorCode(error);
          if (name === 'PreconditionFailed' || status === 412) {
            throw new DownloadError(id, {
              cause: new Error(
                'the object changed during the download (its ETag no longer matches)',
              ),
            });
          }
          throw downloadError(id, error);
        }
        if (first.ETag && response.ETag && response.ETag !== first.ETag) {
          destroyBody(response.Body);
          throw new DownloadError(id, {
            cause: new Error(
              `the object changed during the download (ETag ${response.ETag}, was ${first.ETag})`,
            ),
          });
        }
      }
      const expected = part.end - part.start + 1;
      const written = await writeAt(handle, response.Body, part.start, expected);
      if (written !== expected) {
        throw new DownloadError(id, {
          cause: new Error(`bytes ${part.start}-${part.end}: got ${written} of ${expected} bytes`),
        });
      }
    };
    let next = 0;
    const worker = async () => {
      while (next < parts.length) {
        const index = next++;
        await fetchPart(parts[index]!, index);
      }
    };
    await Promise.all(Array.from({ length: Math.min(ranged.partsInFlight, parts.length) }, worker));
  } catch (error) {
    destroyBody(first.Body);
    throw error instanceof DownloadError ? error : new DownloadError(id, { cause: error });
  } finally {
    await handle.close();
  }
}

function destroyBody(body: unknown): void {
  if (body instanceof Readable) body.destroy();
}

/**
 * How many bytes of a response body are gathered before one write: each socket-sized chunk is
 * copied out and released as it arrives instead of waiting in a write queue, and the file takes
 * ~16x fewer write requests (less download CPU per MB in the analyzer).
 */
const STAGE_BYTES = 1024 * 1024;

/**
 * Writes a response body at `position` through one staging buffer; stops reading past `limit`
 * bytes. Returns the bytes received (more than `limit` when it stopped).
 */
async function writeAt(
  handle: Awaited<ReturnType<typeof open>>,
  body: unknown,
  position: number,
  limit: number,
  /** The body's announced length, when known: sizes the staging buffer of a small object. */
  expected: number = limit,
): Promise<number> {
  if (!(body instanceof Readable)) throw new TypeError('GetObject returned no readable body');
  const stage = Buffer.allocUnsafeSlow(Math.min(STAGE_BYTES, Math.max(64 * 1024, expected)));
  let written = 0;
  let staged = 0;
  const flush = async () => {
    for (let offset = 0; offset < staged;) {
      const { bytesWritten } = await handle.write(
        stage,
        offset,
        staged - offset,
        position + written + offset,
      );
      offset += bytesWritten;
    }
    written += staged;
    staged = 0;
  };
  for await (const chunk of body as AsyncIterable<Buffer>) {
    if (written + staged + chunk.length > limit) {
      body.destroy();
      return written + staged + chunk.length; // more than asked for: too large, or a size mismatch
    }
    for (let from = 0; from < chunk.length;) {
      const copied = chunk.copy(stage, staged, from);
      staged += copied;
      from += copied;
      if (staged === stage.length) await flush();
    }
  }
  await flush();
  return written;
}
