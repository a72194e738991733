import type { ChildProcess } from 'node:child_process';

/**
 * Listens for a child's errors, so that none is thrown in the stack's process, and reports a child
 * that could not be started (EAGAIN with no processes left, a missing executable) as an exit:
 * Node then emits 'error' and 'close' but never 'exit', which is what the stack's bookkeeping
 * (a worker's invocation, an emulator's restart) waits for.
 */
export function exitWhenSpawnFails(
  child: ChildProcess,
  name: string,
  print: (text: string) => void,
): void {
  let reported = false;
  child.on('error', (error) => {
    print(`[local] ${name}: ${error.message}`);
    // Never started: no pid, and Node has put the negative errno in exitCode.
    if (child.pid === undefined && !reported) {
      reported = true;
      child.emit('exit', child.exitCode, null);
    }
  });
}
