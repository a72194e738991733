import {
  GetItemCommand,
  PutItemCommand,
  UpdateItemCommand,
  type DynamoDBClient,
} from '@aws-sdk/client-dynamodb';
import { startDynamo, type Emulator } from '@binaryalert/testing';
import { AlertInFlightError } from './errors';
import { parseAlertedRule } from '@binaryalert/core';
import {
  recordMatch,
  type MatchDecision,
  type MatchRecord,
  type MatchTables,
  type RecordMatchOptions,
} from './match-history';
import { createMatchTables } from './testing';

const SHA = 'a'.repeat(64);
const EVIL = { id: 'rules/evil.yar:evil', fingerprint: '1111111111111111' };
const EVIL_EDITED = { id: 'rules/evil.yar:evil', fingerprint: '2222222222222222' };
const NEW_RULE = { id: 'rules/new.yar:fresh', fingerprint: '3333333333333333' };

function match(key: string, rules = [EVIL]): MatchRecord {
  return { sha256: SHA, md5: 'b'.repeat(32), object: { bucket: 'bucket', key }, rules };
}

class PublishRefused extends Error {}

describe('recordMatch', () => {
  let dynamo: Emulator<DynamoDBClient>;
  let tables: MatchTables;
  let published: MatchDecision[];
  let clock: number;
  /** Resolves when a slow or dying publish is called: the claim was taken before it. */
  let claimTaken: Promise<void>;
  let markClaimTaken: () => void;

  beforeAll(async () => {
    dynamo = await startDynamo();
  });
  afterAll(async () => {
    await dynamo.stop();
  });
  beforeEach(async () => {
    tables = await createMatchTables(dynamo.client);
    published = [];
    clock = Date.parse('2026-01-01T00:00:00Z');
    claimTaken = new Promise((resolve) => (markClaimTaken = resolve));
  });

  const options: RecordMatchOptions = { now: () => clock, claimMs: 60_000 };
  const publishOk = (decision: MatchDecision) => {
    published.push(decision);
    return Promise.resolve();
  };
  const publishFails = () => Promise.reject(new PublishRefused('SNS is down'));
  /** A publish that returns only once `finishPublish` is called (SNS retrying, a slow network). */
  const slowPublish = () => {
    let finish!: () => void;
    const slow = (decision: MatchDecision) =>
      new Promise<void>((resolve) => {
        markClaimTaken();
        finish = () => {
          published.push(decision);
          resolve();
        };
      });
    return { slow, finishPublish: () => finish() };
  };
  /** A publish that never returns: the process dies while holding the claim. */
  const dies = () => {
    markClaimTaken();
    return new Promise<void>(() => undefined);
  };
  const record = (m: MatchRecord, publish = publishOk) =>
    recordMatch(dynamo.client, tables, m, publish, options);

  async function binaryItem() {
    const { Item } = await dynamo.client.send(
      new GetItemCommand({ TableName: tables.matches, Key: { SHA256: { S: SHA } } }),
    );
    return Item;
  }

  it('alerts on the first match and records the rule with its fingerprint', async () => {
    const decision = await record(match('first.exe'));

    expect(decision).toEqual({
      alert: true,
      reason: 'first match',
      newRules: ['rules/evil.yar:evil@1111111111111111'],
    });
    expect(published).toHaveLength(1);
    const item = await binaryItem();
    expect(item?.AlertedRules?.SS?.map(parseAlertedRule)).toEqual([EVIL]);
    expect(item?.MD5).toEqual({ S: 'b'.repeat(32) });
    expect(item?.AlertClaimToken).toBeUndefined();
  });

  it('calls the first alert of a binary whose item holds only a delta re-scan result a first match', async () => {
    await dynamo.client.send(
      new PutItemCommand({
        TableName: tables.matches,
        Item: { SHA256: { S: SHA }, DeltaScannedAt: { S: '2026-01-01T00:00:00Z' } },
      }),
    );

    const decision = await record(match('x.exe'));

    expect(decision).toMatchObject({ alert: true, reason: 'first match' });
    expect(published).toHaveLength(1);
  });

  it('does not alert when the same object is analyzed again', async () => {
    await record(match('first.exe'));

    const decision = await record(match('first.exe'));

    expect(decision).toMatchObject({ alert: false, reason: 'already known' });
    expect(published).toHaveLength(1);
  });

  it('alerts on the same file under a new key, once', async () => {
    await record(match('first.exe'));

    expect(await record(match('copy.exe'))).toMatchObject({ alert: true, reason: 'new object' });
    expect(await record(match('copy.exe'))).toMatchObject({ alert: false });
    expect(published).toHaveLength(2);
  });

  it('alerts once when a new rule matches a known binary, not again for its other copies', async () => {
    await record(match('a.exe'));
    await record(match('b.exe'));

    const first = await record(match('a.exe', [EVIL, NEW_RULE]));
    const second = await record(match('b.exe', [EVIL, NEW_RULE]));

    expect(first).toEqual({
      alert: true,
      reason: 'new rule',
      newRules: ['rules/new.yar:fresh@3333333333333333'],
    });
    expect(second).toMatchObject({ alert: false, reason: 'already known' });
    expect(published).toHaveLength(3);
  });

  it('alerts once when a release adds hundreds of rules a known binary matches', async () => {
    // DynamoDB refuses an expression over 4 KB; dynalite does not check, so the client does here.
    const refuseLongExpressions = 'refuse expressions over 4 KB';
    dynamo.client.middlewareStack.add(
      (next) => async (args) => {
        const input = args.input as { ConditionExpression?: string; UpdateExpression?: string };
        for (const expression of [input.ConditionExpression, input.UpdateExpression]) {
          if (Buffer.byteLength(expression ?? '') > 4096) {
            throw Object.assign(
              new Error('Expression size has exceeded the maximum allowed size'),
              {
                name: 'ValidationException',
              },
            );
          }
        }
        return next(args);
      },
      { step: 'initialize', name: refuseLongExpressions },
    );
    try {
      await record(match('a.exe'));
      const pack = Array.from({ length: 300 }, (_, i) => ({
        id: `rules/pack.yar:rule${i}`,
        fingerprint: String(i).padStart(16, '0'),
      }));

      const decision = await record(match('a.exe', [EVIL, ...pack]));
      const again = await record(match('a.exe', [EVIL, ...pack])); // delivered again

      expect(decision).toMatchObject({ alert: true, reason: 'new rule' });
      expect(decision.newRules).toHaveLength(300);
      expect(again).toMatchObject({ alert: false });
      expect(published).toHaveLength(2);
      expect((await binaryItem())?.AlertedRules?.SS).toHaveLength(301);
    } finally {
      dynamo.client.middlewareStack.remove(refuseLongExpressions);
    }
  });

  it('alerts once when a changed rule matches again, and never for an unchanged one', async () => {
    await record(match('a.exe'));

    const changed = await record(match('a.exe', [EVIL_EDITED]));
    const again = await record(match('a.exe', [EVIL_EDITED]));
    const old = await record(match('a.exe', [EVIL]));

    expect(changed).toMatchObject({ alert: true, reason: 'changed rule' });
    expect(again).toMatchObject({ alert: false });
    expect(old).toMatchObject({ alert: false });
    expect(published).toHaveLength(2);
  });

  describe.each([
    ['a first match', () => Promise.resolve(), match('x.exe')],
    ['a new object', () => record(match('other.exe')).then(() => undefined), match('x.exe')],
    [
      'a new rule on an object an older release already knew',
      () => record(match('x.exe')).then(() => undefined),
      match('x.exe', [EVIL, NEW_RULE]),
    ],
  ])('for %s', (_name, prepare, attempt) => {
    beforeEach(async () => {
      await prepare();
      published = [];
    });

    it('a failed publish leaves the alert unsent, and the retry sends it', async () => {
      await expect(record(attempt, publishFails)).rejects.toThrow(PublishRefused);

      const retry = await record(attempt);

      expect(retry.alert).toBe(true);
      expect(published).toHaveLength(1);
    });

    it('a process killed between the claim and the publish: the retry alerts once the claim expired', async () => {
      void record(attempt, dies);
      await claimTaken;

      // The retry is told to come back when the claim expires (a dead holder renews nothing).
      await expect(record(attempt)).rejects.toMatchObject({
        name: 'AlertInFlightError',
        retryAfterMs: 60_000,
      });
      clock += 45_000;
      await expect(record(attempt)).rejects.toMatchObject({ retryAfterMs: 15_000 });
      clock += 16_000;
      const retry = await record(attempt);

      expect(retry.alert).toBe(true);
      expect(published).toHaveLength(1);
    });

    it('a write failing after the publish is tried again, so the retried message does not alert twice', async () => {
      // DynamoDB throttles the first writes after SNS accepted the alert (the SDK's own retries
      // spent), as the soak's fault injection does.
      let failuresLeft = 0;
      const flaky = {
        send: (command: Parameters<DynamoDBClient['send']>[0]) => {
          if (failuresLeft > 0 && command instanceof UpdateItemCommand) {
            failuresLeft -= 1;
            return Promise.reject(
              Object.assign(new Error('Rate of requests exceeds the allowed throughput'), {
                name: 'ThrottlingException',
              }),
            );
          }
          return dynamo.client.send(command as never);
        },
      } as unknown as DynamoDBClient;
      const publishThenThrottle = async (decision: MatchDecision) => {
        await publishOk(decision);
        failuresLeft = 3;
      };

      const first = await recordMatch(flaky, tables, attempt, publishThenThrottle, options);
      const redelivered = await record(attempt);

      expect(first.alert).toBe(true);
      expect(failuresLeft).toBe(0);
      expect(redelivered.alert).toBe(false);
      expect(published).toHaveLength(1);
    });

    it('a duplicate delivery during the publish does not alert twice', async () => {
      const { slow, finishPublish } = slowPublish();
      const original = record(attempt, slow);
      await claimTaken;

      await expect(record(attempt)).rejects.toThrow(AlertInFlightError);
      finishPublish();
      await original;
      const redelivered = await record(attempt);

      expect(redelivered.alert).toBe(false);
      expect(published).toHaveLength(1);
    });
  });

  describe('a claim whose holder is slower than the claim time', () => {
    // lambda_analyze_timeout_sec is 300 s by default: a slow publish (SNS retries) and a throttled
    // commit can outlast the 60 s claim time while the holder is alive and about to record it.
    /** Real milliseconds between renewals here (the claim time stays 60 s of the test's clock). */
    const renewEveryMs = 20;
    const renewals = () => new Promise((resolve) => setTimeout(resolve, 5 * renewEveryMs));

    it('is kept while its holder is alive: a duplicate delivery meanwhile waits and does not alert again', async () => {
      const { slow, finishPublish } = slowPublish();
      const holder = recordMatch(dynamo.client, tables, match('x.exe'), slow, {
        ...options,
        renewEveryMs,
      });
      await claimTaken;
      clock += 61_000; // the holder is still publishing, past the first claim time
      await renewals();

      await expect(record(match('x.exe'))).rejects.toMatchObject({
        name: 'AlertInFlightError',
        retryAfterMs: 60_000, // renewed: a full claim time from now
      });
      clock += 61_000;
      await renewals();
      await expect(record(match('x.exe'))).rejects.toThrow(AlertInFlightError);
      finishPublish();
      await holder;
      const redelivered = await record(match('x.exe'));

      expect(redelivered).toMatchObject({ alert: false });
      expect(published).toHaveLength(1);
    });

    it('expires a claim time after its holder died (no more renewals), and the retry alerts once', async () => {
      // A holder that dies with its process: its publish never returns and its renewals stop.
      let alive = true;
      const holderClient = {
        send: (command: Parameters<DynamoDBClient['send']>[0]) =>
          alive ? dynamo.client.send(command as never) : new Promise(() => undefined),
      } as unknown as DynamoDBClient;
      void recordMatch(holderClient, tables, match('x.exe'), dies, { ...options, renewEveryMs });
      await claimTaken;
      await renewals();
      alive = false;

      await expect(record(match('x.exe'))).rejects.toThrow(AlertInFlightError);
      clock += 61_000;
      await renewals();
      const retry = await record(match('x.exe'));

      expect(retry).toMatchObject({ alert: true, reason: 'first match' });
      expect(published).toHaveLength(1);
    });
  });

  it('sends one alert when many known copies meet a new rule at once', async () => {
    const keys = Array.from({ length: 8 }, (_v, i) => `copy-${i}.exe`);
    for (const key of keys) await record(match(key));
    published = [];

    // Losers of the claim fail (AlertInFlightError) and are retried, as their messages would be.
    let pending = keys;
    for (let round = 0; pending.length > 0 && round < 5; round++) {
      const results = await Promise.allSettled(
        pending.map((key) => record(match(key, [EVIL, NEW_RULE]))),
      );
      pending = pending.filter((_key, i) => results[i]?.status === 'rejected');
      clock += 61_000;
    }

    expect(pending).toEqual([]);
    expect(published).toHaveLength(1);
  });
});
