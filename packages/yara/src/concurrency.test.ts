// Scans must run on the libuv thread pool: the event loop stays free and two scans overlap.
// These tests check behaviour (interleaving), never absolute speed.
import { native, type NativeScanResult } from './binding';
import { makeTempDir, SLOW_RULE, type TempDir } from './testing';

// About 9 million loop iterations: long enough to observe, short enough for a busy machine.
const SLOW_INPUT = Buffer.alloc(3000);

describe('scan concurrency', () => {
  let dir: TempDir;
  beforeEach(() => {
    dir = makeTempDir();
  });
  afterEach(() => dir.remove());

  async function slowRules() {
    const compiled = await native.compile(
      [{ path: dir.write('slow.yar', SLOW_RULE), namespace: 'slow' }],
      {},
    );
    if (!compiled.rules) throw new Error(JSON.stringify(compiled.errors));
    return compiled.rules;
  }

  it('runs two scans at the same time in worker threads', async () => {
    const rules = await slowRules();

    const [a, b]: NativeScanResult[] = await Promise.all([
      rules.scanBuffer(SLOW_INPUT, { timeoutSeconds: 0 }),
      rules.scanBuffer(SLOW_INPUT, { timeoutSeconds: 0 }),
    ]);

    // Each started before the other ended: their running intervals intersect.
    expect(a!.startedAt).toBeLessThan(b!.endedAt);
    expect(b!.startedAt).toBeLessThan(a!.endedAt);
  });

  it('keeps the event loop responsive while scans run', async () => {
    const rules = await slowRules();
    const ticks: number[] = [];
    // process.hrtime reads the monotonic clock the native side stamps startedAt/endedAt with.
    const timer = setInterval(() => ticks.push(Number(process.hrtime.bigint()) / 1e6), 5);

    let results: NativeScanResult[];
    try {
      results = await Promise.all([
        rules.scanBuffer(SLOW_INPUT, { timeoutSeconds: 0 }),
        rules.scanBuffer(SLOW_INPUT, { timeoutSeconds: 0 }),
      ]);
    } finally {
      clearInterval(timer);
    }

    const start = Math.max(...results.map((r) => r.startedAt));
    const end = Math.min(...results.map((r) => r.endedAt));
    const ticksWhileBothRan = ticks.filter((t) => t > start && t < end);
    expect(ticksWhileBothRan.length).toBeGreaterThanOrEqual(2);
  });
});
