import { forEachConcurrent, mapConcurrent, Slots } from './pool';

describe('mapConcurrent', () => {
  it('keeps at most `limit` calls in flight and the results in input order', async () => {
    let inFlight = 0;
    let maxInFlight = 0;
    const delays = [30, 5, 20, 1, 10, 15];

    const results = await mapConcurrent(delays, 2, async (delay, index) => {
      inFlight += 1;
      maxInFlight = Math.max(maxInFlight, inFlight);
      await new Promise((resolve) => setTimeout(resolve, delay));
      inFlight -= 1;
      return index * 10;
    });

    expect(results).toEqual([0, 10, 20, 30, 40, 50]);
    expect(maxInFlight).toBe(2);
  });

  it('runs everything at once when the limit exceeds the items', async () => {
    let maxInFlight = 0;
    let inFlight = 0;

    await mapConcurrent([1, 2, 3], 10, async () => {
      maxInFlight = Math.max(maxInFlight, ++inFlight);
      await new Promise((resolve) => setTimeout(resolve, 5));
      inFlight -= 1;
    });

    expect(maxInFlight).toBe(3);
  });

  it('handles no items', async () => {
    expect(await mapConcurrent([], 4, () => Promise.resolve(1))).toEqual([]);
  });
});

describe('forEachConcurrent', () => {
  it('pulls an async iterable no more than `limit` items ahead of the calls', async () => {
    let pulled = 0;
    let finished = 0;
    let maxAhead = 0;
    async function* walk() {
      for (let i = 0; i < 20; i++) {
        await Promise.resolve(); // a directory read between items
        pulled += 1;
        maxAhead = Math.max(maxAhead, pulled - finished);
        yield i;
      }
    }
    const seen: number[] = [];

    await forEachConcurrent(walk(), 3, async (item, index) => {
      expect(index).toBe(item);
      await new Promise((resolve) => setTimeout(resolve, item % 4));
      seen.push(item);
      finished += 1;
    });

    expect(seen.sort((a, b) => a - b)).toEqual(Array.from({ length: 20 }, (_, i) => i));
    expect(maxAhead).toBe(3);
  });

  it('rejects with the first failure and starts nothing after it', async () => {
    const started: number[] = [];

    const run = forEachConcurrent([0, 1, 2, 3, 4, 5, 6, 7], 2, async (item) => {
      started.push(item);
      await new Promise((resolve) => setTimeout(resolve, 5));
      if (item === 1) throw new Error('item 1 failed');
    });

    await expect(run).rejects.toThrow('item 1 failed');
    expect(started).toEqual([0, 1, 2]);
  });
});

describe('Slots', () => {
  it('runs at most `limit` at once and every waiter in turn, also after a failure', async () => {
    const slots = new Slots(2);
    let inFlight = 0;
    let maxInFlight = 0;
    const order: number[] = [];

    const results = await Promise.allSettled(
      [20, 5, 10, 1, 3].map((delay, index) =>
        slots.run(async () => {
          inFlight += 1;
          maxInFlight = Math.max(maxInFlight, inFlight);
          await new Promise((resolve) => setTimeout(resolve, delay));
          inFlight -= 1;
          order.push(index);
          if (index === 1) throw new Error('scan failed');
          return index;
        }),
      ),
    );

    expect(maxInFlight).toBe(2);
    expect(order.sort()).toEqual([0, 1, 2, 3, 4]);
    expect(results.map((r) => r.status)).toEqual([
      'fulfilled',
      'rejected',
      'fulfilled',
      'fulfilled',
      'fulfilled',
    ]);
  });
});
