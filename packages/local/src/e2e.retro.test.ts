import { ListObjectsV2Command, PutObjectCommand } from '@aws-sdk/client-s3';

import { startE2E, type E2E } from './testing/e2e';
import { testConfig, waitFor } from './testing/fixtures';

jest.setTimeout(300_000);

const OBJECTS = 1100;

describe('the local stack end to end: retro-analysis of more than 1,000 objects', () => {
  let first: E2E;
  let second: E2E | undefined;

  afterAll(async () => {
    await second?.stop();
    await first?.dispose();
  });

  it('analyzes every object exactly once and leaves the queue and the dead-letter queue empty', async () => {
    // Upload without the dispatcher running, then restart: the upload notifications (the queue
    // lives in memory) are gone, the objects (on disk) are not, so only the retro-analysis counts.
    const config = await testConfig();
    first = await startE2E({ config, dispatch: false });
    const bucket = first.stack.names.bucket;
    const keys = Array.from(
      { length: OBJECTS },
      (_, i) => `retro/${String(i).padStart(5, '0')} file.bin`,
    );
    for (let i = 0; i < keys.length; i += 50) {
      await Promise.all(
        keys
          .slice(i, i + 50)
          .map((Key) =>
            first.s3.send(new PutObjectCommand({ Bucket: bucket, Key, Body: `clean file ${Key}` })),
          ),
      );
    }
    await first.stop();

    second = await startE2E({ config, dataDir: first.dataDir, zipsDir: first.zipsDir });
    const e2e = second;
    let listed = 0;
    let token: string | undefined;
    do {
      const page = await e2e.s3.send(
        new ListObjectsV2Command({ Bucket: bucket, ContinuationToken: token }),
      );
      listed += page.KeyCount ?? 0;
      token = page.NextContinuationToken;
    } while (token);
    expect(listed).toBe(OBJECTS);
    // The restart itself queues the objects that never got a verdict (the lost queue).
    expect((await e2e.stack.reconciled)?.queued).toBe(OBJECTS);
    await waitFor(
      () => (e2e.stack.metrics.sum('AnalyzedBinaries') >= OBJECTS ? true : undefined),
      240_000,
      `${OBJECTS} analyses after the restart`,
    );
    await e2e.drained();
    expect(e2e.stack.metrics.sum('AnalyzedBinaries')).toBe(OBJECTS);

    await e2e.retroAnalyze();
    await waitFor(
      () => (e2e.stack.metrics.sum('AnalyzedBinaries') >= 2 * OBJECTS ? true : undefined),
      240_000,
      `${OBJECTS} retro analyses`,
    );
    await e2e.drained();
    expect(e2e.stack.metrics.sum('AnalyzedBinaries')).toBe(2 * OBJECTS);
    const status = await e2e.stack.status();
    expect(status).toEqual(
      expect.objectContaining({ queued: 0, inFlight: 0, deadLetters: 0, alerts: 0 }),
    );
  });
});
