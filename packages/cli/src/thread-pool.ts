// libuv's thread pool runs the YARA scans and the asynchronous file system calls. libuv reads
// UV_THREADPOOL_SIZE once, when the pool first starts, so it is sized before any of that work.

/** Read when this module is evaluated, before main.ts sets its default: the user's own value wins. */
const chosenByUser = process.env.UV_THREADPOOL_SIZE !== undefined;

/** Sizes libuv's thread pool unless the user set UV_THREADPOOL_SIZE; only before its first use. */
export function sizeThreadPool(threads: number): void {
  if (!chosenByUser) process.env.UV_THREADPOOL_SIZE = String(Math.max(1, Math.floor(threads)));
}
