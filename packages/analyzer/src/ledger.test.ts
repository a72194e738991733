import { ScanCommand, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { FileAnalysis, VerdictRecord } from '@binaryalert/core';
import { startDynamo, uniqueName, type Emulator } from '@binaryalert/testing';
import { FileTruncatedError, ScanTimeoutError } from '@binaryalert/yara';
import { DownloadError } from './errors';
import {
  failureReason,
  readVerdict,
  recordCarriedVerdicts,
  recordVerdict,
  verdictRecord,
} from './ledger';
import { createVerdictTable } from './testing';

const BUCKET = 'binaries';

function summary(sha256: string, rules: string[] = []): { analysis: FileAnalysis } {
  const matches = rules.map((rule) => {
    const [namespace, name] = rule.split(':');
    return {
      namespace: namespace!,
      rule: name!,
      tags: ['tag'],
      meta: { score: 7, description: 'd', active: true },
      strings: [
        { identifier: '$b', offsets: [0] },
        { identifier: '$a', offsets: [1] },
        { identifier: '$b', offsets: [2] },
      ],
    };
  });
  return {
    analysis: {
      sha256,
      md5: 'm'.repeat(32),
      size: 10,
      label: 'k',
      matches,
      members: [],
      unscanned: [],
      coverage: 'complete',
      expandedBytes: 0,
      scanMs: 1,
    },
  };
}

const facts = { size: 10, lastModified: '2026-01-01T00:00:00.000Z', etag: '"e"' };

/** A record as the analyzer would build it at `at` (ms since the epoch) with `version`. */
function analyzed(key: string, at: number, sha256: string, rules: string[] = [], version = 1) {
  return verdictRecord(
    { bucket: BUCKET, key },
    { status: 'analyzed', result: summary(sha256, rules), object: facts },
    { analyzedAt: new Date(at), analyzerVersion: version, ttlDays: 0 },
  );
}

describe('verdict ledger', () => {
  let dynamo: Emulator<DynamoDBClient>;
  let table: string;

  beforeAll(async () => {
    dynamo = await startDynamo();
  });
  afterAll(async () => {
    await dynamo.stop();
  });
  beforeEach(async () => {
    table = uniqueName('verdicts');
    await createVerdictTable(dynamo.client, table);
  });

  const read = (key: string) => readVerdict(dynamo.client, table, { bucket: BUCKET, key });

  it('builds one verdict per outcome: matched, clean, partial, skipped and failed', () => {
    const context = { analyzedAt: new Date(1000), analyzerVersion: 3, ttlDays: 0 };
    const ref = { bucket: BUCKET, key: 'k', size: 99 };

    expect(
      verdictRecord(
        ref,
        { status: 'analyzed', result: summary('a', ['r.yar:evil']), object: facts },
        context,
      ),
    ).toMatchObject({ verdict: 'matched', rules: ['r.yar:evil'], sha256: 'a', etag: '"e"' });
    expect(
      verdictRecord(ref, { status: 'analyzed', result: summary('a'), object: facts }, context),
    ).toMatchObject({ verdict: 'clean', rules: [] });
    expect(
      verdictRecord(
        ref,
        {
          status: 'analyzed',
          result: summary('a', ['r.yar:evil']),
          object: facts,
          unscanned: 'archive-too-deep',
        },
        context,
      ),
    ).toMatchObject({ verdict: 'partial', reason: 'archive-too-deep', rules: ['r.yar:evil'] });
    expect(verdictRecord(ref, { status: 'skipped', reason: 'too-large' }, context)).toMatchObject({
      verdict: 'skipped',
      reason: 'too-large',
      size: 99,
    });
    expect(
      verdictRecord(
        ref,
        { status: 'failed', error: new ScanTimeoutError('slow', 'ERROR_SCAN_TIMEOUT') },
        context,
      ),
    ).toMatchObject({ verdict: 'failed', reason: 'scan-timeout', analyzerVersion: 3 });
    expect(
      failureReason(
        new FileTruncatedError(
          '/tmp/o: the file shrank while it was scanned',
          'FILE_TRUNCATED',
          '/tmp/o',
        ),
      ),
    ).toBe('scan-error');
    expect(failureReason(new DownloadError('S3:b:k'))).toBe('download-error');
    expect(failureReason(new Error('bug'))).toBe('internal-error');
  });

  it('keeps one item per object, replaced by each newer analysis, and returns the one it replaced', async () => {
    await recordVerdict(dynamo.client, table, analyzed('a.exe', 1000, 'sha-old'));

    const write = await recordVerdict(
      dynamo.client,
      table,
      analyzed('a.exe', 2000, 'sha-new', ['r.yar:evil']),
      { returnPrevious: true },
    );

    expect(write).toEqual({
      written: true,
      previous: expect.objectContaining({ verdict: 'clean', sha256: 'sha-old' }),
    });
    expect(await read('a.exe')).toMatchObject({ verdict: 'matched', sha256: 'sha-new' });
    const { Items = [] } = await dynamo.client.send(new ScanCommand({ TableName: table }));
    expect(Items).toHaveLength(1);
  });

  it('carries a verdict over only onto the same bytes, keeping the facts of the bytes', async () => {
    await recordVerdict(dynamo.client, table, analyzed('c.bin', 1000, 'sha-c', ['r.yar:old']));

    // The release dropped r.yar:old: the carried verdict is clean, its match list goes.
    const carried = { ...analyzed('c.bin', 2000, 'sha-c'), rulesVersion: '2' };
    expect(await recordCarriedVerdicts(dynamo.client, table, [carried])).toEqual([
      { written: true },
    ]);
    const after = await read('c.bin');
    expect(after).toMatchObject({
      rulesVersion: '2',
      analyzedAt: carried.analyzedAt,
      verdict: 'clean',
      rules: [],
      matches: [],
    });
    expect(after).toMatchObject({ md5: 'm'.repeat(32), etag: '"e"', size: 10 });

    // Other bytes analyzed meanwhile: the carry (of the old bytes' verdict) is refused.
    await recordVerdict(dynamo.client, table, analyzed('c.bin', 3000, 'sha-other'));
    const stale = { ...analyzed('c.bin', 4000, 'sha-c'), rulesVersion: '3' };
    expect(await recordCarriedVerdicts(dynamo.client, table, [stale])).toEqual([
      { written: false, reason: 'newer verdict exists' },
    ]);
    expect(await read('c.bin')).toMatchObject({ sha256: 'sha-other' });
    expect((await read('c.bin'))?.rulesVersion).toBeUndefined();
  });

  it('carries many verdicts in batches of 25, each standing alone, in order', async () => {
    // 60 objects over 3 requests; hostile keys (quotes, unicode, 1,024 bytes) are parameters.
    const keys = Array.from({ length: 60 }, (_unused, index) =>
      index === 7
        ? `"; DELETE FROM x; --${'\u00e9'.repeat(3)}`
        : index === 8
          ? 'k'.repeat(1024)
          : `m${index}`,
    );
    for (const key of keys)
      await recordVerdict(dynamo.client, table, analyzed(key, 1000, `sha-${key}`));
    // Two were analyzed again since the verdicts were read (other bytes, a later verdict); one
    // was never in the ledger.
    await recordVerdict(dynamo.client, table, analyzed(keys[3]!, 5000, 'sha-new'));
    await recordVerdict(dynamo.client, table, analyzed(keys[40]!, 5000, `sha-${keys[40]}`));
    const records = [...keys, 'never-analyzed'].map((key) => ({
      ...analyzed(key, 2000, `sha-${key}`),
      rulesVersion: '2',
    }));

    const writes = await recordCarriedVerdicts(dynamo.client, table, records);

    const refused = { written: false, reason: 'newer verdict exists' };
    expect(writes).toEqual(
      records.map((_record, index) =>
        index === 3 || index === 40 || index === 60 ? refused : { written: true },
      ),
    );
    for (const [index, key] of keys.entries()) {
      expect(await read(key)).toMatchObject(
        index === 3
          ? { sha256: 'sha-new', analyzedAt: new Date(5000).toISOString() }
          : index === 40
            ? { sha256: `sha-${key}`, analyzedAt: new Date(5000).toISOString() }
            : { sha256: `sha-${key}`, rulesVersion: '2' },
      );
    }
    expect((await read(keys[40]!))?.rulesVersion).toBeUndefined();
    expect(await read('never-analyzed')).toBeUndefined();
  });

  it('reports a carry the table refuses as failed, and the others as written', async () => {
    await recordVerdict(dynamo.client, table, analyzed('ok.bin', 1000, 'sha-ok'));
    const records = [
      { ...analyzed('ok.bin', 2000, 'sha-ok'), rulesVersion: '2' },
      { ...analyzed('ok.bin', 2000, 'sha-ok'), rulesVersion: '2', bucket: 'x' },
    ];

    const [written, missing] = await recordCarriedVerdicts(dynamo.client, table, records);
    const gone = await recordCarriedVerdicts(dynamo.client, uniqueName('no-such-table'), records);

    expect(written).toEqual({ written: true });
    expect(missing).toEqual({ written: false, reason: 'newer verdict exists' });
    expect(gone).toEqual([
      { written: false, reason: 'failed', error: expect.any(Error) },
      { written: false, reason: 'failed', error: expect.any(Error) },
    ]);
  });

  it('never lets a stale analysis that finishes late overwrite a newer verdict', async () => {
    // A slow worker began reading the object at t=1000 (old, malicious content); another read the
    // replaced, clean content at t=2000 and finished first.
    const newer = analyzed('race.bin', 2000, 'sha-clean');
    const stale = analyzed('race.bin', 1000, 'sha-evil', ['r.yar:evil']);
    await recordVerdict(dynamo.client, table, newer);

    const write = await recordVerdict(dynamo.client, table, stale);

    expect(write).toEqual({ written: false, reason: 'newer verdict exists' });
    expect(await read('race.bin')).toEqual(newer);
  });

  it('orders analyses of the same instant by analyzer version, and rewrites are idempotent', async () => {
    await recordVerdict(dynamo.client, table, analyzed('v.bin', 5000, 's', ['r.yar:new'], 7));

    const older = await recordVerdict(dynamo.client, table, analyzed('v.bin', 5000, 's', [], 6));
    const again = await recordVerdict(
      dynamo.client,
      table,
      analyzed('v.bin', 5000, 's', ['r.yar:new'], 7),
    );

    expect(older.written).toBe(false);
    expect(again.written).toBe(true);
    expect(await read('v.bin')).toMatchObject({ analyzerVersion: 7, rules: ['r.yar:new'] });
  });

  it('lets a later "missing" replace a verdict: the object was deleted after its analysis', async () => {
    await recordVerdict(dynamo.client, table, analyzed('deleted.bin', 1000, 's'));
    const gone = verdictRecord(
      { bucket: BUCKET, key: 'deleted.bin' },
      { status: 'skipped', reason: 'missing' },
      { analyzedAt: new Date(9000), analyzerVersion: 1, ttlDays: 0 },
    );

    await recordVerdict(dynamo.client, table, gone);

    expect(await read('deleted.bin')).toMatchObject({ verdict: 'skipped', reason: 'missing' });
    expect((await read('deleted.bin'))?.sha256).toBeUndefined();
  });

  it('stores hostile keys as they are: 1,024 bytes, traversal, unicode, control characters', async () => {
    const keys = [
      'k'.repeat(1024),
      '../../etc/passwd',
      'dir/évil 文件 +%20.exe',
      'tab\there\nnewline',
      ' ',
    ];
    for (const key of keys) await recordVerdict(dynamo.client, table, analyzed(key, 1000, 's'));

    for (const key of keys) expect((await read(key))?.key).toBe(key);
  });

  it('bounds an item that matched very many rules far below the 400 KB limit', async () => {
    const rules = Array.from({ length: 500 }, (_, i) => `rules/r${i}.yar:rule_${i}`);
    const record: VerdictRecord = {
      ...analyzed('many.bin', 1000, 's', rules),
      matches: rules.map((id) => ({
        id,
        tags: [],
        meta: { description: 'x'.repeat(5000) },
        strings: Array.from({ length: 200 }, (_, i) => `$s${i}`),
      })),
    };

    await recordVerdict(dynamo.client, table, record);

    const stored = await read('many.bin');
    expect(stored?.rules).toHaveLength(500);
    expect(stored?.matches).toHaveLength(100);
    expect(stored?.matches[0]?.strings).toHaveLength(50);
    expect(String(stored?.matches[0]?.meta.description)).toHaveLength(1024);
  });

  it('reports a ledger that cannot be written as a VerdictLedgerError', async () => {
    await expect(
      recordVerdict(dynamo.client, uniqueName('no-such-table'), analyzed('x', 1, 's')),
    ).rejects.toMatchObject({ name: 'VerdictLedgerError' });
  });
});
