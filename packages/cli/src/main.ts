// The entry point of manage.ts (run from a bundle by packages/cli/launcher.cjs, or by tsx).
import { availableParallelism } from 'node:os';
import { runCli } from './program';
import { sizeThreadPool } from './thread-pool';

// The AWS SDK warns on every start that its releases from 2027 need Node 22. The CLI runs on the
// Node it was installed with; the Lambda runtime is lambda_runtime in terraform.tfvars.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
// Two pool threads per core (libuv's default is 4) for the commands that scan or write files;
// `scan` sizes the pool to its own concurrency instead (commands/scan.ts).
sizeThreadPool(Math.max(4, 2 * availableParallelism()));

/** Exits once stdout and stderr are flushed: process.exit() alone cuts off output to a pipe. */
function exitAfterFlush(code: number): void {
  process.exitCode = code;
  let pending = 2;
  const done = () => {
    pending -= 1;
    if (pending === 0) process.exit(code);
  };
  process.stdout.write('', done);
  process.stderr.write('', done);
}

runCli(process.argv.slice(2)).then(exitAfterFlush, (error: unknown) => {
  console.error(error);
  exitAfterFlush(1);
});
