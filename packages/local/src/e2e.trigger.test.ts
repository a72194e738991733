import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { PutObjectCommand } from '@aws-sdk/client-s3';

import { EICAR, startE2E, type E2E } from './testing/e2e';
import { waitFor } from './testing/fixtures';

jest.setTimeout(240_000);

describe('the local stack end to end: analyzer_trigger = "sqs" (the event source mapping)', () => {
  let e2e: E2E;

  beforeAll(async () => {
    e2e = await startE2E({ configOverrides: { analyzer_trigger: 'sqs' } });
  });

  afterAll(async () => {
    await e2e?.dispose();
  });

  it('analyzes uploads through the mapping, alerts once per EICAR, empties the queue and runs no dispatcher', async () => {
    const bucket = e2e.stack.names.bucket;
    const eicarKeys = Array.from({ length: 3 }, (_, i) => `sqs-mode/eicar ${i}+.com`);
    const cleanKeys = Array.from({ length: 25 }, (_, i) => `sqs-mode/clean/${i}.txt`);
    await Promise.all([
      ...eicarKeys.map((Key, i) =>
        e2e.s3.send(new PutObjectCommand({ Bucket: bucket, Key, Body: `${EICAR}\n${i}` })),
      ),
      ...cleanKeys.map((Key) =>
        e2e.s3.send(new PutObjectCommand({ Bucket: bucket, Key, Body: `clean ${Key}` })),
      ),
    ]);

    await waitFor(
      () =>
        e2e.stack.metrics.sum('AnalyzedBinaries') >= eicarKeys.length + cleanKeys.length
          ? true
          : undefined,
      120_000,
      'every upload analyzed',
    );
    await e2e.drained();
    for (const key of eicarKeys) expect(e2e.alertsFor(key)).toHaveLength(1);
    for (const key of cleanKeys) expect(e2e.alertsFor(key)).toHaveLength(0);
    expect(await e2e.stack.status()).toEqual(
      expect.objectContaining({ queued: 0, inFlight: 0, deadLetters: 0 }),
    );
    // The mapping invoked the analyzer; no dispatcher ever ran.
    expect(await readdir(join(e2e.dataDir, 'logs'))).not.toContain('dispatcher.log');
  });
});
