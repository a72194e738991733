/**
 * Runs `task` with a signal that Ctrl-C (SIGINT) aborts, so a command can stop watching and say
 * what goes on without it; the SIGINT listener is gone once the task settles.
 */
export async function abortOnInterrupt<T>(task: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const controller = new AbortController();
  const onInterrupt = (): void => controller.abort();
  process.once('SIGINT', onInterrupt);
  try {
    return await task(controller.signal);
  } finally {
    process.removeListener('SIGINT', onInterrupt);
  }
}
