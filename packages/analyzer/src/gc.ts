import { setFlagsFromString } from 'node:v8';

/**
 * Makes V8 collect the old generation in one pause when it reaches its limit, instead of starting
 * incremental marking ahead of it. Why: between long native scans the analyzer allocates little
 * JavaScript, so V8 keeps the old generation's limit tight and, with incremental marking, starts a
 * new marking cycle almost as soon as the last one ended. In the local pipeline bench a worker ran
 * about 240 Mark-Compacts per run, re-marking the SDK's ~20 MB of live objects each time, the
 * collector taking about a quarter of its CPU. Without incremental marking it ran 3. V8 checks the flag whenever it would
 * start marking, so setting it at start-up takes effect; Lambda's NODE_OPTIONS cannot carry it.
 */
export function collectGarbageInOnePause(): void {
  setFlagsFromString('--no-incremental-marking');
}
