import type { ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdir, rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { errorText } from '@binaryalert/core';

import { exitWhenSpawnFails } from './child-exit';
import { CodeVersions, type Deployment } from './lambda-code';
import { makeWorkerTmp, spawnWorker, workerIsolation, type WorkerIsolation } from './sandbox';

/** The runner script each worker process executes (plain JS: it runs outside any TS loader). */
const WORKER_SCRIPT = resolve(__dirname, '..', 'runtime', 'lambda-worker.cjs');
/** Preloaded into each worker: `*.localhost` resolves to 127.0.0.1 (virtual-hosted S3 requests). */
const PRELOAD_SCRIPT = resolve(__dirname, '..', 'runtime', 'lambda-preload.cjs');

/** A function the local Lambda runtime can invoke. */
export interface LocalFunction {
  name: string;
  zipPath: string;
  /** Handler as in Terraform, e.g. `index.handler`. */
  handler: string;
  timeoutSeconds: number;
  memoryMb: number;
  /** Environment Terraform sets (the runtime adds the AWS_* and Lambda variables). */
  environment: Record<string, string>;
  /** Most invocations running at once (worker processes = warm containers). */
  concurrency: number;
}

export interface LambdaError {
  errorType: string;
  errorMessage: string;
  trace?: string[];
}

export type InvokeOutcome =
  | { ok: true; version: string; payload: unknown }
  | { ok: false; version: string; error: LambdaError };

/** What an invocation gets once the runtime is stopping (queued) or stopped. */
const STOPPED: InvokeOutcome = {
  ok: false,
  version: '$LATEST',
  error: { errorType: 'Runtime.Stopped', errorMessage: 'the local stack is stopping' },
};

export interface LambdaRuntimeOptions {
  /** Code directories, worker temp dirs and the version record live here. */
  dataDir: string;
  region: string;
  accountId: string;
  /** Variables every function gets: AWS_ENDPOINT_URL, credentials. */
  baseEnvironment: Record<string, string>;
  /** Each line a worker writes to stdout/stderr. */
  onLog: (functionName: string, line: string) => void;
  /** A worker process died in the middle of an invocation (not when the runtime stops). */
  onWorkerDeath?: (functionName: string, event: unknown) => void;
  /** An invocation ran out of time: its worker is killed right after this call. */
  onTimeout?: (functionName: string, invocation: RunningInvocation) => void;
}

/** An invocation running in a worker process: its request id (awsRequestId) and event. */
export interface RunningInvocation {
  pid: number | undefined;
  invocation: string;
  event: unknown;
}

/** A function name this runtime does not know. */
export class FunctionNotFoundError extends Error {
  override readonly name = 'FunctionNotFoundError';
}

interface Worker {
  id: number;
  process: ChildProcess;
  deployment: Deployment;
  busy: boolean;
  ready: Promise<void>;
  current?: { id: string; event: unknown; finish: (outcome: InvokeOutcome) => void };
  tmpDir: string;
}

interface Pending {
  event: unknown;
  resolve: (outcome: InvokeOutcome) => void;
}

/**
 * Runs Lambda functions from their deployment zips: each zip is unpacked into its own directory,
 * every distinct zip (by SHA-256) becomes the function's next version, and invocations run in a
 * bounded pool of worker processes that stay warm between invocations.
 */
export class LambdaRuntime {
  private readonly functions = new Map<string, LocalFunction>();
  private readonly workers = new Map<string, Worker[]>();
  private readonly queues = new Map<string, Pending[]>();
  private code?: CodeVersions;
  private nextWorkerId = 1;
  private stopped = false;
  private isolation?: WorkerIsolation;

  constructor(private readonly options: LambdaRuntimeOptions) {}

  /** Registers the functions and loads the persisted version record. */
  async init(functions: LocalFunction[]): Promise<void> {
    await mkdir(this.options.dataDir, { recursive: true });
    this.isolation = await workerIsolation(this.options.dataDir, {
      worker: WORKER_SCRIPT,
      preload: PRELOAD_SCRIPT,
    });
    this.code = new CodeVersions(
      join(this.options.dataDir, 'versions.json'),
      this.isolation.codeRoot,
    );
    await this.code.load();
    for (const fn of functions) {
      this.functions.set(fn.name, fn);
      this.workers.set(fn.name, []);
      this.queues.set(fn.name, []);
    }
  }

  has(name: string): boolean {
    return this.functions.has(name);
  }

  /** The function's current deployment (lambda-code.ts), retiring idle workers of older ones. */
  async deploy(name: string): Promise<Deployment> {
    const fn = this.functions.get(name);
    if (!fn) throw new FunctionNotFoundError(`Function not found: ${name}`);
    const previous = this.code!.current(name);
    const deployment = await this.code!.deploy(name, fn.zipPath);
    if (deployment !== previous) this.retireOldWorkers(name);
    return deployment;
  }

  /**
   * Worker processes of a function: pid and whether it is running an invocation (with its request
   * id and event).
   */
  workerInfo(
    name: string,
  ): { pid: number | undefined; busy: boolean; invocation?: string; event?: unknown }[] {
    return (this.workers.get(name) ?? []).map((worker) => ({
      pid: worker.process.pid,
      busy: worker.busy,
      ...(worker.current ? { invocation: worker.current.id, event: worker.current.event } : {}),
    }));
  }

  /** The invocation each busy worker process runs right now, by pid, across all functions. */
  runningByPid(): Map<number, { functionName: string; invocation: string }> {
    const running = new Map<number, { functionName: string; invocation: string }>();
    for (const [functionName, workers] of this.workers) {
      for (const worker of workers) {
        if (worker.current && worker.process.pid !== undefined)
          running.set(worker.process.pid, { functionName, invocation: worker.current.id });
      }
    }
    return running;
  }

  /** Invocations waiting for a free worker plus those running. */
  pending(name: string): number {
    const running = (this.workers.get(name) ?? []).filter((worker) => worker.busy).length;
    return running + (this.queues.get(name)?.length ?? 0);
  }

  /** Runs one invocation and resolves with its result or error (never rejects for function errors). */
  async invoke(name: string, event: unknown): Promise<InvokeOutcome> {
    if (!this.functions.has(name)) throw new FunctionNotFoundError(`Function not found: ${name}`);
    if (this.stopped) return STOPPED;
    return new Promise<InvokeOutcome>((resolveOutcome) => {
      this.queues.get(name)!.push({ event, resolve: resolveOutcome });
      this.pump(name);
    });
  }

  private pump(name: string): void {
    if (this.stopped) return;
    const queue = this.queues.get(name)!;
    if (queue.length === 0) return;
    this.deploy(name).then(
      (deployment) => this.assign(name, deployment),
      (error: unknown) => {
        const failed = queue.splice(0, queue.length);
        const errorMessage = errorText(error);
        for (const pending of failed) {
          pending.resolve({
            ok: false,
            version: '$LATEST',
            error: { errorType: 'DeploymentError', errorMessage },
          });
        }
      },
    );
  }

  private assign(name: string, deployment: Deployment): void {
    if (this.stopped) return;
    const fn = this.functions.get(name)!;
    const queue = this.queues.get(name)!;
    const workers = this.workers.get(name)!;
    while (queue.length > 0) {
      let worker = workers.find((w) => !w.busy && w.deployment === deployment);
      if (!worker) {
        // Make room: idle workers of old versions go first.
        const stale = workers.find((w) => !w.busy && w.deployment !== deployment);
        if (stale) this.kill(name, stale);
        if (workers.length >= fn.concurrency) return; // all busy: a finishing worker pumps again
        worker = this.spawn(fn, deployment);
      }
      this.run(fn, worker, queue.shift()!);
    }
  }

  private spawn(fn: LocalFunction, deployment: Deployment): Worker {
    const id = this.nextWorkerId++;
    const isolation = this.isolation!;
    const tmpDir = makeWorkerTmp(isolation, `${fn.name}-${id}`);
    const env: Record<string, string> = {
      PATH: process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin',
      LANG: 'C.UTF-8',
      TZ: 'UTC',
      HOME: tmpDir,
      TMPDIR: tmpDir,
      LAMBDA_TASK_ROOT: deployment.codeDir,
      LD_LIBRARY_PATH: deployment.codeDir,
      _HANDLER: fn.handler,
      AWS_EXECUTION_ENV: 'AWS_Lambda_nodejs_local',
      AWS_LAMBDA_FUNCTION_NAME: fn.name,
      AWS_LAMBDA_FUNCTION_VERSION: String(deployment.version),
      AWS_LAMBDA_FUNCTION_MEMORY_SIZE: String(fn.memoryMb),
      AWS_LAMBDA_LOG_GROUP_NAME: `/aws/lambda/${fn.name}`,
      AWS_REGION: this.options.region,
      AWS_DEFAULT_REGION: this.options.region,
      AWS_CONFIG_FILE: join(tmpDir, 'no-aws-config'),
      AWS_SHARED_CREDENTIALS_FILE: join(tmpDir, 'no-aws-credentials'),
      AWS_EC2_METADATA_DISABLED: 'true',
      ...this.options.baseEnvironment,
      ...fn.environment,
    };
    const child = spawnWorker(isolation, {
      cwd: deployment.codeDir,
      env,
      memoryMb: fn.memoryMb,
      execArgv: [
        '--require',
        isolation.preloadScript,
        '--enable-source-maps',
        `--max-old-space-size=${Math.max(64, fn.memoryMb)}`,
      ],
    });
    exitWhenSpawnFails(child, `${fn.name} worker`, (text) => this.options.onLog(fn.name, text));
    const worker: Worker = {
      id,
      process: child,
      deployment,
      busy: false,
      tmpDir,
      ready: new Promise<void>((ok) => {
        const onReady = (msg: { type?: string }): void => {
          if (msg?.type === 'ready') {
            child.off('message', onReady);
            ok();
          }
        };
        child.on('message', onReady);
        child.once('exit', () => ok());
      }),
    };
    for (const stream of [child.stdout, child.stderr]) {
      if (!stream) continue;
      createInterface({ input: stream }).on('line', (line) => this.options.onLog(fn.name, line));
    }
    child.on(
      'message',
      (msg: { type?: string; id?: string; result?: unknown; error?: LambdaError }) => {
        if (!worker.current || msg.id !== worker.current.id) return;
        const version = String(worker.deployment.version);
        if (msg.type === 'result')
          worker.current.finish({ ok: true, version, payload: msg.result });
        else if (msg.type === 'error')
          worker.current.finish({
            ok: false,
            version,
            error: msg.error ?? { errorType: 'Error', errorMessage: 'unknown error' },
          });
      },
    );
    child.on('exit', (code, signal) => {
      const list = this.workers.get(fn.name) ?? [];
      const index = list.indexOf(worker);
      if (index !== -1) list.splice(index, 1);
      void rm(tmpDir, { recursive: true, force: true });
      if (worker.current && !this.stopped)
        this.options.onWorkerDeath?.(fn.name, worker.current.event);
      worker.current?.finish({
        ok: false,
        version: String(worker.deployment.version),
        error: {
          errorType: 'Runtime.ExitError',
          errorMessage: `Runtime exited ${signal ? `with signal: ${signal}` : `with error: exit status ${code}`}`,
        },
      });
      this.pump(fn.name);
    });
    this.workers.get(fn.name)!.push(worker);
    return worker;
  }

  private run(fn: LocalFunction, worker: Worker, pending: Pending): void {
    worker.busy = true;
    const requestId = randomUUID();
    const deadline = Date.now() + fn.timeoutSeconds * 1000;
    const finish = (outcome: InvokeOutcome): void => {
      if (worker.current?.id !== requestId) return;
      clearTimeout(timer);
      worker.current = undefined;
      worker.busy = false;
      pending.resolve(outcome);
      if (this.code!.current(fn.name) !== worker.deployment) this.kill(fn.name, worker);
      this.pump(fn.name);
    };
    worker.current = { id: requestId, event: pending.event, finish };
    const timer: NodeJS.Timeout = setTimeout(() => {
      this.options.onTimeout?.(fn.name, {
        pid: worker.process.pid,
        invocation: requestId,
        event: pending.event,
      });
      finish({
        ok: false,
        version: String(worker.deployment.version),
        error: {
          errorType: 'Sandbox.Timedout',
          errorMessage: `Task timed out after ${fn.timeoutSeconds.toFixed(2)} seconds`,
        },
      });
      // A timed-out container is discarded, as on AWS.
      this.kill(fn.name, worker);
    }, fn.timeoutSeconds * 1000);
    void worker.ready.then(() => {
      if (worker.current?.id !== requestId || !worker.process.connected) return;
      worker.process.send(
        {
          type: 'invoke',
          id: requestId,
          event: pending.event,
          context: {
            functionName: fn.name,
            functionVersion: String(worker.deployment.version),
            invokedFunctionArn: `arn:aws:lambda:${this.options.region}:${this.options.accountId}:function:${fn.name}`,
            memoryLimitInMB: fn.memoryMb,
            awsRequestId: requestId,
            logStreamName: `local/${fn.name}/${worker.id}`,
            deadline,
          },
        },
        // A worker that died since it said it was ready: the write fails (EPIPE) and its exit,
        // on its way, fails the invocation. Without a callback Node throws the error here.
        () => undefined,
      );
    });
  }

  private kill(name: string, worker: Worker): void {
    const list = this.workers.get(name) ?? [];
    const index = list.indexOf(worker);
    if (index !== -1) list.splice(index, 1);
    if (worker.process.exitCode === null && worker.process.signalCode === null)
      worker.process.kill('SIGKILL');
  }

  private retireOldWorkers(name: string): void {
    const current = this.code!.current(name);
    for (const worker of [...(this.workers.get(name) ?? [])]) {
      if (!worker.busy && worker.deployment !== current) this.kill(name, worker);
    }
  }

  /** Kills every worker and fails queued invocations. */
  async stop(): Promise<void> {
    this.stopped = true;
    const exits: Promise<unknown>[] = [];
    for (const [name, workers] of this.workers) {
      for (const worker of [...workers]) {
        if (worker.process.exitCode === null && worker.process.signalCode === null) {
          exits.push(new Promise((ok) => worker.process.once('exit', ok)));
        }
        this.kill(name, worker);
      }
      for (const pending of this.queues.get(name)!.splice(0)) pending.resolve(STOPPED);
    }
    await Promise.all(exits);
    await this.isolation?.dispose();
  }
}
