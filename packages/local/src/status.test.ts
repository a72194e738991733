import { formatStatus, startStatusLine, type LocalStatus } from './status';

const status = (analyzed: number): LocalStatus => ({
  queued: 3,
  inFlight: 2,
  deadLetters: 1,
  analyzed,
  matched: 2,
  alerts: 1,
  skipped: 4,
  failed: 5,
  partial: 6,
  errors: 7,
});

describe('the status line', () => {
  it('carries the rate, the verdict counts, the queue depth and the dead letters', () => {
    expect(formatStatus(status(10), 2.5)).toBe(
      '[local] 2.5 analyzed/s | analyzed 10, matched 2, alerts 1, skipped 4, failed 5, partial 6 | ' +
        'queue 3 (in flight 2), dead letters 1 | errors 7',
    );
  });

  it('prints the analysis rate between two lines, and nothing while nothing changes', async () => {
    let analyzed = 0;
    const printed: string[] = [];
    const stop = startStatusLine(
      () => Promise.resolve(status(analyzed)),
      200,
      (line) => printed.push(line),
    );
    analyzed = 20; // 20 analyses in the first 200 ms: 100/s
    await new Promise((ok) => setTimeout(ok, 1100));
    await stop();

    const rates = printed.map((line) => Number(/\[local\] ([\d.]+) analyzed\/s/.exec(line)?.[1]));
    expect(rates[0]).toBeGreaterThan(40); // timers run late on a loaded machine, never early
    expect(rates[0]).toBeLessThanOrEqual(100);
    // Then idle: one line at 0/s, and no repeats.
    expect(rates.slice(1)).toEqual([0]);
  });
});
