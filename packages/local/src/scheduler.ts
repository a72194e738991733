import type { InvokeOutcome, LambdaRuntime } from './lambda';

export interface DispatchScheduleOptions {
  runtime: LambdaRuntime;
  dispatcherFunction: string;
  analyzerFunction: string;
  /** The dispatcher waits while this many analyzer invocations are pending. */
  analyzerWorkers: number;
  /** Pause between runs that found no work (default 1000 ms). */
  intervalMs?: number;
  /** A failed run (each distinct error once in a row). */
  onFailure: (functionName: string, outcome: InvokeOutcome) => void;
}

/** The EventBridge event a scheduled rule sends. */
function scheduledEvent(): unknown {
  return {
    source: 'aws.events',
    'detail-type': 'Scheduled Event',
    time: new Date().toISOString(),
    detail: {},
  };
}

/**
 * The dispatcher on a short local schedule: one run after another, never overlapping; straight on
 * while runs start invocations, and only when an analyzer worker is free. Returns its stop function,
 * which resolves once the run in progress ends (stopping the runtime ends it at once).
 */
export function startDispatchSchedule(options: DispatchScheduleOptions): () => Promise<void> {
  const { runtime } = options;
  let stopped = false;
  let wake: (() => void) | undefined;
  const sleep = (ms: number): Promise<void> =>
    new Promise((ok) => {
      const timer = setTimeout(ok, ms);
      wake = () => {
        clearTimeout(timer);
        ok();
      };
    });
  const loop = (async () => {
    let lastError = '';
    while (!stopped) {
      const outcome = await runtime.invoke(options.dispatcherFunction, scheduledEvent());
      while (!stopped && runtime.pending(options.analyzerFunction) >= options.analyzerWorkers)
        await sleep(100);
      if (stopped) break;
      const started = outcome.ok
        ? (outcome.payload as { invocations?: unknown } | null)?.invocations
        : 0;
      let pause = typeof started === 'number' && started > 0 ? 0 : (options.intervalMs ?? 1000);
      if (!outcome.ok) {
        const text = `${outcome.error.errorType}: ${outcome.error.errorMessage}`;
        if (text !== lastError) options.onFailure(options.dispatcherFunction, outcome);
        lastError = text;
        pause = Math.max(pause, 5000);
      } else lastError = '';
      await sleep(pause);
    }
  })();
  return () => {
    stopped = true;
    wake?.();
    return loop;
  };
}
