// The record of every worker the local stack killed in the middle of an invocation (fault
// injection or a timeout), appended to the data directory so it survives a kill of the stack
// itself: with the sender of each alert (alerts.jsonl) it tells a repeated alert whose first
// publish was cut off from its bookkeeping (SNS at-least-once) from a real duplicate.
import { appendFileSync } from 'node:fs';
import { join } from 'node:path';
import { objectId, parseS3Notification, s3ObjectRef } from '@binaryalert/core';
import type { RunningInvocation } from './lambda';

/** The alerts every SNS Publish delivered, one JSON line each (alerts.ts). */
export const ALERTS_FILE = 'alerts.jsonl';
/** One JSON line per worker killed mid-invocation (WorkerKill). */
export const WORKER_KILLS_FILE = 'worker-kills.jsonl';

export interface WorkerKill {
  /** When the kill was sent (ISO). */
  time: string;
  functionName: string;
  pid: number | undefined;
  /** The request id of the invocation the worker was running. */
  invocation: string;
  /** `fault injection after its publish`: killed once SNS stored its Publish, before answering. */
  cause: 'fault injection' | 'fault injection after its publish' | 'timeout';
  /** Ids (`S3:bucket:key`) of the objects the invocation carried. */
  objects: string[];
}

/**
 * The objects an analyzer invocation carries (each once): a dispatcher payload's or a direct S3
 * event's records, or the S3 notifications in an SQS batch's bodies.
 */
export function invocationObjects(event: unknown): string[] {
  const records = (event as { Records?: unknown } | null)?.Records;
  if (!Array.isArray(records)) return [];
  const ids = records.flatMap((record: unknown) => {
    const body = (record as { body?: unknown } | null)?.body;
    const notification = parseS3Notification(
      typeof body === 'string' ? body : { Records: [record] },
    );
    return notification.kind === 'records'
      ? notification.records.map((r) => {
          const ref = s3ObjectRef(r);
          return objectId(ref.bucket, ref.key);
        })
      : [];
  });
  return [...new Set(ids)]; // two notifications of one object name it once
}

/** Appends one kill to `<dataDir>/worker-kills.jsonl` before the worker dies (synchronously:
 * the line must be there even when the whole stack is killed next). */
export function recordWorkerKill(
  dataDir: string,
  functionName: string,
  killed: RunningInvocation,
  cause: WorkerKill['cause'],
): void {
  const kill: WorkerKill = {
    time: new Date().toISOString(),
    functionName,
    pid: killed.pid,
    invocation: killed.invocation,
    cause,
    objects: invocationObjects(killed.event),
  };
  appendFileSync(join(dataDir, WORKER_KILLS_FILE), `${JSON.stringify(kill)}\n`);
}
