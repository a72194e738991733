import { createCipheriv, createHash } from 'node:crypto';

/**
 * A small seeded PRNG (sfc32, seeded through SHA-256 of the seed text) for every choice the
 * generators make; the same seed gives the same sequence on every machine and Node version.
 */
export class Prng {
  #a: number;
  #b: number;
  #c: number;
  #d: number;

  constructor(seed: string) {
    const digest = createHash('sha256').update(seed).digest();
    this.#a = digest.readUInt32LE(0);
    this.#b = digest.readUInt32LE(4);
    this.#c = digest.readUInt32LE(8);
    this.#d = digest.readUInt32LE(12) | 1;
    for (let i = 0; i < 16; i++) this.nextUint32();
  }

  /** A uniformly distributed 32-bit unsigned integer. */
  nextUint32(): number {
    const t = (((this.#a + this.#b) | 0) + this.#d) | 0;
    this.#d = (this.#d + 1) | 0;
    this.#a = this.#b ^ (this.#b >>> 9);
    this.#b = (this.#c + (this.#c << 3)) | 0;
    this.#c = (this.#c << 21) | (this.#c >>> 11);
    this.#c = (this.#c + t) | 0;
    return t >>> 0;
  }

  /** A float in [0, 1). */
  next(): number {
    return this.nextUint32() / 4294967296;
  }

  /** An integer in [min, max] (inclusive). */
  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }

  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new RangeError('pick from an empty list');
    return items[this.int(0, items.length - 1)] as T;
  }

  /** true with the given probability. */
  chance(probability: number): boolean {
    return this.next() < probability;
  }

  /** An integer log-uniformly distributed in [min, max]. */
  logUniform(min: number, max: number): number {
    return Math.round(Math.exp(Math.log(min) + this.next() * (Math.log(max) - Math.log(min))));
  }

  bytes(length: number): Buffer {
    const out = Buffer.allocUnsafe(length);
    for (let i = 0; i < length; i++) out[i] = this.nextUint32() & 0xff;
    return out;
  }

  /** A derived, independent stream of pseudo-random bytes (for bulk file content). */
  byteStream(label: string): ByteStream {
    return new ByteStream(`${this.nextUint32()}:${label}`);
  }
}

/**
 * Bulk deterministic bytes: AES-128-CTR keystream keyed by a hash of the label (fast enough for a
 * gigabyte; the PRNG above is for decisions, not bulk content).
 */
export class ByteStream {
  readonly #cipher;

  constructor(label: string) {
    const digest = createHash('sha256').update(label).digest();
    this.#cipher = createCipheriv('aes-128-ctr', digest.subarray(0, 16), digest.subarray(16, 32));
  }

  /** The next `length` bytes of the stream. */
  read(length: number): Buffer {
    return this.#cipher.update(Buffer.alloc(length));
  }
}
