import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { QueryCommand } from '@aws-sdk/client-dynamodb';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import type { FileSummary } from '@binaryalert/core';
import { ArchiveKit } from '@binaryalert/testing';

import { EICAR, startE2E, type E2E } from './testing/e2e';
import { tempDir, waitFor } from './testing/fixtures';

jest.setTimeout(240_000);

describe('the local stack end to end: containers', () => {
  let e2e: E2E;
  let files: { path: string; remove: () => Promise<void> };
  let kit: ArchiveKit;

  beforeAll(async () => {
    files = await tempDir('ba-e2e-archives-');
    kit = new ArchiveKit(files.path);
    e2e = await startE2E();
  });

  afterAll(async () => {
    await e2e?.dispose();
    await files?.remove();
  });

  it('alerts once per archive naming the member: a tar.gz, a zip locked with "infected", never a bomb', async () => {
    const bucket = e2e.stack.names.bucket;
    const tarGz = kit.tar('dropper.tar.gz', { 'stage2/payload.exe': EICAR }, '-z');
    const locked = kit.zip('sample.zip', { 'eicar.com': EICAR }, 'infected');
    const bomb = kit.zipBomb('bomb.zip');

    await e2e.aws(['s3', 'cp', tarGz, `s3://${bucket}/mail/dropper.tar.gz`]);
    await e2e.s3.send(
      new PutObjectCommand({
        Bucket: bucket,
        Key: 'shared/sample.zip',
        Body: await readFile(locked),
      }),
    );
    await e2e.aws(['s3', 'cp', bomb, `s3://${bucket}/bombs/bomb.zip`]);
    await waitFor(
      () => (e2e.stack.metrics.sum('AnalyzedBinaries') >= 3 ? true : undefined),
      120_000,
      'three analyses',
    );
    await e2e.drained();

    const [tarAlert] = e2e.alertsFor('mail/dropper.tar.gz');
    const [zipAlert] = e2e.alertsFor('shared/sample.zip');
    expect(e2e.stack.alerts).toHaveLength(2);
    expect(tarAlert?.subject).toBe(
      '[BinaryAlert] mail/dropper.tar.gz!stage2/payload.exe matches a YARA rule',
    );
    const tarSummary = tarAlert?.message as FileSummary;
    expect(Object.values(tarSummary.MatchedRules)).toContainEqual(
      expect.objectContaining({ MemberPath: 'mail/dropper.tar.gz!stage2/payload.exe' }),
    );
    expect(zipAlert?.subject).toBe('[BinaryAlert] shared/sample.zip!eicar.com matches a YARA rule');
    expect(e2e.alertsFor('bombs/bomb.zip')).toEqual([]);
    // What `manage.ts live-test` checks: the archive's record names the member and its SHA-256.
    const records = await e2e.dynamo.send(
      new QueryCommand({
        TableName: e2e.stack.names.table,
        KeyConditionExpression: 'SHA256 = :sha',
        ExpressionAttributeValues: {
          ':sha': {
            S: createHash('sha256')
              .update(await readFile(locked))
              .digest('hex'),
          },
        },
      }),
    );
    expect(records.Items?.[0]?.MatchedMembers?.L).toEqual([
      {
        M: expect.objectContaining({
          MemberPath: { S: 'eicar.com' },
          MemberSHA256: { S: createHash('sha256').update(EICAR).digest('hex') },
        }),
      },
    ]);
    expect(e2e.stack.metrics.sum('UnscannedContent')).toBe(1);
    expect(e2e.stack.metrics.sum('AnalysisErrors')).toBe(0);
  });
});
