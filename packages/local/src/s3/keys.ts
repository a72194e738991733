import { createHash } from 'node:crypto';

import { S3Error } from './errors';

/** S3's limit on a key: 1,024 bytes of UTF-8. */
export const MAX_KEY_BYTES = 1024;

/** Bucket names as S3 allows them (plus legacy underscores): they become one directory name. */
const BUCKET_NAME = /^[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]$/;

export function checkBucketName(bucket: string): void {
  if (!BUCKET_NAME.test(bucket) || bucket.includes('..')) {
    throw new S3Error(400, 'InvalidBucketName', 'The specified bucket is not valid.', {
      BucketName: bucket,
    });
  }
}

export function checkKey(key: string): void {
  if (key.length === 0)
    throw new S3Error(400, 'InvalidArgument', 'An object key must not be empty');
  if (Buffer.byteLength(key, 'utf8') > MAX_KEY_BYTES) {
    throw new S3Error(400, 'KeyTooLongError', 'Your key is too long', { Key: key });
  }
  if (/\p{Surrogate}/u.test(key)) {
    throw new S3Error(400, 'InvalidArgument', 'An object key must be valid UTF-8', { Key: key });
  }
}

/**
 * The file name an object is stored under: a hash of its key, never the key itself, so no key
 * (`../x`, 1,024 bytes, NUL, unicode) can name a path outside the store or one too long.
 */
export function keyDigest(key: string): string {
  return createHash('sha256').update(key, 'utf8').digest('hex');
}

/** Orders UTF-16 code units as their code points (and so as UTF-8 bytes, S3's list order). */
function codePointUnit(unit: number): number {
  if (unit < 0xd800) return unit;
  return unit < 0xe000 ? unit + 0x2000 : unit - 0x800;
}

/** Compares two keys in UTF-8 byte order, the order S3 lists keys in. */
export function compareKeys(a: string, b: string): number {
  const length = Math.min(a.length, b.length);
  for (let i = 0; i < length; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x !== y) return codePointUnit(x) - codePointUnit(y);
  }
  return a.length - b.length;
}

/** Keys kept sorted in S3's order, for listing by prefix and continuation. */
export class SortedKeys {
  private readonly keys: string[] = [];

  get size(): number {
    return this.keys.length;
  }

  /** Index of the first key >= `key` (or > `key` when `after`). */
  bound(key: string, after = false): number {
    let low = 0;
    let high = this.keys.length;
    while (low < high) {
      const mid = (low + high) >>> 1;
      const order = compareKeys(this.keys[mid]!, key);
      if (order < 0 || (after && order === 0)) low = mid + 1;
      else high = mid;
    }
    return low;
  }

  at(index: number): string | undefined {
    return this.keys[index];
  }

  add(key: string): void {
    const index = this.bound(key);
    if (this.keys[index] !== key) this.keys.splice(index, 0, key);
  }

  delete(key: string): void {
    const index = this.bound(key);
    if (this.keys[index] === key) this.keys.splice(index, 1);
  }
}

export interface ListOptions {
  prefix?: string;
  delimiter?: string;
  /** List keys after this one (a key or a common prefix already returned). */
  after?: string;
  maxKeys: number;
}

/** One page of a listing: keys and common prefixes in S3's order; `last` is where to go on. */
export interface KeyPage {
  keys: string[];
  commonPrefixes: string[];
  isTruncated: boolean;
  last?: string;
}

/**
 * A page of `keys` in S3's order: those starting with `prefix` after `after`, each run of keys
 * sharing `prefix` + anything + `delimiter` folded into one common prefix, at most `maxKeys` in all.
 */
export function listPage(keys: SortedKeys, options: ListOptions): KeyPage {
  const prefix = options.prefix ?? '';
  const { delimiter } = options;
  let index = keys.bound(prefix);
  if (options.after !== undefined) index = Math.max(index, keys.bound(options.after, true));
  const page: string[] = [];
  const commonPrefixes: string[] = [];
  let last: string | undefined;
  let skipPrefix =
    delimiter && options.after?.endsWith(delimiter) && options.after.startsWith(prefix)
      ? options.after
      : undefined;
  const result = (isTruncated: boolean): KeyPage => ({
    keys: page,
    commonPrefixes,
    isTruncated,
    ...(last === undefined ? {} : { last }),
  });
  // S3 answers max-keys=0 with an empty page that is not truncated (there is no key to go on from).
  if (options.maxKeys === 0) return result(false);
  for (; ; index++) {
    const key = keys.at(index);
    if (key === undefined || !key.startsWith(prefix)) return result(false);
    if (skipPrefix !== undefined && key.startsWith(skipPrefix)) continue;
    if (page.length + commonPrefixes.length >= options.maxKeys) return result(true);
    const cut = delimiter ? key.indexOf(delimiter, prefix.length) : -1;
    if (delimiter && cut !== -1) {
      const common = key.slice(0, cut + delimiter.length);
      commonPrefixes.push(common);
      skipPrefix = common;
      last = common;
    } else {
      page.push(key);
      last = key;
    }
  }
}
