/**
 * Milliseconds on the monotonic clock behind `process.hrtime` (CLOCK_MONOTONIC), which every thread
 * of the process shares, unlike `performance.now()` (relative to each thread's start); the yara
 * addon's deadlines use the same clock.
 */
export function monotonicMs(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}
