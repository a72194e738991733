import { createWriteStream, type ReadStream } from 'node:fs';
import { mkdir, open, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { join, sep } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';

import { noSuchBucket, noSuchKey, S3Error } from './errors';
import { newVersion, TempFiles, WRITE_BUFFER } from './files';
import {
  checkBucketName,
  checkKey,
  keyDigest,
  listPage,
  SortedKeys,
  type ListOptions,
} from './keys';
import { MultipartUploads, type PartRef } from './multipart';

/** The headers S3 stores with an object and returns on GET and HEAD. */
export interface ObjectHeaders {
  contentType?: string;
  contentEncoding?: string;
  contentDisposition?: string;
  contentLanguage?: string;
  cacheControl?: string;
  expires?: string;
  /** x-amz-meta-* without the prefix, names in lower case. */
  metadata: Record<string, string>;
}

export interface ObjectInfo extends ObjectHeaders {
  key: string;
  size: number;
  /** Quoted, as S3 sends it. */
  etag: string;
  lastModified: Date;
}

/** On disk beside the content: the object's record, pointing at its content file. */
interface StoredObject extends Omit<ObjectInfo, 'lastModified'> {
  lastModified: string;
  /** Content file name in the object's directory: `<key digest>.<version>`. */
  content: string;
}

interface Bucket {
  name: string;
  created: Date;
  dir: string;
  keys: SortedKeys;
  objects: Map<string, StoredObject>;
}

/** An object created, as S3 reports it to event notifications. */
export interface ObjectCreatedEvent {
  bucket: string;
  key: string;
  size: number;
  etag: string;
  eventName: 'ObjectCreated:Put' | 'ObjectCreated:Copy' | 'ObjectCreated:CompleteMultipartUpload';
}

export interface ListResult {
  contents: ObjectInfo[];
  commonPrefixes: string[];
  isTruncated: boolean;
  /** The last key or common prefix returned, to continue after. */
  last?: string;
}

/** A conditional write (PutObject's If-None-Match: * and If-Match: ETag). */
export interface WriteCondition {
  /** Only when no object has the key. */
  ifNoneMatch?: boolean;
  /** Only when the object has one of these ETags (If-Match's comma-separated list). */
  ifMatch?: string;
}

/** Throws S3's error for a write whose condition does not hold for the key's object now. */
function checkWriteCondition(
  key: string,
  previous: StoredObject | undefined,
  condition: WriteCondition,
): void {
  const failed = (header: string) =>
    new S3Error(
      412,
      'PreconditionFailed',
      'At least one of the pre-conditions you specified did not hold',
      {
        Condition: header,
      },
    );
  if (condition.ifNoneMatch && previous) throw failed('If-None-Match');
  if (condition.ifMatch !== undefined) {
    if (!previous) throw noSuchKey(key);
    const tags = condition.ifMatch.split(',').map((tag) => tag.trim());
    if (!tags.includes(previous.etag) && !tags.includes('*')) throw failed('If-Match');
  }
}

function info(stored: StoredObject): ObjectInfo {
  const { content: _content, lastModified, ...rest } = stored;
  return { ...rest, lastModified: new Date(lastModified) };
}

/**
 * A local S3 object store. An object's key never becomes a path: each object lives at
 * `buckets/<bucket>/objects/<2 hex>/<sha256(key)>.json` (its record, holding the key) beside its
 * content `<sha256(key)>.<version>`. Content is written to `tmp/` and renamed into place, then
 * the record is replaced by rename: a reader sees the old object or the new one, never a part,
 * and a crash leaves at most an unreferenced file that the next open removes. Writes to one key
 * are serialized; different keys never share a file or a directory that is ever removed.
 *
 * One class of about 440 lines on purpose: the in-memory index (buckets, sorted keys, records)
 * and the files on disk change together under one key lock (`commit`, `delete`), and splitting
 * them would hand that index to other modules. What does not touch it is apart: file primitives
 * (files.ts), multipart uploads (multipart.ts), listing order and pages (keys.ts).
 */
export class ObjectStore {
  private readonly buckets = new Map<string, Bucket>();
  private readonly keyLocks = new Map<string, Promise<void>>();
  private readonly madeDirs = new Set<string>();
  private readonly files: TempFiles;
  /** Multipart uploads in progress (multipart.ts). */
  uploads!: MultipartUploads;

  private constructor(
    readonly root: string,
    private readonly onCreated: (event: ObjectCreatedEvent) => void,
  ) {
    this.files = new TempFiles(join(root, 'tmp'));
  }

  /** Opens (or creates) the store under `root`, dropping what a crash left half-written. */
  static async open(
    root: string,
    onCreated: (event: ObjectCreatedEvent) => void = () => undefined,
  ): Promise<ObjectStore> {
    const store = new ObjectStore(root, onCreated);
    await store.files.reset();
    await mkdir(join(root, 'buckets'), { recursive: true });
    for (const name of await readdir(join(root, 'buckets'))) await store.loadBucket(name);
    store.uploads = await MultipartUploads.open(join(root, 'uploads'), store.files, (name) =>
      store.buckets.has(name),
    );
    return store;
  }

  private async loadBucket(name: string): Promise<void> {
    const dir = join(this.root, 'buckets', name);
    let created: Date;
    try {
      checkBucketName(name);
      const record = JSON.parse(await readFile(join(dir, 'bucket.json'), 'utf8')) as {
        created: string;
      };
      created = new Date(record.created);
    } catch {
      return; // not a bucket this store made
    }
    const bucket: Bucket = { name, created, dir, keys: new SortedKeys(), objects: new Map() };
    const objectsDir = join(dir, 'objects');
    for (const shard of await readdir(objectsDir).catch(() => [] as string[])) {
      const shardDir = join(objectsDir, shard);
      this.madeDirs.add(shardDir);
      const files = await readdir(shardDir);
      const referenced = new Set<string>();
      for (const file of files.filter((f) => f.endsWith('.json'))) {
        try {
          const stored = JSON.parse(await readFile(join(shardDir, file), 'utf8')) as StoredObject;
          if (`${keyDigest(stored.key)}.json` !== file) continue;
          await stat(join(shardDir, stored.content));
          bucket.objects.set(stored.key, stored);
          bucket.keys.add(stored.key);
          referenced.add(stored.content);
          referenced.add(file);
        } catch {
          // a record without its content, or unreadable: not an object
        }
      }
      for (const file of files) {
        if (!referenced.has(file)) await rm(join(shardDir, file), { force: true });
      }
    }
    this.buckets.set(name, bucket);
  }

  /** Runs `work` after every earlier write to the same object has finished. */
  private async withKeyLock<T>(bucket: string, key: string, work: () => Promise<T>): Promise<T> {
    const id = `${bucket}/${key}`;
    const previous = this.keyLocks.get(id) ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((ok) => (release = ok));
    const tail = previous.then(() => mine);
    this.keyLocks.set(id, tail);
    await previous;
    try {
      return await work();
    } finally {
      release();
      if (this.keyLocks.get(id) === tail) this.keyLocks.delete(id);
    }
  }

  private bucket(name: string): Bucket {
    const bucket = this.buckets.get(name);
    if (!bucket) throw noSuchBucket(name);
    return bucket;
  }

  private objectDir(bucket: Bucket, digest: string): string {
    return join(bucket.dir, 'objects', digest.slice(0, 2));
  }

  private async ensureDir(dir: string): Promise<void> {
    if (this.madeDirs.has(dir)) return;
    await mkdir(dir, { recursive: true });
    this.madeDirs.add(dir);
  }

  // Buckets

  listBuckets(): { name: string; created: Date }[] {
    return [...this.buckets.values()]
      .map(({ name, created }) => ({ name, created }))
      .sort((a, b) => (a.name < b.name ? -1 : 1));
  }

  hasBucket(name: string): boolean {
    return this.buckets.has(name);
  }

  /** Creates a bucket; creating one that exists is a no-op (S3 in us-east-1). */
  async createBucket(name: string): Promise<void> {
    checkBucketName(name);
    if (this.buckets.has(name)) return;
    const dir = join(this.root, 'buckets', name);
    await mkdir(join(dir, 'objects'), { recursive: true });
    const created = new Date();
    await this.files.writeAtomic(join(dir, 'bucket.json'), JSON.stringify({ created }));
    if (!this.buckets.has(name)) {
      this.buckets.set(name, { name, created, dir, keys: new SortedKeys(), objects: new Map() });
    }
  }

  async deleteBucket(name: string): Promise<void> {
    const bucket = this.bucket(name);
    if (bucket.objects.size > 0) {
      throw new S3Error(409, 'BucketNotEmpty', 'The bucket you tried to delete is not empty', {
        BucketName: name,
      });
    }
    this.buckets.delete(name);
    // Its shard directories go with it: a bucket made again under the name must make them again.
    for (const dir of this.madeDirs) {
      if (dir.startsWith(bucket.dir + sep)) this.madeDirs.delete(dir);
    }
    await rm(bucket.dir, { recursive: true, force: true });
  }

  // Objects

  head(bucketName: string, key: string): ObjectInfo {
    const stored = this.bucket(bucketName).objects.get(key);
    if (!stored) throw noSuchKey(key);
    return info(stored);
  }

  /**
   * Streams `body` into the store as `key` and returns the object once it is in place.
   * `contentMd5` (base64, from Content-MD5) is checked; `expectedSize` (Content-Length) too.
   */
  async put(
    bucketName: string,
    key: string,
    body: Readable,
    headers: ObjectHeaders,
    check: { contentMd5?: string; expectedSize?: number } & WriteCondition = {},
  ): Promise<ObjectInfo> {
    const bucket = this.bucket(bucketName);
    checkKey(key);
    const tmp = this.files.path();
    try {
      const size = await this.files.receive(body, tmp, check);
      const version = newVersion();
      return await this.commit(
        bucket,
        key,
        tmp,
        {
          ...headers,
          key,
          size,
          etag: `"${version}"`,
          lastModified: new Date().toISOString(),
          content: `${keyDigest(key)}.${version}`,
        },
        'ObjectCreated:Put',
        check,
      );
    } finally {
      await rm(tmp, { force: true });
    }
  }

  /** Moves the content at `tmp` into place and replaces the object's record. */
  private async commit(
    bucket: Bucket,
    key: string,
    tmp: string,
    stored: StoredObject,
    eventName: ObjectCreatedEvent['eventName'],
    condition: WriteCondition = {},
  ): Promise<ObjectInfo> {
    const digest = keyDigest(key);
    const dir = this.objectDir(bucket, digest);
    await this.ensureDir(dir);
    await rename(tmp, join(dir, stored.content));
    await this.withKeyLock(bucket.name, key, async () => {
      if (this.buckets.get(bucket.name) !== bucket) throw noSuchBucket(bucket.name);
      const previous = bucket.objects.get(key);
      try {
        checkWriteCondition(key, previous, condition);
      } catch (error) {
        await rm(join(dir, stored.content), { force: true });
        throw error;
      }
      try {
        await this.files.writeAtomic(join(dir, `${digest}.json`), JSON.stringify(stored));
      } catch (error) {
        await rm(join(dir, stored.content), { force: true });
        throw error;
      }
      bucket.objects.set(key, stored);
      bucket.keys.add(key);
      // Readers that opened the old content keep reading it: unlinking never cuts a GET short.
      if (previous) await rm(join(dir, previous.content), { force: true });
    });
    const created = info(stored);
    this.onCreated({
      bucket: bucket.name,
      key,
      size: stored.size,
      etag: stored.etag,
      eventName,
    });
    return created;
  }

  /**
   * Opens an object's content for reading (bytes `start`..`end` inclusive when given). The file
   * is opened before the stream is returned, so a concurrent overwrite or delete cannot cut it.
   */
  async read(
    bucketName: string,
    key: string,
    range?: { start: number; end: number },
  ): Promise<{ info: ObjectInfo; stream: ReadStream }> {
    const bucket = this.bucket(bucketName);
    for (let attempt = 0; ; attempt++) {
      const stored = bucket.objects.get(key);
      if (!stored) throw noSuchKey(key);
      const path = join(this.objectDir(bucket, keyDigest(key)), stored.content);
      let handle;
      try {
        handle = await open(path, 'r');
      } catch (error) {
        // Replaced or deleted between the lookup and the open: look again.
        if ((error as NodeJS.ErrnoException).code === 'ENOENT' && attempt < 5) continue;
        throw error;
      }
      const stream = handle.createReadStream({
        highWaterMark: WRITE_BUFFER,
        ...(range ? { start: range.start, end: range.end } : {}),
      });
      return { info: info(stored), stream };
    }
  }

  /** Deletes an object; deleting one that does not exist succeeds, as on S3. */
  async delete(bucketName: string, key: string): Promise<void> {
    const bucket = this.bucket(bucketName);
    checkKey(key);
    await this.withKeyLock(bucket.name, key, async () => {
      const stored = bucket.objects.get(key);
      if (!stored) return;
      bucket.objects.delete(key);
      bucket.keys.delete(key);
      const digest = keyDigest(key);
      const dir = this.objectDir(bucket, digest);
      await rm(join(dir, `${digest}.json`), { force: true });
      await rm(join(dir, stored.content), { force: true });
    });
  }

  /** Copies an object (content and, unless `headers` replace them, its headers). */
  async copy(
    source: { bucket: string; key: string },
    bucketName: string,
    key: string,
    headers?: ObjectHeaders,
  ): Promise<ObjectInfo> {
    const bucket = this.bucket(bucketName);
    checkKey(key);
    const { info: sourceInfo, stream } = await this.read(source.bucket, source.key);
    const tmp = this.files.path();
    try {
      await pipeline(stream, createWriteStream(tmp, { highWaterMark: WRITE_BUFFER }));
      const version = newVersion();
      const {
        key: _key,
        size,
        etag: _etag,
        lastModified: _modified,
        ...sourceHeaders
      } = sourceInfo;
      return await this.commit(
        bucket,
        key,
        tmp,
        {
          ...(headers ?? sourceHeaders),
          key,
          size,
          etag: `"${version}"`,
          lastModified: new Date().toISOString(),
          content: `${keyDigest(key)}.${version}`,
        },
        'ObjectCreated:Copy',
      );
    } finally {
      await rm(tmp, { force: true });
    }
  }

  /** A page of keys in S3's order, after `after`, grouped by `delimiter` after `prefix`. */
  list(bucketName: string, options: ListOptions): ListResult {
    const bucket = this.bucket(bucketName);
    const { keys, ...page } = listPage(bucket.keys, options);
    return { ...page, contents: keys.map((key) => info(bucket.objects.get(key)!)) };
  }

  // Multipart uploads: `uploads` creates, stores parts and aborts; completing one commits the
  // joined parts as the object.

  /** Joins the listed parts into the object, in order, and ends the upload. */
  async completeUpload(
    bucketName: string,
    key: string,
    id: string,
    parts: PartRef[],
  ): Promise<ObjectInfo> {
    // One complete of an upload at a time (a NUL never appears in a bucket name): the first ends
    // it, a concurrent one then finds no such upload, as on S3, instead of committing it again.
    return this.withKeyLock('\u0000upload', id, async () => {
      const upload = this.uploads.get(bucketName, key, id);
      const bucket = this.bucket(bucketName);
      await this.uploads.checkParts(id, parts);
      const tmp = this.files.path();
      try {
        const size = await this.uploads.join(id, parts, tmp);
        const version = newVersion();
        return await this.commit(
          bucket,
          key,
          tmp,
          {
            ...upload.headers,
            key,
            size,
            etag: `"${version}-${parts.length}"`,
            lastModified: new Date().toISOString(),
            content: `${keyDigest(key)}.${version}`,
          },
          'ObjectCreated:CompleteMultipartUpload',
        );
      } finally {
        await rm(tmp, { force: true });
        await this.uploads.remove(id);
      }
    });
  }
}
