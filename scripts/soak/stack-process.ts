// The local stack in a process of its own, so the soak can kill it with SIGKILL and start it
// again on the same data directory (scripts/soak/soak.ts). Settings arrive as JSON in argv[2];
// the stack's console goes to the soak's log file.
import { appendFileSync } from 'node:fs';
import type { BinaryAlertConfig } from '../../packages/deployment/src';
import { startLocalStack, type FaultPlan } from '../../packages/local/src';

export interface StackProcessSettings {
  config: BinaryAlertConfig;
  dataDir: string;
  zipsDir: string;
  port: number;
  visibilityTimeoutSeconds: number;
  faults: Omit<FaultPlan, 'random'>;
  seed: number;
  logPath: string;
}

export type StackProcessMessage =
  | {
      type: 'ready';
      endpoint: string;
      queueUrl: string;
      deadLetterQueueUrl: string;
    }
  | { type: 'emulators-killed'; pids: number[] }
  | {
      type: 'report';
      faults: Record<string, number>;
      emulatorRestarts: number;
      /** Messages this stack's start-up reconciliation queued. */
      requeuedAtStart: number;
    };

/** mulberry32: a small seeded generator, so a soak's faults can be replayed. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

async function main(): Promise<void> {
  const settings = JSON.parse(process.argv[2] ?? '{}') as StackProcessSettings;
  const stack = await startLocalStack({
    config: settings.config,
    dataDir: settings.dataDir,
    zipsDir: settings.zipsDir,
    port: settings.port,
    visibilityTimeoutSeconds: settings.visibilityTimeoutSeconds,
    statusIntervalMs: 5000,
    print: (text) => appendFileSync(settings.logPath, `${text}\n`),
    faults: { ...settings.faults, random: seededRandom(settings.seed) },
  });
  const send = (message: StackProcessMessage): void => void process.send?.(message);
  send({
    type: 'ready',
    endpoint: stack.endpoint,
    queueUrl: stack.queueUrl,
    deadLetterQueueUrl: stack.deadLetterQueueUrl,
  });
  process.on('message', (message: { type?: string }) => {
    if (message.type === 'report') {
      void stack.reconciled.then((outcome) =>
        send({
          type: 'report',
          faults: { ...stack.faults },
          emulatorRestarts: stack.emulators.s3.restarts + stack.emulators.dynamo.restarts,
          requeuedAtStart: outcome?.queued ?? 0,
        }),
      );
    } else if (message.type === 'kill-emulators') {
      // The S3 store and DynamoDB die at once, mid-load (the stack restarts them).
      const pids = [stack.emulators.s3.pid, stack.emulators.dynamo.pid].filter(
        (pid): pid is number => pid !== undefined,
      );
      for (const pid of pids) process.kill(pid, 'SIGKILL');
      send({ type: 'emulators-killed', pids });
    } else if (message.type === 'stop') {
      void stack.stop().finally(() => process.exit(0));
    }
  });
  process.on('disconnect', () => void stack.stop().finally(() => process.exit(0)));
}

if (require.main === module) {
  main().catch((error: unknown) => {
    process.stderr.write(`soak stack: ${String(error)}\n`);
    process.exit(1);
  });
}
