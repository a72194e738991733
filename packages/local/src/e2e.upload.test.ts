import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { ScanCommand } from '@aws-sdk/client-dynamodb';
import { GetFunctionCommand } from '@aws-sdk/client-lambda';
import { HeadObjectCommand, ListObjectsV2Command, PutObjectCommand } from '@aws-sdk/client-s3';

import { buildZips, EICAR, rulesWith, startE2E, type E2E } from './testing/e2e';
import { tempDir, testConfig, waitFor } from './testing/fixtures';

jest.setTimeout(240_000);

const MARKER = 'BINARYALERT-E2E-MARKER-7f3a';

describe('the local stack end to end: uploads, alerts, retro-analysis and new rules', () => {
  let e2e: E2E;
  let files: { path: string; remove: () => Promise<void> };
  const cliEicarKey = 'cli/my eicar+1 \u00fcber.com';
  const sdkEicarKey = 'sdk/eicar (copy)+.exe';
  const cleanKeys = ['cli/big clean 50MB.bin', 'sdk/clean notes.txt'];
  const uploaded = () => [cliEicarKey, sdkEicarKey, ...cleanKeys];

  beforeAll(async () => {
    files = await tempDir('ba-e2e-files-');
    e2e = await startE2E();
  });

  afterAll(async () => {
    await e2e?.dispose();
    await files?.remove();
  });

  it('alerts exactly once for each EICAR upload (aws CLI and SDK) and never for clean files', async () => {
    const eicarPath = join(files.path, 'eicar.com');
    await writeFile(eicarPath, EICAR);
    const bigPath = join(files.path, 'big.bin');
    await writeFile(bigPath, randomBytes(50 * 1024 * 1024));
    const bucket = e2e.stack.names.bucket;

    await e2e.aws([
      's3',
      'cp',
      eicarPath,
      `s3://${bucket}/${cliEicarKey}`,
      '--metadata',
      'filepath=C:/Users/x/eicar.com',
    ]);
    await e2e.aws(['s3', 'cp', bigPath, `s3://${bucket}/${cleanKeys[0]}`]); // multipart: 8 MB parts
    await e2e.s3.send(
      new PutObjectCommand({
        Bucket: bucket,
        Key: sdkEicarKey,
        Body: Readable.from([Buffer.from(EICAR)]), // stream body: aws-chunked with a checksum trailer
        ContentLength: EICAR.length,
        Metadata: { filepath: '/home/x/eicar (copy)+.exe' },
      }),
    );
    await e2e.s3.send(
      new PutObjectCommand({
        Bucket: bucket,
        Key: cleanKeys[1],
        Body: `meeting notes\n${MARKER}\n`,
      }),
    );

    await waitFor(
      () => (e2e.stack.metrics.sum('AnalyzedBinaries') >= 4 ? true : undefined),
      90_000,
      'four analyses',
    );
    await e2e.drained();

    const big = await e2e.s3.send(new HeadObjectCommand({ Bucket: bucket, Key: cleanKeys[0] }));
    expect(big.ContentLength).toBe(50 * 1024 * 1024);
    expect(e2e.stack.metrics.sum('AnalyzedBinaries')).toBe(4);
    expect(e2e.alertsFor(cliEicarKey)).toHaveLength(1);
    expect(e2e.alertsFor(sdkEicarKey)).toHaveLength(1);
    expect(e2e.stack.alerts).toHaveLength(2);
    expect(JSON.stringify(e2e.alertsFor(cliEicarKey)[0])).toContain('C:/Users/x/eicar.com');
    expect(JSON.stringify(e2e.alertsFor(sdkEicarKey)[0])).toContain('/home/x/eicar (copy)+.exe');
    for (const key of cleanKeys) expect(e2e.alertsFor(key)).toEqual([]);

    const { Items = [] } = await e2e.dynamo.send(
      new ScanCommand({ TableName: e2e.stack.names.table }),
    );
    expect(Items).toHaveLength(1);
    expect(Items[0]?.AlertedRules?.SS).toEqual([
      expect.stringMatching(/^binaryalert\/eicar\.yara:eicar_test_file@[0-9a-f]{16}$/),
    ]);
    const ledger = await e2e.dynamo.send(
      new ScanCommand({ TableName: e2e.stack.names.verdictTable }),
    );
    // Each EICAR key is recorded as an alerted copy; the clean files carry no alert state.
    const alertedCopies = (ledger.Items ?? []).filter((item) => item.MatchAlertSha256);
    expect(alertedCopies.map((item) => item.Key?.S).sort()).toEqual(
      [cliEicarKey, sdkEicarKey].sort(),
    );
  });

  it('alerts again, naming the new object, when the same EICAR bytes arrive under another key', async () => {
    const key = 'again/same bytes.com';
    await e2e.s3.send(
      new PutObjectCommand({ Bucket: e2e.stack.names.bucket, Key: key, Body: EICAR }),
    );
    await waitFor(
      () => (e2e.alertsFor(key).length > 0 ? true : undefined),
      60_000,
      'the second alert',
    );
    await e2e.drained();
    expect(e2e.alertsFor(key)).toHaveLength(1);
    expect(e2e.stack.alerts).toHaveLength(3);
  });

  it('retro-analyzes every object with unchanged rules without new alerts', async () => {
    const before = e2e.stack.metrics.sum('AnalyzedBinaries');
    await e2e.retroAnalyze();
    await waitFor(
      () => (e2e.stack.metrics.sum('AnalyzedBinaries') >= before + 5 ? true : undefined),
      90_000,
      'the retro-analysis',
    );
    await e2e.drained();
    expect(e2e.stack.metrics.sum('AnalyzedBinaries')).toBe(before + 5);
    expect(e2e.stack.alerts).toHaveLength(3);
  });

  it('alerts only for the files a newly added rule matches after a rebuild and retro-analysis', async () => {
    const rules = await tempDir('ba-e2e-rules-');
    try {
      const rule = `rule e2e_marker\n{\n    strings:\n        $m = "${MARKER}"\n    condition:\n        $m\n}\n`;
      await buildZips(e2e.zipsDir, await rulesWith(rules.path, 'marker.yara', rule), true);
    } finally {
      await rules.remove();
    }
    const before = e2e.stack.metrics.sum('AnalyzedBinaries');
    await e2e.retroAnalyze();
    await waitFor(
      () => (e2e.stack.metrics.sum('AnalyzedBinaries') >= before + 5 ? true : undefined),
      90_000,
      'the retro-analysis with the new rule',
    );
    await e2e.drained();

    expect(e2e.stack.alerts).toHaveLength(4);
    const [alert] = e2e.alertsFor(cleanKeys[1]!);
    expect(JSON.stringify(alert)).toContain('e2e_marker');
    const fn = await e2e.lambda.send(
      new GetFunctionCommand({ FunctionName: e2e.stack.names.analyzerFunction }),
    );
    expect(fn.Configuration?.Version).toBe('2');
    const { Items = [] } = await e2e.dynamo.send(
      new ScanCommand({ TableName: e2e.stack.names.table }),
    );
    // One item per binary: EICAR's, and the marker file's.
    expect(Items).toHaveLength(2);
  });

  it('keeps objects, matches and the analyzer version across a restart', async () => {
    await e2e.stop();
    const again = await startE2E({
      dataDir: e2e.dataDir,
      zipsDir: e2e.zipsDir,
      config: await configOf(e2e),
    });
    try {
      const listed = await again.s3.send(
        new ListObjectsV2Command({ Bucket: again.stack.names.bucket }),
      );
      expect(listed.Contents?.map((o) => o.Key).sort()).toEqual(
        [...uploaded(), 'again/same bytes.com'].sort(),
      );
      const { Items = [] } = await again.dynamo.send(
        new ScanCommand({ TableName: again.stack.names.table }),
      );
      expect(Items).toHaveLength(2);
      const fn = await again.lambda.send(
        new GetFunctionCommand({ FunctionName: again.stack.names.analyzerFunction }),
      );
      expect(fn.Configuration?.Version).toBe('2');
    } finally {
      await again.stop();
    }
  });
});

/** The settings a running fixture was started with (same names after a restart). */
async function configOf(e2e: E2E) {
  const prefix = e2e.stack.names.table.replace(/_binaryalert_matches$/, '');
  return testConfig({ name_prefix: prefix });
}
