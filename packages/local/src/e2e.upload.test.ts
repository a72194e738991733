import { createHash, randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { ScanCommand } from '@aws-sdk/client-dynamodb';
import { GetFunctionCommand } from '@aws-sdk/client-lambda';
import { HeadObjectCommand, ListObjectsV2Command, PutObjectCommand } from '@aws-sdk/client-s3';

import { buildZips, EICAR, rulesWith, startE2E, type E2E } from './testing/e2e';
import { tempDir, testConfig, waitFor } from './testing/fixtures';
import { committedKey, recordedAlerts } from './testing/repeats';
import { functionLogPath } from './functions';
import { ObjectStore } from './s3/store';

jest.setTimeout(240_000);

const MARKER = 'BINARYALERT-E2E-MARKER-7f3a';
// Only the new-rule test's own file holds this, so its rule matches that file alone.
const NEW_RULE_MARKER = 'BINARYALERT-E2E-NEW-RULE-41c9';
const EICAR_SHA256 = createHash('sha256').update(EICAR).digest('hex');

// Each test uploads the objects it needs and asserts changes it caused, so any one of them runs
// alone (jest -t) or in any order on the shared stack.
describe('the local stack end to end: uploads, alerts, retro-analysis and new rules', () => {
  /** The running stack (after the restart test, the restarted one). */
  let e2e: E2E;
  /** The first stack: it owns the data and zips directories the restarted one reuses. */
  let first: E2E;
  let files: { path: string; remove: () => Promise<void> };

  beforeAll(async () => {
    files = await tempDir('ba-e2e-files-');
    first = e2e = await startE2E();
  });

  afterAll(async () => {
    await e2e?.dispose();
    if (first !== e2e) await first?.dispose();
    await files?.remove();
  });

  const analyzed = () => e2e.stack.metrics.sum('AnalyzedBinaries');

  /** Waits until `count` more analyses than `before` were reported and the queue is empty. */
  async function analysesAfter(before: number, count: number, what: string): Promise<void> {
    await waitFor(() => (analyzed() >= before + count ? true : undefined), 90_000, what);
    await e2e.drained();
  }

  async function put(key: string, body: string | Buffer): Promise<void> {
    await e2e.s3.send(
      new PutObjectCommand({ Bucket: e2e.stack.names.bucket, Key: key, Body: body }),
    );
  }

  async function objectKeys(): Promise<string[]> {
    const listed = await e2e.s3.send(new ListObjectsV2Command({ Bucket: e2e.stack.names.bucket }));
    return (listed.Contents ?? []).map((object) => object.Key!).sort();
  }

  /** The match table's records of matched binaries (every analyzed binary also has an item for
   * its content signature). */
  async function matchItems() {
    const { Items = [] } = await e2e.dynamo.send(
      new ScanCommand({ TableName: e2e.stack.names.table }),
    );
    return Items.filter((item) => item.AlertedRules !== undefined);
  }

  /** Every running analyzer worker has `variable` (NAME=value) in its environment. */
  async function expectAnalyzersEnv(variable: string): Promise<void> {
    const { stack } = e2e;
    const pids = stack.lambda.workerInfo(stack.names.analyzerFunction).map((w) => w.pid);
    expect(pids.length).toBeGreaterThan(0);
    for (const pid of pids) {
      const environ = (await readFile(`/proc/${pid}/environ`, 'latin1')).split('\0');
      expect(environ).toContain(variable);
    }
  }

  async function analyzerVersion(): Promise<number> {
    const fn = await e2e.lambda.send(
      new GetFunctionCommand({ FunctionName: e2e.stack.names.analyzerFunction }),
    );
    return Number(fn.Configuration?.Version);
  }

  it('alerts exactly once for each EICAR upload (aws CLI and SDK) and never for clean files', async () => {
    const cliEicarKey = 'cli/my eicar+1 \u00fcber.com';
    const sdkEicarKey = 'sdk/eicar (copy)+.exe';
    const cleanKeys = ['cli/big clean 50MB.bin', 'sdk/clean notes.txt'];
    const eicarPath = join(files.path, 'eicar.com');
    await writeFile(eicarPath, EICAR);
    const bigPath = join(files.path, 'big.bin');
    await writeFile(bigPath, randomBytes(50 * 1024 * 1024));
    const bucket = e2e.stack.names.bucket;
    const analyzedBefore = analyzed();
    const alertsBefore = e2e.stack.alerts.length;

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
    await put(cleanKeys[1]!, `meeting notes\n${MARKER}\n`);
    await analysesAfter(analyzedBefore, 4, 'four analyses');

    const big = await e2e.s3.send(new HeadObjectCommand({ Bucket: bucket, Key: cleanKeys[0] }));
    expect(big.ContentLength).toBe(50 * 1024 * 1024);
    expect(analyzed()).toBe(analyzedBefore + 4);
    expect(e2e.alertsFor(cliEicarKey)).toHaveLength(1);
    expect(e2e.alertsFor(sdkEicarKey)).toHaveLength(1);
    expect(e2e.stack.alerts).toHaveLength(alertsBefore + 2);
    expect(JSON.stringify(e2e.alertsFor(cliEicarKey)[0])).toContain('C:/Users/x/eicar.com');
    expect(JSON.stringify(e2e.alertsFor(sdkEicarKey)[0])).toContain('/home/x/eicar (copy)+.exe');
    for (const key of cleanKeys) expect(e2e.alertsFor(key)).toEqual([]);
    // Each alert names the analyzer invocation that sent it, and that invocation's log line
    // (function_request_id) says it recorded the alert as sent: a soak's post-mortem evidence.
    const { sender } = e2e.alertsFor(sdkEicarKey)[0]!;
    expect(sender).toEqual({
      functionName: e2e.stack.names.analyzerFunction,
      invocation: expect.stringMatching(/^[0-9a-f-]{36}$/),
      pid: expect.any(Number),
    });
    const recorded = await recordedAlerts(
      functionLogPath(e2e.dataDir, e2e.config.name_prefix, e2e.stack.names.analyzerFunction),
    );
    expect([...recorded.keys()]).toContain(
      committedKey(sender!.invocation, `S3:${bucket}:${sdkEicarKey}`),
    );

    const eicarItem = (await matchItems()).find((item) => item.SHA256?.S === EICAR_SHA256);
    expect(eicarItem?.AlertedRules?.SS).toEqual([
      expect.stringMatching(/^binaryalert\/eicar\.yara:eicar_test_file@[0-9a-f]{16}$/),
    ]);
    const ledger = await e2e.dynamo.send(
      new ScanCommand({ TableName: e2e.stack.names.verdictTable }),
    );
    // Each EICAR key is recorded as an alerted copy; the clean files carry no alert state.
    const alertedCopies = (ledger.Items ?? [])
      .filter((item) => item.MatchAlertSha256)
      .map((item) => item.Key?.S);
    expect(alertedCopies).toEqual(expect.arrayContaining([cliEicarKey, sdkEicarKey]));
    for (const key of cleanKeys) expect(alertedCopies).not.toContain(key);
  });

  it('alerts again, naming the new object, when the same EICAR bytes arrive under another key', async () => {
    const firstKey = 'again/first copy.com';
    const key = 'again/same bytes.com';
    const alertsBefore = e2e.stack.alerts.length;

    await put(firstKey, EICAR);
    await waitFor(
      () => (e2e.alertsFor(firstKey).length > 0 ? true : undefined),
      60_000,
      'the first alert',
    );
    await put(key, EICAR);
    await waitFor(
      () => (e2e.alertsFor(key).length > 0 ? true : undefined),
      60_000,
      'the second alert',
    );
    await e2e.drained();

    expect(e2e.alertsFor(firstKey)).toHaveLength(1);
    expect(e2e.alertsFor(key)).toHaveLength(1);
    expect(e2e.stack.alerts).toHaveLength(alertsBefore + 2);
  });

  it('retro-analyzes every object with unchanged rules without new alerts', async () => {
    const uploadedBefore = analyzed();
    await put('retro/eicar.com', EICAR);
    await put('retro/clean.txt', 'nothing to see\n');
    await analysesAfter(uploadedBefore, 2, 'the uploads');
    const objects = (await objectKeys()).length;
    const before = analyzed();
    const alertsBefore = e2e.stack.alerts.length;

    await e2e.retroAnalyze();
    await analysesAfter(before, objects, 'the retro-analysis');

    expect(analyzed()).toBe(before + objects);
    expect(e2e.stack.alerts).toHaveLength(alertsBefore);
  });

  it('alerts only for the files a newly added rule matches after a rebuild and retro-analysis', async () => {
    const markerKey = 'rule/new marker notes.txt';
    const uploadedBefore = analyzed();
    await put(markerKey, `notes\n${NEW_RULE_MARKER}\n`);
    await analysesAfter(uploadedBefore, 1, 'the upload');
    expect(e2e.alertsFor(markerKey)).toEqual([]);
    const versionBefore = await analyzerVersion();
    const itemsBefore = (await matchItems()).length;
    const rules = await tempDir('ba-e2e-rules-');
    try {
      const rule = `rule e2e_marker\n{\n    strings:\n        $m = "${NEW_RULE_MARKER}"\n    condition:\n        $m\n}\n`;
      await buildZips(e2e.zipsDir, await rulesWith(rules.path, 'marker.yara', rule), true);
    } finally {
      await rules.remove();
    }
    const objects = (await objectKeys()).length;
    const before = analyzed();
    const alertsBefore = e2e.stack.alerts.length;

    await e2e.retroAnalyze();
    await analysesAfter(before, objects, 'the retro-analysis with the new rule');

    expect(e2e.stack.alerts).toHaveLength(alertsBefore + 1);
    const [alert] = e2e.alertsFor(markerKey);
    expect(JSON.stringify(alert)).toContain('e2e_marker');
    expect(await analyzerVersion()).toBe(versionBefore + 1);
    // One item per binary: the marker file's is new.
    expect(await matchItems()).toHaveLength(itemsBefore + 1);
  });

  it('analyzes uploads after the store was killed: the analyzers reach it straight, on the port it keeps', async () => {
    const { stack } = e2e;
    const storePort = stack.emulators.s3.port;
    const before = analyzed();
    await put('store-kill/before.txt', 'clean, before the kill');
    await analysesAfter(before, 1, 'the upload before the kill');
    // The analyzers' S3 endpoint is the store's own port, not the front's.
    await expectAnalyzersEnv(`AWS_ENDPOINT_URL_S3=http://localhost:${storePort}`);

    process.kill(stack.emulators.s3.pid!, 'SIGKILL');
    await waitFor(() => (stack.emulators.s3.restarts >= 1 ? true : undefined), 10_000, 'restart');
    const keys = ['store-kill/after 1.txt', 'store-kill/after 2.bin', 'store-kill/eicar.com'];
    for (const key of keys) {
      // Puts during the restart may fail after the SDK's retries; the next try is served.
      await waitFor(
        () => put(key, key.endsWith('.com') ? EICAR : key).then(() => true),
        20_000,
        key,
      );
    }
    await analysesAfter(before + 1, keys.length, 'the uploads after the kill');

    expect(stack.emulators.s3.port).toBe(storePort);
    expect(e2e.alertsFor('store-kill/eicar.com')).toHaveLength(1);
    expect((await stack.status()).deadLetters).toBe(0);
  });

  it('analyzes an object the store committed but never notified before it died, once it is back', async () => {
    // Prepare: the store is frozen; the object is committed to its files with no notification,
    // as when the store dies between writing an object's record and sending its event.
    const { stack } = e2e;
    const key = 'store-kill/committed, never notified.com';
    const before = analyzed();
    const pid = stack.emulators.s3.pid!;
    process.kill(pid, 'SIGSTOP');
    try {
      const files = await ObjectStore.open(join(e2e.dataDir, 's3'));
      await files.put(stack.names.bucket, key, Readable.from([Buffer.from(EICAR)]), {
        metadata: {},
      });
    } finally {
      // Act: it dies.
      process.kill(pid, 'SIGKILL');
    }

    // Assert: once restarted, the bucket is reconciled and the object analyzed, alerted once.
    await waitFor(() => (stack.emulators.s3.pid !== pid ? true : undefined), 20_000, 'restart');
    await analysesAfter(before, 1, 'the object committed before the kill');
    await waitFor(() => (e2e.alertsFor(key).length > 0 ? true : undefined), 20_000, 'its alert');
    expect(e2e.alertsFor(key)).toHaveLength(1);
  });

  it('analyzes uploads after DynamoDB was killed: the analyzers reach it straight, on the port it keeps', async () => {
    const { stack } = e2e;
    const dynamoPort = stack.emulators.dynamo.port;
    const before = analyzed();
    await put('dynamo-kill/before.txt', 'clean, before the kill');
    await analysesAfter(before, 1, 'the upload before the kill');
    // The analyzers' DynamoDB endpoint is the emulator's own port, not the front's.
    await expectAnalyzersEnv(`AWS_ENDPOINT_URL_DYNAMODB=http://127.0.0.1:${dynamoPort}`);

    process.kill(stack.emulators.dynamo.pid!, 'SIGKILL');
    // Back once it answers (an analysis that meets it down fails and waits for the visibility
    // timeout: retried, never lost, but slower than this test).
    await waitFor(
      () =>
        stack.emulators.dynamo.restarts >= 1
          ? matchItems().then(
              () => true,
              () => undefined,
            )
          : undefined,
      20_000,
      'DynamoDB back',
    );
    const keys = ['dynamo-kill/after.txt', 'dynamo-kill/eicar.com'];
    for (const key of keys) await put(key, key.endsWith('.com') ? EICAR : key);
    await analysesAfter(before + 1, keys.length, 'the uploads after the kill');

    expect(stack.emulators.dynamo.port).toBe(dynamoPort);
    expect(e2e.alertsFor('dynamo-kill/eicar.com')).toHaveLength(1);
    expect((await stack.status()).deadLetters).toBe(0);
  });

  it('keeps objects, matches and the analyzer version across a restart', async () => {
    const analyzedBefore = analyzed();
    await put('restart/eicar.com', EICAR);
    await analysesAfter(analyzedBefore, 1, 'the upload');
    const keys = await objectKeys();
    const items = (await matchItems()).length;
    const version = await analyzerVersion();
    expect(items).toBeGreaterThan(0);

    await e2e.stop();
    e2e = await startE2E({
      dataDir: first.dataDir,
      zipsDir: first.zipsDir,
      config: await configOf(first),
    });

    expect(await objectKeys()).toEqual(keys);
    expect(await matchItems()).toHaveLength(items);
    expect(await analyzerVersion()).toBe(version);
  });
});

/** The settings a running fixture was started with (same names after a restart). */
async function configOf(e2e: E2E) {
  const prefix = e2e.stack.names.table.replace(/_binaryalert_matches$/, '');
  return testConfig({ name_prefix: prefix });
}
