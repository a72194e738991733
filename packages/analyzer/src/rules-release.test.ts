import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import {
  CreateBucketCommand,
  DeleteObjectCommand,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import {
  createLogger,
  CURRENT_RULES_MANIFEST_KEY,
  publishRulesRelease,
  type RulesManifest,
} from '@binaryalert/core';
import { clientConfig, startS3, uniqueName, type Emulator } from '@binaryalert/testing';
import { compileRules, libyaraVersion } from '@binaryalert/yara';
import { rulesFromBucket, unreleasedRules, type ActiveRules } from './rules-release';

describe('rulesFromBucket', () => {
  let s3: Emulator<S3Client>;
  let dir: string;
  let baked: ActiveRules;
  let bucket: string;
  let clock: number;
  let logLines: Record<string, unknown>[];
  const log = createLogger('analyzer', (line) =>
    logLines.push(JSON.parse(line) as Record<string, unknown>),
  );

  /** Compiles `rule <name>` matching `marker` into an unreleased manifest and its bytes. */
  async function compiled(name: string, marker: string) {
    const source = path.join(dir, `${name}.yar`);
    await writeFile(source, `rule ${name} { strings: $a = "${marker}" condition: $a }`);
    const { rules } = await compileRules([{ path: source, namespace: 'own.yar' }]);
    const file = path.join(dir, `${name}.bin`);
    await rules.save(file);
    const bytes = await readFile(file);
    const manifest: RulesManifest = {
      version: 0,
      ruleCount: rules.ruleCount,
      libyaraVersion,
      compiledSha256: createHash('sha256').update(bytes).digest('hex'),
      fingerprints: { rules: { [`own.yar:${name}`]: name.padEnd(16, '0') }, files: {} },
    };
    return { bytes, manifest };
  }

  const provider = () =>
    rulesFromBucket(
      s3.client,
      { bucket, refreshSeconds: 60, tempRoot: dir },
      baked,
      log,
      () => clock,
    );
  const scan = async (rules: ActiveRules, text: string) =>
    (await rules.compiled.scanBuffer(Buffer.from(text))).matches.map((m) => m.rule);

  beforeAll(async () => {
    s3 = await startS3();
    dir = await mkdtemp(path.join(os.tmpdir(), 'rules-release-'));
    await writeFile(path.join(dir, 'baked.yar'), 'rule baked { condition: false }');
    const { rules } = await compileRules([
      { path: path.join(dir, 'baked.yar'), namespace: 'baked.yar' },
    ]);
    baked = unreleasedRules(rules);
  });
  afterAll(async () => {
    await s3.stop();
    await rm(dir, { recursive: true, force: true });
  });
  beforeEach(async () => {
    bucket = uniqueName('rules');
    await s3.client.send(new CreateBucketCommand({ Bucket: bucket }));
    clock = 1_000_000;
    logLines = [];
  });

  it('uses the baked-in rules while the bucket holds no release', async () => {
    const rules = await provider().current();

    expect(rules).toBe(baked);
  });

  it('loads the newest release at the first scan, and a newer one only after the refresh interval', async () => {
    const first = await compiled('first_rule', 'FIRST');
    await publishRulesRelease(s3.client, bucket, first.bytes, first.manifest);
    const rules = provider();

    const v1 = await rules.current();
    const second = await compiled('second_rule', 'SECOND');
    await publishRulesRelease(s3.client, bucket, second.bytes, second.manifest);
    clock += 59_000;
    const stillV1 = await rules.current();
    clock += 1_000;
    const v2 = await rules.current();

    expect(v1.manifest.version).toBe(1);
    expect(await scan(v1, 'xx FIRST xx')).toEqual(['first_rule']);
    expect(stillV1).toBe(v1);
    expect(v2.manifest.version).toBe(2);
    expect(await scan(v2, 'xx SECOND FIRST')).toEqual(['second_rule']);
    expect(logLines).toContainEqual(
      expect.objectContaining({ message: 'loaded a rules release', rulesVersion: 2 }),
    );
  });

  it('loads the delta rules of a release beside it, and none whose file does not match its hash', async () => {
    const first = await compiled('first_rule', 'FIRST');
    await publishRulesRelease(s3.client, bucket, first.bytes, first.manifest);
    const second = await compiled('second_rule', 'SECOND');
    const delta = (sha: string) => ({
      baseVersion: 1,
      namespaces: ['own.yar'],
      compiledSha256: sha,
      ruleCount: 1,
      usesExternals: false,
    });
    const sha = createHash('sha256').update(second.bytes).digest('hex');
    await publishRulesRelease(
      s3.client,
      bucket,
      second.bytes,
      { ...second.manifest, delta: delta(sha) },
      new Date(),
      { compiled: second.bytes, against: 1 },
    );
    const withDelta = await provider().current();
    await publishRulesRelease(
      s3.client,
      bucket,
      second.bytes,
      { ...second.manifest, delta: delta('e'.repeat(64)) },
      new Date(),
      { compiled: second.bytes, against: 2 },
    );
    const badDelta = await provider().current();

    expect(withDelta.manifest.version).toBe(2);
    expect((await withDelta.delta!.scanBuffer(Buffer.from('SECOND'))).matches).toHaveLength(1);
    // Its rules still load; only the delta is refused (re-scans then use every rule).
    expect(badDelta.manifest.version).toBe(3);
    expect(badDelta.delta).toBeUndefined();
    expect(logLines).toContainEqual(
      expect.objectContaining({
        message: 'could not load the delta rules of a release; re-scans use every rule',
        rulesVersion: 3,
      }),
    );
  });

  it('keeps what it has when the same release is checked again', async () => {
    const first = await compiled('first_rule', 'FIRST');
    await publishRulesRelease(s3.client, bucket, first.bytes, first.manifest);
    const rules = provider();
    const v1 = await rules.current();

    clock += 120_000;

    expect(await rules.current()).toBe(v1);
    expect(logLines.filter((line) => line.message === 'loaded a rules release')).toHaveLength(1);
  });

  it('refuses a release for another libyara version, or whose file does not match its hash', async () => {
    const first = await compiled('first_rule', 'FIRST');
    const foreign = { ...first.manifest, version: 1, libyaraVersion: '3.0.0' };
    await s3.client.send(
      new PutObjectCommand({
        Bucket: bucket,
        Key: CURRENT_RULES_MANIFEST_KEY,
        Body: JSON.stringify(foreign),
      }),
    );
    const rules = provider();

    expect(await rules.current()).toBe(baked);
    await publishRulesRelease(s3.client, bucket, first.bytes, first.manifest); // v1: valid
    const tampered = { ...first.manifest, version: 2, compiledSha256: 'f'.repeat(64) };
    await s3.client.send(
      new PutObjectCommand({
        Bucket: bucket,
        Key: 'releases/v2/compiled_yara_rules.bin',
        Body: first.bytes,
      }),
    );
    await s3.client.send(
      new PutObjectCommand({
        Bucket: bucket,
        Key: CURRENT_RULES_MANIFEST_KEY,
        Body: JSON.stringify(tampered),
      }),
    );
    clock += 60_000;

    expect(await rules.current()).toBe(baked);
    expect(logLines.map((line) => line.message)).toEqual(
      expect.arrayContaining([
        'refusing a rules release compiled for another libyara version',
        'refusing a rules release whose file does not match its manifest',
      ]),
    );
  });

  it('refuses a release with no rule, or whose rules are not the ones its manifest counts', async () => {
    const first = await compiled('first_rule', 'FIRST');
    await publishRulesRelease(s3.client, bucket, first.bytes, first.manifest); // v1
    const rules = provider();
    const loaded = await rules.current();
    expect(loaded.manifest.version).toBe(1);
    // v2: a file of no rule (every rule commented out), its manifest true to it.
    await writeFile(path.join(dir, 'none.yar'), '// rule first_rule { condition: true }');
    const none = await compileRules([{ path: path.join(dir, 'none.yar'), namespace: 'own.yar' }]);
    await none.rules.save(path.join(dir, 'none.bin'));
    const noneBytes = await readFile(path.join(dir, 'none.bin'));
    const empty: RulesManifest = {
      ...first.manifest,
      ruleCount: 0,
      compiledSha256: createHash('sha256').update(noneBytes).digest('hex'),
      fingerprints: { rules: {}, files: {} },
    };
    await publishRulesRelease(s3.client, bucket, noneBytes, empty);
    clock += 60_000;

    expect(await rules.current()).toBe(loaded);
    // v3: the manifest counts (and fingerprints) rules the compiled file does not hold.
    const second = await compiled('second_rule', 'SECOND');
    await publishRulesRelease(s3.client, bucket, second.bytes, {
      ...second.manifest,
      ruleCount: 40,
    });
    clock += 60_000;

    expect(await rules.current()).toBe(loaded);
    expect(await scan(await rules.current(), 'FIRST')).toEqual(['first_rule']);
    expect(
      logLines.filter(
        (line) => line.message === "refusing a rules release whose rules are not its manifest's",
      ),
    ).toEqual([
      expect.objectContaining({
        level: 'ERROR',
        rulesVersion: 2,
        ruleCount: 0,
        manifestRuleCount: 0,
      }),
      expect.objectContaining({
        level: 'ERROR',
        rulesVersion: 3,
        ruleCount: 1,
        manifestRuleCount: 40,
      }),
    ]);
  });

  it('checks at once when asked for the latest release, but tries one that failed to load only at the interval', async () => {
    const first = await compiled('first_rule', 'FIRST');
    const rules = provider();
    expect(await rules.current()).toBe(baked);
    await publishRulesRelease(s3.client, bucket, first.bytes, first.manifest); // v1

    expect((await rules.current()).manifest.version).toBe(0); // the interval is not over
    expect((await rules.current({ latest: true })).manifest.version).toBe(1);

    // v2's file is gone (deleted by hand): every try to load it fails.
    const second = await compiled('second_rule', 'SECOND');
    await publishRulesRelease(s3.client, bucket, second.bytes, second.manifest);
    await s3.client.send(
      new DeleteObjectCommand({ Bucket: bucket, Key: 'releases/v2/compiled_yara_rules.bin' }),
    );
    const gets: string[] = [];
    const counting =
      (next: (args: unknown) => Promise<unknown>, context: { commandName?: string }) =>
      async (args: unknown) => {
        if (context.commandName === 'GetObjectCommand') {
          gets.push((args as { input: { Key: string } }).input.Key);
        }
        return next(args);
      };
    s3.client.middlewareStack.add(counting as never, { step: 'initialize', name: 'countGets' });
    try {
      for (let i = 0; i < 5; i++) {
        expect((await rules.current({ latest: true })).manifest.version).toBe(1);
      }
      clock += 60_000;
      expect((await rules.current({ latest: true })).manifest.version).toBe(1);
    } finally {
      s3.client.middlewareStack.remove('countGets');
    }

    // One try at once, one after the interval: not one per invocation.
    expect(gets.filter((key) => key === 'releases/v2/compiled_yara_rules.bin')).toHaveLength(2);
  });

  it('keeps scanning with the loaded rules when the bucket cannot be read', async () => {
    const rules = rulesFromBucket(
      s3.client,
      { bucket: 'no-such-bucket-here', refreshSeconds: 0, tempRoot: dir },
      baked,
      log,
    );

    expect(await rules.current()).toBe(baked);
  });

  it('fails the later of two racing releases clearly, so one version never names two rule sets', async () => {
    const [mine, theirs] = [await compiled('mine', 'MINE'), await compiled('theirs', 'THEIRS')];
    // This publish reads the current release, then waits while another publish runs to the end.
    let readCurrent!: () => void;
    const currentRead = new Promise<void>((resolve) => (readCurrent = resolve));
    let resume!: () => void;
    const resumed = new Promise<void>((resolve) => (resume = resolve));
    const slow = new S3Client(clientConfig(s3.endpoint));
    slow.middlewareStack.add(
      (next, context) => async (args) => {
        try {
          return await next(args);
        } finally {
          const { Key } = args.input as { Key?: string };
          if (context.commandName === 'GetObjectCommand' && Key === CURRENT_RULES_MANIFEST_KEY) {
            readCurrent();
            await resumed;
          }
        }
      },
      { step: 'initialize' },
    );
    const racing = publishRulesRelease(slow, bucket, mine.bytes, mine.manifest);
    racing.catch(() => undefined);
    await currentRead;
    const { release } = await publishRulesRelease(s3.client, bucket, theirs.bytes, theirs.manifest);
    const rules = provider();
    expect((await rules.current()).manifest).toEqual(release);

    resume();

    await expect(racing).rejects.toThrow(
      /rules release v2 was not published: another release became current meanwhile .*run it again/,
    );
    slow.destroy();
    clock += 60_000;
    const after = await rules.current();
    expect(after.manifest).toEqual(release);
    expect(await scan(after, 'THEIRS')).toEqual(['theirs']);
    // Every analyzer, however late it starts, loads the same rules for that version.
    expect(await scan(await provider().current(), 'THEIRS')).toEqual(['theirs']);
  });

  it('never uploads over the files of a release that took its number meanwhile', async () => {
    const [first, mine, theirs] = [
      await compiled('first', 'FIRST'),
      await compiled('mine', 'MINE'),
      await compiled('theirs', 'THEIRS'),
    ];
    await publishRulesRelease(s3.client, bucket, first.bytes, first.manifest); // v1
    let reachUpload!: () => void;
    const uploadReached = new Promise<void>((resolve) => (reachUpload = resolve));
    let resume!: () => void;
    const resumed = new Promise<void>((resolve) => (resume = resolve));
    const slow = new S3Client(clientConfig(s3.endpoint));
    slow.middlewareStack.add(
      (next, context) => async (args) => {
        if (context.commandName === 'PutObjectCommand') {
          reachUpload();
          await resumed;
        }
        return next(args);
      },
      { step: 'initialize' },
    );
    // About to upload v2 (v1 was current); then another release takes v2.
    const racing = publishRulesRelease(slow, bucket, mine.bytes, mine.manifest);
    racing.catch(() => undefined);
    await uploadReached;
    const { release } = await publishRulesRelease(s3.client, bucket, theirs.bytes, theirs.manifest);

    resume();

    await expect(racing).rejects.toThrow(/rules release v2 was published by someone else/);
    slow.destroy();
    expect(await scan(await provider().current(), 'THEIRS')).toEqual(['theirs']);
    expect((await provider().current()).manifest).toEqual(release);
  });

  it('gives the next release a number of its own after one was cut off before it was published', async () => {
    const [cut, next] = [await compiled('cut', 'CUT'), await compiled('next', 'NEXT')];
    // deploy-rules killed after the first upload: v1's file is there, the current manifest not.
    await s3.client.send(
      new PutObjectCommand({
        Bucket: bucket,
        Key: 'releases/v1/compiled_yara_rules.bin',
        Body: cut.bytes,
      }),
    );

    const { release } = await publishRulesRelease(s3.client, bucket, next.bytes, next.manifest);

    expect(release.version).toBe(2);
    const rules = await provider().current();
    expect(rules.manifest).toEqual(release);
    expect(await scan(rules, 'NEXT')).toEqual(['next']);
  });

  it('refuses to publish compiled rules that are not the ones the manifest describes', async () => {
    const first = await compiled('first_rule', 'FIRST');

    await expect(
      publishRulesRelease(s3.client, bucket, Buffer.from('other'), first.manifest),
    ).rejects.toThrow(/compile them again/);
  });
});
