import path from 'node:path';

import { loadTfvars } from '../../packages/deployment/src';
import { startLocalStack, type LocalStack } from '../../packages/local/src';
import type { BenchContext } from './context';
import { lambdaZips } from './packaging';

/** The local stack over the deployment zips, started once per run and stopped by the harness. */
export async function localStack(ctx: BenchContext): Promise<LocalStack> {
  if (ctx.stack === undefined) {
    let stopping = false;
    ctx.stack = (async () => {
      const zipsDir = await lambdaZips(ctx);
      ctx.log('starting the local stack');
      const stack = await startLocalStack({
        config: await loadTfvars(path.join(ctx.repoRoot, 'terraform.tfvars')),
        dataDir: path.join(ctx.workDir, 'local-stack'),
        zipsDir,
        port: 0,
        statusIntervalMs: 0,
        // Worker problems only; the alerts themselves are counted, not printed.
        print: (text) => {
          if (text.startsWith('[local]') && !stopping) ctx.log(text.split('\n')[0] ?? '');
        },
      });
      ctx.cleanups.push(() => {
        stopping = true; // the dispatcher's cut-off long polls are expected then
        return stack.stop();
      });
      return stack;
    })();
  }
  return ctx.stack;
}
