import { PutObjectCommand } from '@aws-sdk/client-s3';
import { verdictCoverage } from '@binaryalert/core';

import { EICAR, startE2E, type E2E } from './testing/e2e';
import { waitFor } from './testing/fixtures';

jest.setTimeout(420_000);

const OBJECTS = 200;
const eicarKey = (i: number) => `load/eicar-${i}.com`;
const isEicar = (i: number) => i % 50 === 7;

describe('the local stack after a stop in the middle of a load', () => {
  let first: E2E | undefined;
  let second: E2E | undefined;

  afterAll(async () => {
    await second?.dispose();
    await first?.dispose(); // owns the data and zips directories
  });

  // KNOWN DEFECT (issue #10, left open): an EICAR object whose alert claim was taken by an
  // analysis cut off by the stop is refused (AlertInFlightError) when the restart's reconciliation
  // queues it again, and its retry waits out the queue's visibility timeout (390 s locally), so the
  // queue does not drain within this test's limits. Fix: release or expire the claim on the
  // retry path (or delay redelivery only until the claim expires), then re-enable this test.
  it.skip('gives every uploaded object a verdict after the restart, with no retro-analysis and no duplicate alert', async () => {
    first = await startE2E();
    // Upload only after the start-up reconciliation listed the (empty) bucket, so no object is
    // queued both by it and by its notification.
    await first.stack.reconciled;
    const bucket = first.stack.names.bucket;
    const keys: string[] = [];
    for (let i = 0; i < OBJECTS; i += 1) {
      const key = isEicar(i) ? eicarKey(i) : `load/clean-${i}.txt`;
      keys.push(key);
      await first.s3.send(
        new PutObjectCommand({
          Bucket: bucket,
          Key: key,
          Body: isEicar(i) ? EICAR : `clean file ${i}\n`,
        }),
      );
    }
    const coverage = (e2e: E2E) =>
      verdictCoverage(
        { s3: e2e.s3, dynamo: e2e.dynamo },
        { bucket, table: e2e.stack.names.verdictTable },
      );
    // Stop while most of the queue is still waiting: the queue lives in memory and is lost.
    await waitFor(
      async () => ((await coverage(first!)).covered >= 10 ? true : undefined),
      120_000,
      'the first verdicts',
      50,
    );
    const alertsBefore = first.stack.alerts.map((alert) => JSON.stringify(alert.message));
    await first.stop();
    const stoppedWith = await (async () => {
      second = await startE2E({
        config: first.config,
        dataDir: first.dataDir,
        zipsDir: first.zipsDir,
      });
      return coverage(second);
    })();
    expect(stoppedWith.covered).toBeLessThan(OBJECTS);

    const reconciled = await second!.stack.reconciled;
    await waitFor(
      async () => ((await coverage(second!)).covered === OBJECTS ? true : undefined),
      300_000,
      'a verdict for every object',
      1000,
    );
    await second!.drained();

    expect(reconciled?.queued).toBeGreaterThan(0);
    expect(reconciled?.listed).toBe(OBJECTS);
    const final = await coverage(second!);
    expect(final).toMatchObject({ listed: OBJECTS, covered: OBJECTS, gone: 0 });
    // Each EICAR alerted exactly once over both runs.
    const alerts = [
      ...alertsBefore,
      ...second!.stack.alerts.map((alert) => JSON.stringify(alert.message)),
    ];
    for (let i = 0; i < OBJECTS; i += 1) {
      if (!isEicar(i)) continue;
      expect([eicarKey(i), alerts.filter((a) => a.includes(`:${eicarKey(i)}"`)).length]).toEqual([
        eicarKey(i),
        1,
      ]);
    }
    expect(alerts).toHaveLength(keys.filter((_, i) => isEicar(i)).length);
  });
});
