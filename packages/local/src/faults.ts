import type { IncomingMessage } from 'node:http';
import { Transform, type TransformCallback } from 'node:stream';

import type { LambdaRuntime, RunningInvocation } from './lambda';

/**
 * Faults the local stack injects on purpose, for soak and failure tests. Each rate is the chance
 * (0..1) that one eligible request fails that way. They act at the service boundary, in the
 * stack's front server, never in the Lambda code: a function sees exactly what AWS could send.
 */
export interface FaultPlan {
  /** GetObject answers 500 InternalError. */
  s3GetErrorRate?: number;
  /** GetObject streams its body slowly (`slowReadMs` pause before each chunk). */
  s3SlowReadRate?: number;
  slowReadMs?: number;
  /** DynamoDB answers 400 ProvisionedThroughputExceededException. */
  dynamoThrottleRate?: number;
  /** SNS Publish answers 500 InternalError. */
  snsPublishErrorRate?: number;
  /** An object-created notification is delivered twice (S3 delivers at least once). */
  duplicateNotificationRate?: number;
  /** An analyzer invocation's worker is killed with SIGKILL while it runs. */
  analyzerKillRate?: number;
  /** ...at a random instant of the invocation's first this many ms (default 1,000), if it still
   * runs then: any step of its work can be cut off, not only its start. */
  analyzerKillWithinMs?: number;
  /** The worker of a Lambda invocation is killed with SIGKILL right after SNS stored its Publish,
   * before it answers: the alert went out and its sender never learns it (SNS at-least-once). */
  publisherKillRate?: number;
  /** The senders of this many first Publishes are killed so, whatever the rate says. */
  publisherKillFirst?: number;
  /** GetObject of keys starting with this always answers 500: their messages can never succeed. */
  poisonPrefix?: string;
  /** Random numbers in [0, 1) (default Math.random; a seeded one makes a run repeatable). */
  random?: () => number;
}

export type FaultKind =
  | 's3GetError'
  | 's3SlowRead'
  | 'dynamoThrottle'
  | 'snsPublishError'
  | 'duplicateNotification'
  | 'analyzerKill'
  | 'publisherKill'
  | 'poison';

/** Decides which requests fail, and counts each fault injected. */
export class FaultInjector {
  readonly injected: Record<FaultKind, number> = {
    s3GetError: 0,
    s3SlowRead: 0,
    dynamoThrottle: 0,
    snsPublishError: 0,
    duplicateNotification: 0,
    analyzerKill: 0,
    publisherKill: 0,
    poison: 0,
  };

  /** Publishes whose sender could have been killed so far (publisherKillFirst counts them). */
  private publishes = 0;

  constructor(private readonly plan: FaultPlan = {}) {}

  get slowReadMs(): number {
    return this.plan.slowReadMs ?? 50;
  }

  private roll(kind: FaultKind, rate: number | undefined): boolean {
    if (!rate || (this.plan.random ?? Math.random)() >= rate) return false;
    this.injected[kind] += 1;
    return true;
  }

  /** Whether any S3 fault is planned: they are injected in the front, so S3 must go through it. */
  get injectsS3Faults(): boolean {
    const { poisonPrefix, s3GetErrorRate, s3SlowReadRate } = this.plan;
    return poisonPrefix !== undefined || Boolean(s3GetErrorRate) || Boolean(s3SlowReadRate);
  }

  /** What to do to an S3 GetObject of `key`. */
  s3Get(key: string): 'poison' | 'error' | 'slow' | undefined {
    if (this.plan.poisonPrefix !== undefined && key.startsWith(this.plan.poisonPrefix)) {
      this.injected.poison += 1;
      return 'poison';
    }
    if (this.roll('s3GetError', this.plan.s3GetErrorRate)) return 'error';
    if (this.roll('s3SlowRead', this.plan.s3SlowReadRate)) return 'slow';
    return undefined;
  }

  /** Whether DynamoDB faults are planned: injected in the front, so DynamoDB must go through it. */
  get injectsDynamoFaults(): boolean {
    return Boolean(this.plan.dynamoThrottleRate);
  }

  dynamoThrottle(): boolean {
    return this.roll('dynamoThrottle', this.plan.dynamoThrottleRate);
  }

  snsPublishError(): boolean {
    return this.roll('snsPublishError', this.plan.snsPublishErrorRate);
  }

  publisherKill(): boolean {
    this.publishes += 1;
    if (this.publishes <= (this.plan.publisherKillFirst ?? 0)) {
      this.injected.publisherKill += 1;
      return true;
    }
    return this.roll('publisherKill', this.plan.publisherKillRate);
  }

  duplicateNotification(): boolean {
    return this.roll('duplicateNotification', this.plan.duplicateNotificationRate);
  }

  /**
   * Rolls once for each invocation of `fn` as it starts and SIGKILLs the worker of the unlucky
   * ones at a random instant of the invocation's first `analyzerKillWithinMs`, as a crashed
   * container would die; an invocation that ended before its instant is left alone (and not
   * counted). `onKill` hears of each kill as it is sent (the evidence a soak classifies repeated
   * alerts by). Returns its stop function, which also calls off the kills still to come.
   */
  killWorkers(
    runtime: Pick<LambdaRuntime, 'workerInfo'>,
    fn: string,
    onKill: (killed: RunningInvocation) => void = () => undefined,
  ): () => Promise<void> {
    const rate = this.plan.analyzerKillRate;
    if (!rate) return () => Promise.resolve();
    const random = this.plan.random ?? Math.random;
    const withinMs = this.plan.analyzerKillWithinMs ?? 1000;
    const rolled = new WeakSet<object>();
    const pending = new Set<NodeJS.Timeout>();
    const timer = setInterval(() => {
      for (const worker of runtime.workerInfo(fn)) {
        const { event, invocation, pid } = worker;
        if (!worker.busy || pid === undefined || invocation === undefined) continue;
        if (typeof event !== 'object' || !event || rolled.has(event)) continue;
        rolled.add(event);
        if (random() >= rate) continue;
        const kill = setTimeout(() => {
          pending.delete(kill);
          const stillRunning = runtime
            .workerInfo(fn)
            .some((now) => now.busy && now.pid === pid && now.event === event);
          if (!stillRunning) return;
          this.injected.analyzerKill += 1;
          onKill({ pid, invocation, event });
          try {
            process.kill(pid, 'SIGKILL');
          } catch {
            // already gone
          }
        }, random() * withinMs);
        pending.add(kill);
      }
    }, 100);
    return () => {
      clearInterval(timer);
      for (const kill of pending) clearTimeout(kill);
      pending.clear();
      return Promise.resolve();
    };
  }
}

/** Passes a response body on with a pause before each chunk (a slow disk or network). */
export function slowStream(pauseMs: number): Transform {
  return new Transform({
    transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback) {
      setTimeout(() => callback(null, chunk), pauseMs);
    },
  });
}

/** Whether a request is an S3 GetObject (a GET naming a key, without a sub-resource). */
export function isGetObject(req: IncomingMessage, key: string | undefined): key is string {
  return req.method === 'GET' && key !== undefined && !(req.url ?? '').includes('?uploadId=');
}
