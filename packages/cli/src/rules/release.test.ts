import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { CreateBucketCommand, GetObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import {
  currentRelease,
  DELTA_RULES_FILE,
  publishRulesRelease,
  releaseObjectKey,
} from '@binaryalert/core';
import { startS3, uniqueName, type Emulator } from '@binaryalert/testing';
import { loadRules } from '@binaryalert/yara';
import { releaseRules } from './release';

// The real S3 store and libyara: each release's delta is what a re-scan after it needs.
describe('releaseRules: the delta of a release', () => {
  let s3: Emulator<S3Client>;
  let dir: string;
  let rulesDir: string;
  let bucket: string;

  beforeAll(async () => {
    s3 = await startS3();
    dir = await mkdtemp(path.join(os.tmpdir(), 'release-delta-'));
  });
  afterAll(async () => {
    await s3.stop();
    await rm(dir, { recursive: true, force: true });
  });
  beforeEach(async () => {
    bucket = uniqueName('rules');
    rulesDir = await mkdtemp(path.join(dir, 'rules-'));
    await s3.client.send(new CreateBucketCommand({ Bucket: bucket }));
  });

  const write = (file: string, text: string) => writeFile(path.join(rulesDir, file), text);
  const release = () => releaseRules({ s3: s3.client, bucket, rulesDir, testSamples: false });

  it('ships only the files with new or changed rules, and builds on releases that only removed', async () => {
    await write(
      'base.yara',
      'rule keep { strings: $a = "KEEP" condition: $a }\nrule drop { strings: $a = "DROP" condition: $a }\n',
    );
    const first = await release();
    expect(first.release.delta).toBeUndefined(); // nothing to build on: a full re-scan

    await write('new.yara', 'rule fresh { strings: $a = "FRESH" condition: $a }\n');
    const second = await release();
    expect(second.release.delta).toMatchObject({
      baseVersion: 1,
      namespaces: ['new.yara'],
      ruleCount: 1,
      usesExternals: false,
    });
    const object = await s3.client.send(
      new GetObjectCommand({ Bucket: bucket, Key: releaseObjectKey(2, DELTA_RULES_FILE) }),
    );
    const deltaFile = path.join(dir, 'delta.bin');
    await writeFile(deltaFile, await object.Body!.transformToByteArray());
    const delta = await loadRules(deltaFile);
    const matches = await delta.scanBuffer(Buffer.from('KEEP FRESH'));
    expect(matches.matches.map((match) => `${match.namespace}:${match.rule}`)).toEqual([
      'new.yara:fresh',
    ]);

    // Removing a rule (and editing a comment) needs no scan at all.
    await write('base.yara', '// edited\nrule keep { strings: $a = "KEEP" condition: $a }\n');
    const third = await release();
    expect(third.removed).toEqual(['base.yara:drop']);
    expect(third.release.delta).toEqual({
      baseVersion: 2,
      namespaces: [],
      ruleCount: 0,
      usesExternals: false,
    });

    // A rule reading the file name: its verdict depends on the key, not only on the bytes.
    await write('named.yara', 'rule named { condition: filename == "x.exe" }\n');
    const fourth = await release();
    expect(fourth.release.delta).toMatchObject({
      baseVersion: 2, // v3 added and changed nothing: verdicts of v2 need only this delta too
      namespaces: ['named.yara'],
      usesExternals: true,
    });
  });

  it('changes the delta when an edited rule changes, not when only its meta does', async () => {
    await write('one.yara', 'rule r { meta: author = "a" strings: $a = "R1" condition: $a }\n');
    await release();

    await write('one.yara', 'rule r { meta: author = "b" strings: $a = "R1" condition: $a }\n');
    expect((await release()).release.delta?.namespaces).toEqual([]);

    await write('one.yara', 'rule r { meta: author = "b" strings: $a = "R2" condition: $a }\n');
    expect((await release()).release.delta?.namespaces).toEqual(['one.yara']);
  });

  it('drops a delta computed against a release that is no longer the current one', async () => {
    await write('one.yara', 'rule r { strings: $a = "R1" condition: $a }\n');
    const first = await release();
    await write('two.yara', 'rule s { strings: $a = "S1" condition: $a }\n');
    const second = await release(); // published meanwhile by someone else

    // A release whose delta was computed against v1, published after v2.
    const { release: late } = await publishRulesRelease(
      s3.client,
      bucket,
      Buffer.alloc(0),
      {
        ...first.release,
        compiledSha256: 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
        delta: { baseVersion: 1, namespaces: ['x'], ruleCount: 1, usesExternals: false },
      },
      new Date(),
      { compiled: Buffer.from('delta rules'), against: 1 },
    );

    expect(second.release.version).toBe(2);
    expect(late.version).toBe(3);
    expect(late.delta).toBeUndefined();
    expect((await currentRelease(s3.client, bucket))?.delta).toBeUndefined();
  });

  it('refuses to release rule files that hold no rule, leaving the current release in place', async () => {
    await write('base.yara', 'rule keep { strings: $a = "KEEP" condition: $a }\n');
    const first = await release();
    // Every rule commented out: analyzers with this set would call every object clean.
    await write('base.yara', '// rule keep { strings: $a = "KEEP" condition: $a }\n');
    await write('other.yara', 'import "pe"\n');

    await expect(release()).rejects.toThrow(/hold no rule/);
    expect(await currentRelease(s3.client, bucket)).toEqual(first.release);
  });
});
