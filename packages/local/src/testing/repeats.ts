/**
 * Classifies repeated alerts of a local-stack run (the soak, the crash e2e test) by what the run
 * recorded in its data directory. SNS is at-least-once where a
 * process dies after SNS accepted a publish and before the analyzer recorded the alert as sent
 * (match-history.ts): its claim expires and the retried message alerts again. A repeat is that
 * case only when the evidence says so: the invocation that sent the previous alert of the object
 * (alerts.jsonl names it) was killed before the repeat (worker-kills.jsonl, or the whole stack)
 * and never logged the alert as recorded. Any other repeat is a duplicate, a failure.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { ResourceNames } from '@binaryalert/deployment';
import type { AlertRecord } from '../alerts';
import { functionLogPath } from '../functions';
import { ALERTS_FILE, WORKER_KILLS_FILE, type WorkerKill } from '../kill-journal';

/** How long before a kill of the whole stack a publish it cut off from its bookkeeping can have
 * gone out (generous: the publish-to-recorded step takes milliseconds, a second or more on a
 * loaded 2-core machine). */
export const STACK_KILL_WINDOW_MS = 5000;

/** One alert of an object, with the local invocation that published it when the stack knew. */
export interface SentAlert {
  /** Epoch ms at which SNS received the publish. */
  time: number;
  sender?: { invocation: string; pid: number };
}

export interface RunEvidence {
  /** Alerts per object id (any order). */
  alerts: Map<string, SentAlert[]>;
  /** Worker kills the stack recorded (fault injection, timeouts). */
  kills: WorkerKill[];
  /** When the analyzer logged each alert as recorded (committed), by `invocation object`. */
  committed: Map<string, number>;
  /** When the soak killed the whole stack (epoch ms). */
  stackKilledAt?: number;
  /** How long before the whole-stack kill a publish still counts as cut off by it. */
  stackKillWindowMs: number;
}

export interface RepeatedAlert {
  object: string;
  /** ISO times of the previous alert and of the repeat. */
  previous: string;
  repeat: string;
  previousSender?: string;
  /** Why it is the at-least-once case, or why it is not. */
  why: string;
}

export interface RepeatVerdicts {
  /** Repeats after a publish a kill cut off from its bookkeeping (not failures). */
  afterKill: RepeatedAlert[];
  /** Every other repeat (failures). */
  duplicates: RepeatedAlert[];
}

/** The key of `RunEvidence.committed`. */
export const committedKey = (invocation: string, object: string): string =>
  `${invocation} ${object}`;

/**
 * Milliseconds from each publish to its sender's log line saying it recorded the alert: the window
 * a kill must hit to cause a repeat (publishes whose sender logged nothing are left out).
 */
export function recordingDelays(evidence: RunEvidence): number[] {
  return [...evidence.alerts].flatMap(([object, alerts]) =>
    alerts.flatMap((alert) => {
      const at =
        alert.sender && evidence.committed.get(committedKey(alert.sender.invocation, object));
      return at === undefined ? [] : [at - alert.time];
    }),
  );
}

/** Sorts each object's alerts by time and judges every repeat by the previous alert's fate. */
export function classifyRepeats(evidence: RunEvidence): RepeatVerdicts {
  const verdicts: RepeatVerdicts = { afterKill: [], duplicates: [] };
  for (const [object, alerts] of evidence.alerts) {
    const sorted = [...alerts].sort((a, b) => a.time - b.time);
    for (let i = 1; i < sorted.length; i++) {
      const previous = sorted[i - 1]!;
      const repeat = sorted[i]!;
      const cutOff = cutOffBy(evidence, object, previous, repeat);
      const entry: RepeatedAlert = {
        object,
        previous: new Date(previous.time).toISOString(),
        repeat: new Date(repeat.time).toISOString(),
        ...(previous.sender
          ? { previousSender: `${previous.sender.invocation} (pid ${previous.sender.pid})` }
          : {}),
        why: cutOff.why,
      };
      (cutOff.killed ? verdicts.afterKill : verdicts.duplicates).push(entry);
    }
  }
  return verdicts;
}

function cutOffBy(
  evidence: RunEvidence,
  object: string,
  previous: SentAlert,
  repeat: SentAlert,
): { killed: boolean; why: string } {
  const sender = previous.sender;
  if (!sender) return { killed: false, why: 'the previous alert has no known sender' };
  if (evidence.committed.has(committedKey(sender.invocation, object))) {
    return { killed: false, why: 'its sender recorded the previous alert as sent' };
  }
  // The sender was identified while it waited for SNS's answer, so a kill of it came after its
  // publish had reached SNS.
  const kill = evidence.kills.find(
    (k) => k.invocation === sender.invocation && Date.parse(k.time) < repeat.time,
  );
  if (kill) {
    return {
      killed: true,
      why: `its sender was killed (${kill.cause}, pid ${kill.pid ?? '?'}) ${Date.parse(kill.time) - previous.time} ms after the publish, before recording it`,
    };
  }
  const stack = evidence.stackKilledAt;
  if (
    stack !== undefined &&
    previous.time <= stack &&
    stack - previous.time <= evidence.stackKillWindowMs &&
    repeat.time > stack
  ) {
    return {
      killed: true,
      why: `the whole stack was killed ${stack - previous.time} ms after the publish, before its sender recorded it`,
    };
  }
  return { killed: false, why: 'no kill of its sender between the publish and the repeat' };
}

/** The JSON lines of a file (none when it does not exist). */
async function jsonLines<T>(path: string): Promise<T[]> {
  const text = await readFile(path, 'utf8').catch(() => '');
  return text
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as T);
}

/** The match alerts of alerts.jsonl by object id (`S3Location`), with their senders. */
async function matchAlerts(
  dataDir: string,
  topicSuffix: string,
): Promise<Map<string, SentAlert[]>> {
  const alerts = new Map<string, SentAlert[]>();
  for (const alert of await jsonLines<AlertRecord>(join(dataDir, ALERTS_FILE))) {
    if (!alert.topicArn.endsWith(topicSuffix)) continue;
    const message = alert.message as { FileInfo?: { S3Location?: string } } | undefined;
    const location = message?.FileInfo?.S3Location ?? '';
    const sent: SentAlert = {
      time: Date.parse(alert.time),
      ...(alert.sender
        ? { sender: { invocation: alert.sender.invocation, pid: alert.sender.pid } }
        : {}),
    };
    alerts.set(location, [...(alerts.get(location) ?? []), sent]);
  }
  return alerts;
}

/** The analyzer's line once an alert is recorded as sent (analyze.ts recordAndAlert). */
const ALERT_RECORDED_MESSAGE = 'object matched YARA rules';

/** When the analyzer logged each alert as recorded (committed), by committedKey. */
export async function recordedAlerts(analyzerLog: string): Promise<Map<string, number>> {
  const recorded = new Map<string, number>();
  const text = await readFile(analyzerLog, 'utf8').catch(() => '');
  for (const line of text.split('\n')) {
    if (!line.includes(ALERT_RECORDED_MESSAGE)) continue;
    try {
      const entry = JSON.parse(line) as {
        message?: string;
        alert?: boolean;
        object?: string;
        function_request_id?: string;
        timestamp?: string;
      };
      if (entry.message === ALERT_RECORDED_MESSAGE && entry.alert && entry.object) {
        recorded.set(
          committedKey(entry.function_request_id ?? '', entry.object),
          Date.parse(entry.timestamp ?? ''),
        );
      }
    } catch {
      // a line cut by the kill of the stack
    }
  }
  return recorded;
}

/**
 * Reads a run's evidence from its data directory: the match alerts with their senders
 * (alerts.jsonl), the workers killed (worker-kills.jsonl) and the alerts the analyzer logged as
 * recorded (logs/analyzer.log).
 */
export async function readRunEvidence(
  dataDir: string,
  run: {
    namePrefix: string;
    names: Pick<ResourceNames, 'analyzerFunction' | 'matchesTopic'>;
    /** When the whole stack was killed (epoch ms), if it was. */
    stackKilledAt?: number;
  },
): Promise<RunEvidence> {
  return {
    alerts: await matchAlerts(dataDir, `:${run.names.matchesTopic}`),
    kills: await jsonLines<WorkerKill>(join(dataDir, WORKER_KILLS_FILE)),
    committed: await recordedAlerts(
      functionLogPath(dataDir, run.namePrefix, run.names.analyzerFunction),
    ),
    ...(run.stackKilledAt === undefined ? {} : { stackKilledAt: run.stackKilledAt }),
    stackKillWindowMs: STACK_KILL_WINDOW_MS,
  };
}
