import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { UpdateItemCommand, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import {
  CreateBucketCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { PublishCommand, SNSClient } from '@aws-sdk/client-sns';
import type { SQSClient } from '@aws-sdk/client-sqs';
import 'aws-sdk-client-mock-jest';
import { mockClient } from 'aws-sdk-client-mock';
import {
  createLogger,
  createMetrics,
  DEFAULT_ARCHIVE_SETTINGS,
  publishRulesRelease,
  RETRO_DELTA_EVENT,
  s3EventRecord,
  s3ObjectRef,
  type RulesManifest,
  type S3ObjectRef,
} from '@binaryalert/core';
import {
  ArchiveKit,
  leaveKeysUnprocessed,
  startDynamo,
  startS3,
  uniqueName,
  type Emulator,
} from '@binaryalert/testing';
import { compileRules, libyaraVersion, type CompiledRules } from '@binaryalert/yara';
import { analyzeObject, type AnalyzerDeps, type AnalyzerSettings } from './analyze';
import { analyzeAfterRelease } from './delta';
import { AnalysisFailedError } from './errors';
import { handleInvocation } from './invocation';
import { readBinaryFacts } from './delta-reads';
import { readVerdict } from './ledger';
import { rulesFromBucket, unreleasedRules, type ActiveRules } from './rules-release';
import { createMatchTable, createVerdictTable } from './testing';

// Real S3 store, dynalite and libyara; SNS (no local implementation) mocked at the
// client boundary. Releases are built by hand: v1 = base.yar, v2 = v1 + new.yar (one new rule),
// v3 = v2 with base.yar's old rule removed.
const BASE = 'rule old_rule { strings: $a = "OLD_MARKER" condition: $a }\n';
const NEW = 'rule new_rule { strings: $a = "NEW_MARKER" condition: $a }\n';
const BY_NAME = 'rule by_name { condition: filename == "evil.exe" }\n';
const TOPIC = 'arn:aws:sns:us-east-1:123456789012:matches';

describe('analyzeAfterRelease (delta re-scan)', () => {
  let s3: Emulator<S3Client>;
  let dynamo: Emulator<DynamoDBClient>;
  let dir: string;
  const snsMock = mockClient(SNSClient);
  let compiled: Record<string, CompiledRules>;
  let active: ActiveRules;
  let settings: AnalyzerSettings;
  let deps: AnalyzerDeps;
  let bucket: string;
  let downloads: string[];
  /** Every command the analyzer sends to S3 and DynamoDB, by name. */
  let sent: string[];
  const count = (command: string) => sent.filter((name) => name === command).length;

  async function compile(files: Record<string, string>): Promise<CompiledRules> {
    const sources = [];
    for (const [namespace, text] of Object.entries(files)) {
      const file = path.join(dir, `${namespace}-${Object.keys(files).join('+')}`);
      await writeFile(file, text);
      sources.push({ path: file, namespace });
    }
    return (await compileRules(sources)).rules;
  }

  const manifest = (
    version: number,
    rules: Record<string, string>,
    delta?: RulesManifest['delta'],
  ): RulesManifest => ({
    version,
    ruleCount: Object.keys(rules).length,
    libyaraVersion,
    compiledSha256: '0'.repeat(64),
    fingerprints: {
      rules,
      files: Object.fromEntries(Object.keys(rules).map((id) => [id.split(':')[0], id])),
    },
    ...(delta ? { delta } : {}),
  });
  const v1 = () => ({
    compiled: compiled.v1!,
    manifest: manifest(1, { 'base.yar:old_rule': 'a1' }),
  });
  /** What any match of new.yar requires, as the release computes it from its source. */
  const NEW_PREFILTER = { bytes: Buffer.from('NEW_MARKER').toString('hex') };
  const v2 = (usesExternals = false, prefilter?: typeof NEW_PREFILTER): ActiveRules => ({
    compiled: compiled.v2!,
    delta: usesExternals ? compiled.byName! : compiled.delta2!,
    manifest: manifest(
      2,
      { 'base.yar:old_rule': 'a1', 'new.yar:new_rule': 'b1' },
      {
        baseVersion: 1,
        namespaces: ['new.yar'],
        compiledSha256: '1'.repeat(64),
        ruleCount: 1,
        usesExternals,
        ...(prefilter ? { prefilter } : {}),
      },
    ),
  });

  beforeAll(async () => {
    [s3, dynamo] = await Promise.all([startS3(), startDynamo()]);
    dir = await mkdtemp(path.join(os.tmpdir(), 'delta-test-'));
    compiled = {
      v1: await compile({ 'base.yar': BASE }),
      v2: await compile({ 'base.yar': BASE, 'new.yar': NEW }),
      delta2: await compile({ 'new.yar': NEW }),
      byName: await compile({ 'new.yar': BY_NAME }),
      v3: await compile({ 'base.yar': 'rule other { condition: false }\n', 'new.yar': NEW }),
    };
    // Every GetObject the analyzer sends: what "downloaded" means below.
    s3.client.middlewareStack.add(
      (next, context) => async (args) => {
        if (context.commandName === 'GetObjectCommand') {
          downloads.push((args.input as { Key: string }).Key);
        }
        return next(args);
      },
      { step: 'initialize', name: 'countDownloads' },
    );
    for (const client of [s3.client, dynamo.client] as const) {
      (client as DynamoDBClient).middlewareStack.add(
        (next, context) => async (args) => {
          sent.push(context.commandName!.replace(/Command$/, ''));
          return next(args);
        },
        { step: 'initialize', name: 'countCommands' },
      );
    }
  });

  afterAll(async () => {
    await Promise.all([s3.stop(), dynamo.stop()]);
    await rm(dir, { recursive: true, force: true });
  });

  beforeEach(async () => {
    snsMock.reset();
    downloads = [];
    sent = [];
    bucket = uniqueName('binaries');
    settings = {
      matchesTable: uniqueName('matches'),
      verdictTable: uniqueName('verdicts'),
      verdictTtlDays: 0,
      alertsTopicArn: TOPIC,
      queueUrl: 'unused',
      maxFileBytes: 1_000_000,
      scanTimeoutSeconds: 5,
      archives: DEFAULT_ARCHIVE_SETTINGS,
      concurrency: 1,
      tempRoot: dir,
    };
    await s3.client.send(new CreateBucketCommand({ Bucket: bucket }));
    await createMatchTable(dynamo.client, settings.matchesTable);
    await createVerdictTable(dynamo.client, settings.verdictTable);
    active = v1();
    deps = {
      s3: s3.client,
      dynamo: dynamo.client,
      sqs: undefined as unknown as SQSClient,
      sns: new SNSClient({ region: 'us-east-1' }),
      // Only whole invocations publish metrics; these tests analyze objects one by one.
      metrics: createMetrics(
        'analyzer',
        createLogger('analyzer', () => undefined),
      ),
      rules: { current: () => Promise.resolve(active) },
      log: createLogger('analyzer', () => undefined),
    };
  });

  const put = (key: string, body: string) =>
    s3.client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body }));
  /** The object as the batcher names it in a delta re-scan. */
  const deltaRef = (key: string) => s3ObjectRef(s3EventRecord({ bucket, key }, RETRO_DELTA_EVENT));
  /** Analyzes every key in full with the current rules (what happened before the release). */
  const analyzeAll = async (keys: string[]) => {
    for (const key of keys) await analyzeObject(deps, settings, { bucket, key }, 1);
  };
  const retro = async (keys: string[]) => {
    const outcomes = [];
    for (const key of keys) {
      const outcome = await analyzeAfterRelease(deps, settings, deltaRef(key), 1);
      outcomes.push([key, outcome.status === 'carried' ? outcome.how : outcome.status]);
    }
    return Object.fromEntries(outcomes) as Record<string, string>;
  };
  const verdictOf = (key: string) =>
    readVerdict(dynamo.client, settings.verdictTable, { bucket, key });
  /** The content signature recorded for the bytes the object's verdict was made from. */
  const signatureOf = async (key: string) => {
    const sha256 = (await verdictOf(key))?.sha256;
    if (!sha256) return undefined;
    return (await readBinaryFacts(dynamo.client, settings.matchesTable, sha256, 0)).signature;
  };

  it('scans each distinct file once with the new rule and carries the other copies over without a download', async () => {
    const keys: string[] = [];
    for (let copy = 0; copy < 3; copy++) {
      for (let file = 0; file < 3; file++) {
        keys.push(`copy${copy}/file${file}`);
        await put(`copy${copy}/file${file}`, `ordinary file number ${file}`);
      }
    }
    await analyzeAll(keys);
    active = v2();
    downloads = [];

    const how = await retro(keys);

    // copy0 is scanned with the delta (new_rule only); copy1 and copy2 are decided from the
    // binary's recorded delta outcome.
    expect(how).toEqual(
      Object.fromEntries(keys.map((key) => [key, key.startsWith('copy0/') ? 'scanned' : 'known'])),
    );
    expect(downloads.sort()).toEqual(['copy0/file0', 'copy0/file1', 'copy0/file2']);
    for (const key of keys) {
      expect(await verdictOf(key)).toMatchObject({ verdict: 'clean', rulesVersion: '2' });
    }
    expect(snsMock).toHaveReceivedCommandTimes(PublishCommand, 0);
  });

  it('analyzes a file the new rule matches in full and alerts once per key, then settles', async () => {
    await put('a/marked', 'x NEW_MARKER y OLD_MARKER');
    await put('b/marked', 'x NEW_MARKER y OLD_MARKER');
    await put('a/plain', 'nothing');
    await analyzeAll(['a/marked', 'b/marked', 'a/plain']);
    expect(snsMock).toHaveReceivedCommandTimes(PublishCommand, 2); // old_rule, one per key
    active = v2();
    downloads = [];

    const how = await retro(['a/marked', 'b/marked', 'a/plain']);

    expect(how).toEqual({ 'a/marked': 'analyzed', 'b/marked': 'analyzed', 'a/plain': 'scanned' });
    // New rule: the first key alerts ('new rule'); the second is a copy whose pair is known, and
    // that key already alerted for these bytes: no further alert.
    expect(snsMock).toHaveReceivedCommandTimes(PublishCommand, 3);
    expect(await verdictOf('b/marked')).toMatchObject({
      verdict: 'matched',
      rulesVersion: '2',
      rules: ['base.yar:old_rule', 'new.yar:new_rule'],
    });

    // A re-scan cut off and started again, or run twice: everything is already current.
    downloads = [];
    expect(await retro(['a/marked', 'b/marked', 'a/plain'])).toEqual({
      'a/marked': 'current',
      'b/marked': 'current',
      'a/plain': 'current',
    });
    expect(downloads).toEqual([]);
    expect(snsMock).toHaveReceivedCommandTimes(PublishCommand, 3);
  });

  it('downloads an object whose bytes changed since its ledger entry', async () => {
    await put('changed', 'harmless at first');
    await put('twin', 'harmless at first');
    await analyzeAll(['changed', 'twin']);
    active = v2();
    await retro(['twin']); // the old bytes' delta outcome is now known
    await put('changed', 'now with NEW_MARKER inside'); // its notification was lost
    downloads = [];

    const how = await retro(['changed']);

    expect(how).toEqual({ changed: 'analyzed' });
    expect(downloads).toEqual(['changed']);
    expect(await verdictOf('changed')).toMatchObject({
      verdict: 'matched',
      rules: ['new.yar:new_rule'],
    });
  });

  it('analyzes in full when the verdict is older than what the delta builds on (a release during the re-scan)', async () => {
    await put('late', 'nothing here');
    await analyzeAll(['late']);
    // v3's delta builds on v2 only: a verdict made with v1 cannot take it.
    active = {
      compiled: compiled.v3!,
      delta: compiled.delta2!,
      manifest: manifest(
        3,
        { 'base.yar:other': 'c1', 'new.yar:new_rule': 'b1' },
        {
          baseVersion: 2,
          namespaces: ['base.yar'],
          compiledSha256: '2'.repeat(64),
          ruleCount: 1,
          usesExternals: false,
        },
      ),
    };

    expect(await retro(['late'])).toEqual({ late: 'analyzed' });
    expect(await verdictOf('late')).toMatchObject({ verdict: 'clean', rulesVersion: '3' });
  });

  it('drops the match of a removed rule when it carries a verdict over', async () => {
    await put('old', 'has OLD_MARKER');
    await analyzeAll(['old']);
    // v2 removed old_rule (base.yar kept only what matches nothing) and added nothing.
    active = {
      compiled: compiled.v3!,
      manifest: manifest(
        2,
        { 'base.yar:other': 'c1' },
        { baseVersion: 1, namespaces: [], ruleCount: 0, usesExternals: false },
      ),
    };
    downloads = [];

    expect(await retro(['old'])).toEqual({ old: 'known' });
    expect(downloads).toEqual([]);
    expect(await verdictOf('old')).toMatchObject({
      verdict: 'clean',
      rules: [],
      rulesVersion: '2',
    });
  });

  it('scans every key when the new rules read the file name (the same bytes may match under one name only)', async () => {
    await put('dir/evil.exe', 'same bytes');
    await put('dir/fine.txt', 'same bytes');
    await analyzeAll(['dir/evil.exe', 'dir/fine.txt']);
    active = v2(true);
    downloads = [];

    const how = await retro(['dir/fine.txt', 'dir/evil.exe']);

    // No filepath metadata: filename is empty for both, so by_name matches neither, but each key
    // had to be scanned on its own.
    expect(how).toEqual({ 'dir/fine.txt': 'scanned', 'dir/evil.exe': 'scanned' });
    expect(downloads.sort()).toEqual(['dir/evil.exe', 'dir/fine.txt']);
  });

  it('analyzes in full when the release carries no delta rules (e.g. they failed to load)', async () => {
    await put('k', 'nothing');
    await analyzeAll(['k']);
    active = { ...v2(), delta: undefined };

    expect(await retro(['k'])).toEqual({ k: 'analyzed' });
  });

  /** The keys as the batcher names them in a delta re-scan: with the listing's facts. */
  const listedRefs = async (keys: string[]): Promise<S3ObjectRef[]> => {
    const listedAt = new Date().toISOString();
    const { Contents = [] } = await s3.client.send(new ListObjectsV2Command({ Bucket: bucket }));
    return keys.map((key) => {
      const object = Contents.find((listed) => listed.Key === key)!;
      const record = s3EventRecord({
        bucket,
        key,
        retro: 'delta',
        listed: {
          etag: object.ETag!,
          size: object.Size!,
          lastModified: object.LastModified!.toISOString(),
          listedAt,
        },
      });
      return s3ObjectRef(JSON.parse(JSON.stringify(record)) as typeof record);
    });
  };
  /** One analyzer invocation of these records (a direct S3-event invocation). */
  const invoke = (records: ReturnType<typeof s3EventRecord>[]) =>
    handleInvocation(deps, settings, { Records: records }, 1);
  /**
   * Keys named `<dir>/<file>` hold `the file called <file>` (same file name: same bytes), analyzed
   * with v1; then v2 is released and the bucket listed: its delta records, counters reset.
   */
  const releaseOver = async (keys: string[]) => {
    for (const key of keys) await put(key, `the file called ${key.split('/')[1]}`);
    await analyzeAll(keys);
    active = v2();
    const records = (await listedRefs(keys)).map((ref) => s3EventRecord(ref));
    sent = [];
    downloads = [];
    return records;
  };

  it('decides from the listing and batch reads: no HEAD, no GetItem, each distinct file downloaded once in one invocation', async () => {
    const keys = ['a/one', 'a/two', 'a/three', 'b/one', 'b/two', 'b/three'];
    const records = await releaseOver(keys);

    await invoke(records);

    expect(count('HeadObject')).toBe(0);
    expect(count('GetItem')).toBe(0);
    // The ledger entries, then the binaries' delta outcomes.
    expect(count('BatchGetItem')).toBe(2);
    expect(downloads).toHaveLength(3);
    expect(new Set(downloads.map((key) => key.split('/')[1])).size).toBe(3);
    for (const key of keys) {
      expect(await verdictOf(key)).toMatchObject({ verdict: 'clean', rulesVersion: '2' });
    }

    // Again (a re-scan cut off and started over): nothing to download, nothing to write.
    sent = [];
    await invoke(records);
    expect(count('GetObject') + count('HeadObject') + count('UpdateItem')).toBe(0);
  });

  it('decides a whole invocation with one release, even when a newer one loads half-way through it', async () => {
    // v3 = v2 + third.yar; its delta is third.yar alone, built on v2.
    const THIRD = 'rule third_rule { strings: $a = "THIRD_MARKER" condition: $a }\n';
    const v3: ActiveRules = {
      compiled: await compile({ 'base.yar': BASE, 'new.yar': NEW, 'third.yar': THIRD }),
      delta: await compile({ 'third.yar': THIRD }),
      manifest: manifest(
        3,
        { 'base.yar:old_rule': 'a1', 'new.yar:new_rule': 'b1', 'third.yar:third_rule': 'c1' },
        {
          baseVersion: 2,
          namespaces: ['third.yar'],
          compiledSha256: '3'.repeat(64),
          ruleCount: 1,
          usesExternals: false,
        },
      ),
    };
    const keys = ['copy/one', 'copy/two']; // the same bytes under two keys
    for (const key of keys) await put(key, 'x THIRD_MARKER y');
    await analyzeAll(keys);
    active = v2();
    // v2's re-scan reached one key: its bytes' v2 delta outcome (no match) is on record.
    expect(await retro(['copy/one'])).toEqual({ 'copy/one': 'scanned' });
    const records = (await listedRefs(keys)).map((ref) => s3EventRecord(ref));
    // The invocation's first look at the rules sees v2; every later one v3 (the refresh).
    let looks = 0;
    deps.rules = { current: () => Promise.resolve(looks++ === 0 ? v2() : v3) };

    await invoke(records);
    deps.rules = { current: () => Promise.resolve(v3) };
    await invoke(records);

    for (const key of keys) {
      expect(await verdictOf(key)).toMatchObject({
        verdict: 'matched',
        rules: ['third.yar:third_rule'],
        rulesVersion: '3',
      });
    }
  });

  it('judges a re-scan with the release that started it, not one loaded before it (refresh interval not over)', async () => {
    // Releases published to a rules bucket, loaded by the analyzer's own provider.
    const rulesBucket = uniqueName('rules');
    await s3.client.send(new CreateBucketCommand({ Bucket: rulesBucket }));
    const bytesOf = async (rules: CompiledRules, name: string) => {
      await rules.save(path.join(dir, name));
      return readFile(path.join(dir, name));
    };
    const sha = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');
    const [v1Bytes, v2Bytes, deltaBytes] = [
      await bytesOf(compiled.v1!, 'v1.bin'),
      await bytesOf(compiled.v2!, 'v2.bin'),
      await bytesOf(compiled.delta2!, 'delta2.bin'),
    ];
    await publishRulesRelease(s3.client, rulesBucket, v1Bytes, {
      ...v1().manifest,
      version: 0,
      compiledSha256: sha(v1Bytes),
    });
    let clock = 1_000_000;
    deps.rules = rulesFromBucket(
      s3.client,
      { bucket: rulesBucket, refreshSeconds: 300, tempRoot: dir },
      unreleasedRules(compiled.v1!),
      createLogger('analyzer', () => undefined),
      () => clock,
    );
    await put('planted', 'x NEW_MARKER y');
    await analyzeAll(['planted']);
    expect(await verdictOf('planted')).toMatchObject({ verdict: 'clean', rulesVersion: '1' });
    // v2 adds new.yar; its re-scan starts at once (`deploy-rules --no-retro`, then
    // `retro-analyze`), well within the analyzer's refresh interval.
    await publishRulesRelease(
      s3.client,
      rulesBucket,
      v2Bytes,
      {
        ...v2().manifest,
        version: 0,
        compiledSha256: sha(v2Bytes),
        delta: { ...v2().manifest.delta!, compiledSha256: sha(deltaBytes) },
      },
      new Date(),
      { compiled: deltaBytes, against: 1 },
    );
    clock += 1_000;
    snsMock.reset();

    await invoke((await listedRefs(['planted'])).map((ref) => s3EventRecord(ref)));

    expect(await verdictOf('planted')).toMatchObject({
      verdict: 'matched',
      rules: ['new.yar:new_rule'],
      rulesVersion: '2',
    });
    expect(snsMock).toHaveReceivedCommandTimes(PublishCommand, 1);
  });

  it('analyzes in full an object replaced between the listing and the analysis', async () => {
    await put('swapped', 'harmless at first');
    await analyzeAll(['swapped']);
    active = v2();
    const [listed] = await listedRefs(['swapped']);
    await put('swapped', 'now with NEW_MARKER inside'); // its own notification is still queued
    downloads = [];

    await invoke([s3EventRecord(listed!)]);

    // The delta scan asked for the listed bytes (If-Match), S3 had others: a full analysis.
    expect(downloads).toEqual(['swapped', 'swapped']);
    expect(await verdictOf('swapped')).toMatchObject({
      verdict: 'matched',
      rules: ['new.yar:new_rule'],
      rulesVersion: '2',
    });
    expect(snsMock).toHaveReceivedCommandTimes(PublishCommand, 1);
  });

  it('never lets a verdict carried from an older listing replace the analysis of a newer upload, in either order', async () => {
    for (const key of ['twin', 'first', 'second']) await put(key, 'harmless at first');
    await analyzeAll(['twin', 'first', 'second']);
    active = v2();
    await invoke((await listedRefs(['twin'])).map((ref) => s3EventRecord(ref))); // outcome known
    const refs = await listedRefs(['first', 'second']);
    await put('first', 'replaced by NEW_MARKER');
    await put('second', 'replaced by NEW_MARKER');
    // first: the upload's own analysis begins, the stale delta record is carried over (no
    // download: the outcome of the old bytes is known) while that analysis still downloads, then
    // the analysis writes its verdict.
    let release!: () => void;
    const downloading = new Promise<void>((resolve) => (release = resolve));
    s3.client.middlewareStack.add(
      (next, context) => async (args) => {
        const key = (args.input as { Key?: string }).Key;
        if (context.commandName === 'GetObjectCommand' && key === 'first') await downloading;
        return next(args);
      },
      { step: 'initialize', name: 'holdFirstDownload' },
    );
    try {
      const analysis = analyzeObject(deps, settings, { bucket, key: 'first' }, 1);
      await invoke([s3EventRecord(refs[0]!)]);
      release();
      await analysis;
    } finally {
      s3.client.middlewareStack.remove('holdFirstDownload');
    }
    // second: the upload's analysis first, then the stale delta record.
    await analyzeObject(deps, settings, { bucket, key: 'second' }, 1);
    await invoke([s3EventRecord(refs[1]!)]);

    for (const key of ['first', 'second']) {
      expect(await verdictOf(key)).toMatchObject({
        verdict: 'matched',
        rules: ['new.yar:new_rule'],
      });
    }
  });

  it.each([
    ['every answer leaves every key unprocessed', () => 100, 'GetItem'],
    ['the first answer leaves some keys unprocessed', (call: number) => (call === 0 ? 2 : 0), ''],
  ])('reaches the same verdicts when %s', async (_label, leave, perObjectRead) => {
    const keys = ['x/one', 'x/two', 'y/one', 'y/two'];
    const records = await releaseOver(keys);
    const remove = leaveKeysUnprocessed(dynamo.client, leave);
    try {
      await invoke(records);
    } finally {
      remove();
    }

    // What the batch could not read is read per object; what it re-read needs nothing more.
    if (perObjectRead) expect(count(perObjectRead)).toBeGreaterThan(0);
    else expect(count('GetItem')).toBe(0);
    // Each distinct file once, either way.
    expect(downloads).toHaveLength(2);
    expect(new Set(downloads.map((key) => key.split('/')[1])).size).toBe(2);
    for (const key of keys) {
      expect(await verdictOf(key)).toMatchObject({ verdict: 'clean', rulesVersion: '2' });
    }
  });

  it('checks an object with a HEAD when its record carries garbage listing facts, and analyzes in full when they are wrong', async () => {
    for (const key of ['garbage', 'wrong']) await put(key, `plain ${key}`);
    await analyzeAll(['garbage', 'wrong']);
    active = v2();
    const [garbage, wrong] = (await listedRefs(['garbage', 'wrong'])).map((ref) =>
      s3EventRecord(ref),
    );
    garbage!.s3.object.lastModified = 'not a date';
    wrong!.s3.object.eTag = '0123456789abcdef0123456789abcdef';
    sent = [];
    downloads = [];

    await invoke([garbage!, wrong!]);

    expect(count('HeadObject')).toBe(1);
    expect(downloads.sort()).toEqual(['garbage', 'wrong']);
    expect(await verdictOf('garbage')).toMatchObject({ verdict: 'clean', rulesVersion: '2' });
    expect(await verdictOf('wrong')).toMatchObject({ verdict: 'clean', rulesVersion: '2' });
  });

  describe('content prefilter', () => {
    /** Releases v2 (with the prefilter) and re-scans `keys` as the batcher's listing would. */
    const releaseAndRescan = async (keys: string[]) => {
      active = v2(false, NEW_PREFILTER);
      const records = (await listedRefs(keys)).map((ref) => s3EventRecord(ref));
      sent = [];
      downloads = [];
      snsMock.reset();
      await invoke(records);
    };

    it('records no signature with content_prefilter off, so the re-scan reads every object and still finds the marker', async () => {
      settings = { ...settings, contentSignatures: false };
      const keys = ['plain/one', 'planted'];
      await put('plain/one', 'an ordinary file with OLD_MARKER in it');
      await put('planted', 'x NEW_MARKER y');
      await analyzeAll(keys);
      expect(await signatureOf('plain/one')).toBeUndefined();
      await releaseAndRescan(keys);

      expect(downloads).toContain('plain/one'); // nothing to rule it out with: read
      expect(snsMock).toHaveReceivedCommandTimes(PublishCommand, 1);
      expect(await verdictOf('planted')).toMatchObject({ verdict: 'matched', rulesVersion: '2' });
      expect(await verdictOf('plain/one')).toMatchObject({ verdict: 'matched', rulesVersion: '2' });
    });

    it('carries what the prefilter rules out without a download, and still finds and alerts the planted marker once', async () => {
      const keys = ['plain/one', 'plain/two', 'planted', 'planted-copy'];
      await put('plain/one', 'an ordinary file with OLD_MARKER in it');
      // Every trigram of NEW_MARKER, but not NEW_MARKER: the prefilter cannot rule it out.
      await put('plain/two', 'NEW_MARKE and EW_MARKER');
      await put('planted', 'x NEW_MARKER y');
      await put('planted-copy', 'x NEW_MARKER y (another copy)');
      await analyzeAll(keys);
      const before = await signatureOf('plain/one');
      expect(before?.length).toBeGreaterThan(512);
      await releaseAndRescan(keys);

      expect(downloads.sort()).toEqual([
        'plain/two',
        'planted',
        'planted',
        'planted-copy',
        'planted-copy',
      ]);
      // The ledger entries, then the delta outcomes of the binaries not ruled out.
      expect(count('BatchGetItem')).toBe(2);
      expect(snsMock).toHaveReceivedCommandTimes(PublishCommand, 2); // one per planted key
      expect(await verdictOf('planted')).toMatchObject({
        verdict: 'matched',
        rules: ['new.yar:new_rule'],
        rulesVersion: '2',
      });
      const carried = await verdictOf('plain/one');
      expect(carried).toMatchObject({
        verdict: 'matched',
        rules: ['base.yar:old_rule'],
        rulesVersion: '2',
      });
      // The signature is the binary's, whatever became of the verdicts: the next re-scan reads it.
      expect(Buffer.from((await signatureOf('plain/one'))!)).toEqual(Buffer.from(before!));
      expect(await verdictOf('plain/two')).toMatchObject({ verdict: 'clean', rulesVersion: '2' });

      // The same re-scan, object by object: how each was decided.
      active = { ...v2(false, NEW_PREFILTER), manifest: { ...v2().manifest, version: 3 } };
      active.manifest.delta = {
        ...active.manifest.delta!,
        baseVersion: 2,
        prefilter: NEW_PREFILTER,
      };
      downloads = [];
      snsMock.reset();
      expect(await retro(keys)).toEqual({
        'plain/one': 'excluded',
        'plain/two': 'scanned',
        planted: 'analyzed',
        'planted-copy': 'analyzed',
      });
      expect(downloads.filter((key) => key.startsWith('plain'))).toEqual(['plain/two']);
      // Known for these bytes: the new rule's pair is already recorded, no second alert.
      expect(snsMock).toHaveReceivedCommandTimes(PublishCommand, 0);
    });

    it('carries what the batch reads settle 25 to a request; a refused request fails only its objects, retried later', async () => {
      const keys = Array.from({ length: 30 }, (_unused, index) => `plain/${index}`);
      for (const key of keys) await put(key, `an ordinary file number ${key} with OLD_MARKER`);
      await analyzeAll(keys);
      await releaseAndRescan(keys);

      expect(downloads).toEqual([]);
      expect(count('BatchExecuteStatement')).toBe(2);
      expect(count('UpdateItem')).toBe(0); // no write of their own
      for (const key of keys) {
        expect(await verdictOf(key)).toMatchObject({ verdict: 'matched', rulesVersion: '2' });
      }

      // v3: the first request of carries is refused (throttled); its 25 objects fail and stay at
      // v2, the other 5 are carried; the retry carries the rest.
      active = { ...v2(false, NEW_PREFILTER), manifest: { ...v2().manifest, version: 3 } };
      active.manifest.delta = {
        ...active.manifest.delta!,
        baseVersion: 2,
        prefilter: NEW_PREFILTER,
      };
      let refused = 0;
      const refuse = 'refuseFirstBatchExecuteStatement';
      dynamo.client.middlewareStack.add(
        (next, context) => async (args) => {
          if (context.commandName === 'BatchExecuteStatementCommand' && refused++ === 0) {
            throw Object.assign(new Error('throttled'), { name: 'ThrottlingException' });
          }
          return next(args);
        },
        { step: 'initialize', name: refuse },
      );
      const records = (await listedRefs(keys)).map((ref) => s3EventRecord(ref));
      // A direct S3 event fails, so Lambda's retries analyze the failed objects again.
      const failure = await invoke(records).then(
        () => undefined,
        (error: unknown) => error as AnalysisFailedError,
      );
      dynamo.client.middlewareStack.remove(refuse);
      expect(failure?.failedObjects).toHaveLength(25);
      const versions = await Promise.all(
        keys.map(async (key) => (await verdictOf(key))!.rulesVersion),
      );
      expect(versions.filter((version) => version === '3')).toHaveLength(5);
      expect(versions.filter((version) => version === '2')).toHaveLength(25);

      await invoke(records);
      for (const key of keys) expect((await verdictOf(key))!.rulesVersion).toBe('3');
      expect(downloads).toEqual([]);
    });

    it('reads the object when its stored signature is absent, damaged, of an older format or oversized, and never fails on it', async () => {
      const damaged: Record<string, Uint8Array | undefined> = {
        absent: undefined,
        truncated: Buffer.from([2, 0, 0, 0]),
        foreign: Buffer.concat([Buffer.from([9]), Buffer.alloc(512)]),
        // Format 1: an all-zero bitmap would rule out every literal, but an older addon made it.
        older: Buffer.concat([Buffer.from([1]), Buffer.alloc(512)]),
        oversized: Buffer.concat([Buffer.from([2]), Buffer.alloc(128 * 1024)]),
      };
      for (const key of Object.keys(damaged)) await put(key, `plain ${key}`);
      await put('marked', 'x NEW_MARKER y');
      await analyzeAll([...Object.keys(damaged), 'marked']);
      for (const [key, value] of Object.entries({ ...damaged, marked: Buffer.from([1, 0]) })) {
        await dynamo.client.send(
          new UpdateItemCommand({
            TableName: settings.matchesTable,
            Key: { SHA256: { S: (await verdictOf(key))!.sha256! } },
            ...(value
              ? {
                  UpdateExpression: 'SET ContentTrigrams = :b',
                  ExpressionAttributeValues: { ':b': { B: value } },
                }
              : { UpdateExpression: 'REMOVE ContentTrigrams' }),
          }),
        );
      }
      active = v2(false, NEW_PREFILTER);
      downloads = [];

      const how = await retro([...Object.keys(damaged), 'marked']);

      expect(how).toEqual({
        absent: 'scanned',
        truncated: 'scanned',
        foreign: 'scanned',
        older: 'scanned',
        oversized: 'scanned',
        marked: 'analyzed',
      });
      expect(await verdictOf('marked')).toMatchObject({
        verdict: 'matched',
        rules: ['new.yar:new_rule'],
      });
    });

    it('never rules out a marker that only an archive member holds (compressed, encrypted zip, encrypted 7z)', async () => {
      const kit = new ArchiveKit(path.join(dir, `kit-${bucket}`));
      // Random bytes around the marker: compressed, nothing of it shows in the archive's own bytes.
      const member = Buffer.concat([
        Buffer.from(`${'filler '.repeat(500)} NEW_MARKER `),
        Buffer.from('end'),
      ]);
      const archives = {
        'mail.zip': kit.zip('mail.zip', { 'inner/payload.txt': member }),
        'locked.zip': kit.zip('locked.zip', { 'payload.txt': member }, 'infected'),
        'locked.7z': kit.sevenZip('locked.7z', { 'payload.txt': member }, 'infected'),
        'nested.tar.gz': kit.tar('nested.tar.gz', { 'a/payload.txt': member }, '-z'),
      };
      for (const [key, file] of Object.entries(archives)) {
        expect((await readFile(file)).includes('NEW_MARKER')).toBe(false);
        await s3.client.send(
          new PutObjectCommand({ Bucket: bucket, Key: key, Body: await readFile(file) }),
        );
      }
      const keys = Object.keys(archives);
      await analyzeAll(keys);
      // The signature covers the members the addon opened; the 7z that only 7-Zip could open has none.
      expect(await signatureOf('mail.zip')).toBeDefined();
      expect(await signatureOf('locked.7z')).toBeUndefined();
      active = v2(false, NEW_PREFILTER);
      snsMock.reset();

      const how = await retro(keys);

      expect(how).toEqual(Object.fromEntries(keys.map((key) => [key, 'analyzed'])));
      for (const key of keys) {
        expect(await verdictOf(key)).toMatchObject({
          verdict: 'matched',
          rules: ['new.yar:new_rule'],
          rulesVersion: '2',
        });
      }
      expect(snsMock).toHaveReceivedCommandTimes(PublishCommand, keys.length);
    });

    it('records no signature for an object only partly scanned, so it is always read', async () => {
      await put('big', 'x'.repeat(2_000));
      settings = { ...settings, maxFileBytes: 1_000 };
      await analyzeAll(['big']);
      expect(await verdictOf('big')).toMatchObject({ verdict: 'skipped' });
      expect(await signatureOf('big')).toBeUndefined();
    });
  });
});
