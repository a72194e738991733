import { FaultInjector } from './faults';

describe('FaultInjector', () => {
  it('kills the senders of the first publishes it is told to, then at its rate, counting each', () => {
    const rolls = [0.05, 0.5, 0.05, 0.9];
    const faults = new FaultInjector({
      publisherKillFirst: 2,
      publisherKillRate: 0.1,
      random: () => rolls.shift() ?? 1,
    });

    const kills = Array.from({ length: 6 }, () => faults.publisherKill());

    expect(kills).toEqual([true, true, true, false, true, false]);
    expect(faults.injected.publisherKill).toBe(4);
  });

  it('kills no sender without a plan for it', () => {
    const faults = new FaultInjector({ analyzerKillRate: 1, random: () => 0 });

    expect([faults.publisherKill(), faults.publisherKill()]).toEqual([false, false]);
    expect(faults.injected.publisherKill).toBe(0);
  });
});
