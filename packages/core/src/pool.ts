// The one worker pool: every "N at a time" in BinaryAlert (objects in the analyzer, SQS batches
// in the batcher, files in `scan`, rule files in `compile-rules`) goes through these.

/**
 * Calls `fn` on each item with at most `limit` calls in flight. Items are pulled as workers free
 * up, so an async iterable (a directory walk) is never read ahead by more than `limit`. The first
 * failure rejects the whole run; calls already started still finish.
 */
export async function forEachConcurrent<T>(
  items: Iterable<T> | AsyncIterable<T>,
  limit: number,
  fn: (item: T, index: number) => Promise<void>,
): Promise<void> {
  const iterator =
    Symbol.asyncIterator in items ? items[Symbol.asyncIterator]() : items[Symbol.iterator]();
  let pulled = 0;
  let failed = false;
  const worker = async (): Promise<void> => {
    while (!failed) {
      const next = await iterator.next();
      if (next.done) return;
      const index = pulled++;
      try {
        await fn(next.value, index);
      } catch (error) {
        failed = true;
        throw error;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.floor(limit) || 1) }, worker));
}

/** Maps `items` through `fn` with at most `limit` calls in flight; results keep the input order. */
export async function mapConcurrent<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T, index: number) => Promise<R>,
): Promise<R[]> {
  const results = new Array<R>(items.length);
  await forEachConcurrent(items.entries(), Math.min(limit, items.length), async ([index, item]) => {
    results[index] = await fn(item, index);
  });
  return results;
}

/** At most `limit` runs of a phase at once (e.g. scans), whatever runs around them. */
export class Slots {
  #free: number;
  readonly #waiting: (() => void)[] = [];

  constructor(limit: number) {
    this.#free = Math.max(1, Math.floor(limit) || 1);
  }

  async run<R>(fn: () => Promise<R>): Promise<R> {
    if (this.#free > 0) this.#free -= 1;
    else await new Promise<void>((resolve) => this.#waiting.push(resolve));
    try {
      return await fn();
    } finally {
      const next = this.#waiting.shift();
      if (next) next();
      else this.#free += 1;
    }
  }
}
