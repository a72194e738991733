import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { FaultInjector } from './faults';
import type { RunningInvocation } from './lambda';

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
  describe('killing analyzer workers', () => {
    const sleepers: ChildProcess[] = [];
    const sleeper = () => {
      const child = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)']);
      sleepers.push(child);
      return child;
    };
    afterEach(() => {
      for (const child of sleepers.splice(0)) child.kill('SIGKILL');
    });
    const exited = (child: ChildProcess) =>
      child.exitCode !== null || child.signalCode !== null
        ? Promise.resolve()
        : once(child, 'exit').then(() => undefined);

    it('kills at a random instant of the invocation, only if it still runs then', async () => {
      const [first, second] = [sleeper(), sleeper()];
      const events = [{ id: 'first' }, { id: 'second' }, { id: 'second, next' }];
      const workers = [
        { pid: first.pid, busy: true, invocation: 'a', event: events[0] as object },
        { pid: second.pid, busy: true, invocation: 'b', event: events[1] as object },
      ];
      // Both rolled to die: the first at 0.5 of 600 ms, the second at 0.9 of it.
      const rolls = [0, 0.5, 0, 0.9];
      const faults = new FaultInjector({
        analyzerKillRate: 0.5,
        analyzerKillWithinMs: 600,
        random: () => rolls.shift() ?? 1,
      });
      const kills: { killed: RunningInvocation; atMs: number }[] = [];
      const started = performance.now();
      const stop = faults.killWorkers({ workerInfo: () => workers }, 'analyzer', (killed) =>
        kills.push({ killed, atMs: performance.now() - started }),
      );
      try {
        await new Promise((resolve) => setTimeout(resolve, 250));
        // The second worker finishes its invocation and takes another before its instant.
        workers[1] = { ...workers[1]!, invocation: 'c', event: events[2] as object };
        await exited(first);
        await new Promise((resolve) => setTimeout(resolve, 700));
      } finally {
        await stop();
      }

      expect(first.signalCode).toBe('SIGKILL');
      expect(kills).toHaveLength(1);
      expect(kills[0]!.killed).toEqual({ pid: first.pid, invocation: 'a', event: events[0] });
      // Rolled at the first tick (100 ms), killed 300 ms later: not at the start.
      expect(kills[0]!.atMs).toBeGreaterThanOrEqual(350);
      expect(second.exitCode).toBeNull();
      expect(second.signalCode).toBeNull();
      expect(faults.injected.analyzerKill).toBe(1);
    });

    it('calls off the kills still to come when stopped', async () => {
      const child = sleeper();
      const faults = new FaultInjector({
        analyzerKillRate: 1,
        analyzerKillWithinMs: 400,
        random: () => 0.99,
      });
      const workers = [{ pid: child.pid, busy: true, invocation: 'a', event: {} }];
      const stop = faults.killWorkers({ workerInfo: () => workers }, 'analyzer');
      await new Promise((resolve) => setTimeout(resolve, 150)); // rolled, to die at ~400 ms
      await stop();
      await new Promise((resolve) => setTimeout(resolve, 500));

      expect(child.signalCode).toBeNull();
      expect(faults.injected.analyzerKill).toBe(0);
    });
  });
});
