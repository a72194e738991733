// The public face of the local stack. Importing it loads no emulator: the constants come from a
// module of their own, and startLocalStack loads the stack (dynalite, local-aws-sqs, the S3
// store, the Lambda runtime) on its first call, so the CLI can show defaults cheaply.
import type { LocalStack, LocalStackOptions } from './stack';

export {
  LOCAL_CREDENTIALS,
  LOCAL_ACCOUNT_ID,
  DEFAULT_LOCAL_PORT,
  DEFAULT_DATA_DIR,
  DEFAULT_LOCAL_ENDPOINT,
} from './constants';
export { DataDirLockedError } from './lock';
export { startS3Server, type S3Server, type S3ServerOptions } from './s3/server';
export { startSqsServer, type SqsServer } from './sqs-front';
export type { LocalStack, LocalStackOptions, LocalStatus } from './stack';
export type { AlertRecord } from './alerts';
export type { WorkerKill } from './kill-journal';
export { parseEmfLine, type EmfMetric, type MetricTotal } from './metrics';
export type { InvokeOutcome } from './lambda';
export type { FaultPlan } from './faults';
export type { ReconcileOutcome, ReconcileTarget } from './reconcile';

/** Starts the local stack (see `./stack`); the emulators load here, not on import. */
export async function startLocalStack(options: LocalStackOptions): Promise<LocalStack> {
  // require, not import(): this package is CommonJS, and Node16 resolution would want './stack.js',
  // which jest's resolver does not map back to the TypeScript source.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const stack = require('./stack') as typeof import('./stack');
  return stack.startLocalStack(options);
}

/** Queues again the objects without a current verdict (see `./reconcile`); the SDK clients it
 * needs load on the first call, not on import. */
export async function reconcileVerdicts(
  ...args: Parameters<(typeof import('./reconcile'))['reconcileVerdicts']>
): ReturnType<(typeof import('./reconcile'))['reconcileVerdicts']> {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const reconcile = require('./reconcile') as typeof import('./reconcile');
  return reconcile.reconcileVerdicts(...args);
}

/** The stack's DynamoDB server (dynalite and BatchExecuteStatement, see `./dynamo-server`);
 * dynalite loads on the first call, not on import. */
export function createDynamoServer(
  ...args: Parameters<(typeof import('./dynamo-server'))['createDynamoServer']>
): ReturnType<(typeof import('./dynamo-server'))['createDynamoServer']> {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const server = require('./dynamo-server') as typeof import('./dynamo-server');
  return server.createDynamoServer(...args);
}
