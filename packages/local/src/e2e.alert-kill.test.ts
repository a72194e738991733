import { join } from 'node:path';
import { GetItemCommand } from '@aws-sdk/client-dynamodb';
import { PutObjectCommand } from '@aws-sdk/client-s3';

import { functionLogPath } from './functions';
import { WORKER_KILLS_FILE, type WorkerKill } from './kill-journal';
import { EICAR, startE2E, type E2E } from './testing/e2e';
import { committedKey, recordedAlerts } from './testing/repeats';
import { readJsonLines, waitFor } from './testing/fixtures';

jest.setTimeout(240_000);

// The SNS at-least-once case the soak forgives, made to happen: the analyzer's worker is killed
// right after SNS stored its alert, before it could record the alert as sent. The retried message
// alerts again once the claim expires; the run's records say which invocation sent what and which
// one was killed after its publish, so the repeat can be told from a real duplicate.
describe('the local stack end to end: an analyzer killed right after SNS accepted its alert', () => {
  let e2e: E2E;

  beforeAll(async () => {
    e2e = await startE2E({
      // A 60 s claim (the minimum: the 30 s invocation ends sooner), enough receives for the
      // kill, the wait for the claim and the alert.
      configOverrides: {
        lambda_analyze_timeout_sec: 30,
        scan_timeout_seconds: 20,
        max_receives: 4,
      },
      // Only the first publish's sender is killed.
      faults: { publisherKillFirst: 1 },
    });
  });

  afterAll(async () => {
    await e2e?.dispose();
  });

  it('alerts once more after the claim expires, and the records show the first sender was killed before recording it', async () => {
    const key = 'killed-after-publish/eicar.com';
    const id = `S3:${e2e.stack.names.bucket}:${key}`;

    await e2e.s3.send(
      new PutObjectCommand({ Bucket: e2e.stack.names.bucket, Key: key, Body: EICAR }),
    );
    await waitFor(
      () => (e2e.alertsFor(key).length >= 2 ? true : undefined),
      150_000,
      'the alert again after the claim expired',
      500,
    );
    await e2e.drained();
    await new Promise((ok) => setTimeout(ok, 2000)); // a third alert would show by now

    const [first, repeat, ...more] = e2e.alertsFor(key);
    expect(more).toEqual([]);
    // Retried when the claim taken before the first publish expired, not before.
    expect(Date.parse(repeat!.time) - Date.parse(first!.time)).toBeGreaterThan(55_000);
    const kills = (await readJsonLines(join(e2e.dataDir, WORKER_KILLS_FILE))) as WorkerKill[];
    expect(kills).toEqual([
      expect.objectContaining({
        cause: 'fault injection after its publish',
        invocation: first!.sender!.invocation,
        pid: first!.sender!.pid,
        objects: [id],
      }),
    ]);
    // The invocations that logged the object's alert as recorded.
    const recordedBy = [
      ...(
        await recordedAlerts(
          functionLogPath(e2e.dataDir, e2e.config.name_prefix, e2e.stack.names.analyzerFunction),
        )
      ).keys(),
    ]
      .filter((recorded) => recorded.endsWith(committedKey('', id)))
      .map((recorded) => recorded.slice(0, recorded.indexOf(' ')));
    expect(recordedBy).toEqual([repeat!.sender!.invocation]);
    expect(repeat!.sender!.invocation).not.toBe(first!.sender!.invocation);
    // The repeat is recorded as sent: a later analysis of the object does not alert.
    const { Item } = await e2e.dynamo.send(
      new GetItemCommand({
        TableName: e2e.stack.names.verdictTable,
        Key: { Bucket: { S: e2e.stack.names.bucket }, Key: { S: key } },
      }),
    );
    expect(Item?.Verdict?.S).toBe('matched');
    expect(Item?.MatchAlertSha256?.S).toMatch(/^[0-9a-f]{64}$/);
    expect(Item?.AlertClaimToken).toBeUndefined();
  });
});
