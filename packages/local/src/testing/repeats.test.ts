import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { functionLogPath } from '../functions';
import type { WorkerKill } from '../kill-journal';
import {
  classifyRepeats,
  committedKey,
  readRunEvidence,
  recordingDelays,
  type RunEvidence,
  type SentAlert,
} from './repeats';

const OBJECT = 'S3:bucket:soak/3.bin';
const T = Date.parse('2026-12-01T09:00:00.000Z');

function alert(offsetMs: number, invocation?: string): SentAlert {
  return { time: T + offsetMs, ...(invocation ? { sender: { invocation, pid: 4242 } } : {}) };
}

function kill(offsetMs: number, invocation: string): WorkerKill {
  return {
    time: new Date(T + offsetMs).toISOString(),
    functionName: 'p_binaryalert_analyzer',
    pid: 4242,
    invocation,
    cause: 'fault injection',
    objects: [OBJECT],
  };
}

function evidence(overrides: Partial<RunEvidence>): RunEvidence {
  return {
    alerts: new Map(),
    kills: [],
    committed: new Map(),
    stackKillWindowMs: 5000,
    ...overrides,
  };
}

describe('classifyRepeats', () => {
  it('forgives a repeat whose previous sender was killed before recording the alert', () => {
    const verdicts = classifyRepeats(
      evidence({
        alerts: new Map([[OBJECT, [alert(61_000, 'retry'), alert(0, 'first')]]]),
        kills: [kill(12, 'first')],
      }),
    );

    expect(verdicts.duplicates).toEqual([]);
    expect(verdicts.afterKill).toEqual([
      expect.objectContaining({
        object: OBJECT,
        previousSender: 'first (pid 4242)',
        why: expect.stringContaining('12 ms after the publish'),
      }),
    ]);
  });

  it('counts a repeat as a duplicate when its killed sender had recorded the alert first', () => {
    const verdicts = classifyRepeats(
      evidence({
        alerts: new Map([[OBJECT, [alert(0, 'first'), alert(61_000, 'retry')]]]),
        kills: [kill(40, 'first')],
        committed: new Map([[committedKey('first', OBJECT), T + 30]]),
      }),
    );

    expect(verdicts.afterKill).toEqual([]);
    expect(verdicts.duplicates).toEqual([
      expect.objectContaining({ why: 'its sender recorded the previous alert as sent' }),
    ]);
  });

  it('counts a repeat as a duplicate when the kill was of another invocation, after the repeat, or the sender is unknown', () => {
    const verdicts = classifyRepeats(
      evidence({
        alerts: new Map([
          [OBJECT, [alert(0, 'first'), alert(61_000, 'retry')]],
          ['S3:bucket:late', [alert(0, 'a'), alert(1000, 'b')]],
          ['S3:bucket:anonymous', [alert(0), alert(61_000)]],
        ]),
        kills: [kill(12, 'someone-else'), kill(2000, 'a')],
      }),
    );

    expect(verdicts.afterKill).toEqual([]);
    expect(verdicts.duplicates.map((d) => [d.object, d.why])).toEqual([
      [OBJECT, 'no kill of its sender between the publish and the repeat'],
      ['S3:bucket:late', 'no kill of its sender between the publish and the repeat'],
      ['S3:bucket:anonymous', 'the previous alert has no known sender'],
    ]);
  });

  it('forgives one repeat per kill: a third alert needs a kill of the second one sender', () => {
    const verdicts = classifyRepeats(
      evidence({
        alerts: new Map([[OBJECT, [alert(0, 'first'), alert(61_000, 'second'), alert(62_000)]]]),
        kills: [kill(5, 'first')],
      }),
    );

    expect(verdicts.afterKill).toHaveLength(1);
    expect(verdicts.duplicates).toHaveLength(1);
  });

  it('forgives a repeat after the whole-stack kill only for a publish just before it, not recorded', () => {
    const base = { stackKilledAt: T + 1000 };
    const cut = classifyRepeats(
      evidence({ ...base, alerts: new Map([[OBJECT, [alert(0, 'first'), alert(90_000, 'r')]]]) }),
    );
    const recorded = classifyRepeats(
      evidence({
        ...base,
        alerts: new Map([[OBJECT, [alert(0, 'first'), alert(90_000, 'r')]]]),
        committed: new Map([[committedKey('first', OBJECT), T + 30]]),
      }),
    );
    const longBefore = classifyRepeats(
      evidence({ ...base, alerts: new Map([[OBJECT, [alert(-60_000, 'x'), alert(90_000, 'r')]]]) }),
    );

    expect(cut.afterKill).toHaveLength(1);
    expect(recorded.duplicates).toHaveLength(1);
    expect(longBefore.duplicates).toHaveLength(1);
  });

  it('measures each publish to its sender logging it recorded, skipping publishes never recorded', () => {
    const delays = recordingDelays(
      evidence({
        alerts: new Map([
          [OBJECT, [alert(0, 'first'), alert(61_000, 'retry')]],
          ['S3:bucket:other', [alert(500, 'other'), alert(900)]],
        ]),
        committed: new Map([
          [committedKey('retry', OBJECT), T + 61_017],
          [committedKey('other', 'S3:bucket:other'), T + 548],
        ]),
      }),
    );

    expect(delays.sort((a, b) => a - b)).toEqual([17, 48]);
  });

  it('reads the evidence a stack leaves in its data directory, lines cut by a kill skipped', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ba-evidence-'));
    try {
      const names = { analyzerFunction: 'p_binaryalert_analyzer', matchesTopic: 'p_matches' };
      const alertLine = (time: string, invocation: string, topic = names.matchesTopic) =>
        JSON.stringify({
          time,
          topicArn: `arn:aws:sns:us-east-1:123456789012:${topic}`,
          message: { FileInfo: { S3Location: OBJECT } },
          messageAttributes: {},
          sender: { functionName: names.analyzerFunction, invocation, pid: 4242 },
        });
      await writeFile(
        join(dir, 'alerts.jsonl'),
        [
          alertLine('2026-12-01T09:00:00.000Z', 'first'),
          alertLine('2026-12-01T09:00:00.500Z', 'first', 'p_alarms'),
          alertLine('2026-12-01T09:01:01.000Z', 'retry'),
        ].join('\n') + '\n',
      );
      await writeFile(join(dir, 'worker-kills.jsonl'), `${JSON.stringify(kill(20, 'first'))}\n`);
      const log = functionLogPath(dir, 'p', names.analyzerFunction);
      await mkdir(join(dir, 'logs'));
      await writeFile(
        log,
        [
          JSON.stringify({
            message: 'object matched YARA rules',
            alert: true,
            object: OBJECT,
            function_request_id: 'retry',
            timestamp: '2026-12-01T09:01:01.030Z',
          }),
          '{"message":"object matched YARA rules","alert":tr',
        ].join('\n'),
      );

      const read = await readRunEvidence(dir, { namePrefix: 'p', names });

      expect(read.alerts.get(OBJECT)).toEqual([
        { time: T, sender: { invocation: 'first', pid: 4242 } },
        { time: T + 61_000, sender: { invocation: 'retry', pid: 4242 } },
      ]);
      expect(read.kills).toHaveLength(1);
      expect(recordingDelays(read)).toEqual([30]);
      expect(classifyRepeats(read)).toMatchObject({
        afterKill: [{ object: OBJECT }],
        duplicates: [],
      });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
