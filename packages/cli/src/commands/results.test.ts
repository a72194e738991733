import {
  BatchWriteItemCommand,
  CreateTableCommand,
  PutItemCommand,
  type DynamoDBClient,
} from '@aws-sdk/client-dynamodb';
import { CreateBucketCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import {
  matchTableDefinition,
  verdictTableDefinition,
  verdictToItem,
  type VerdictRecord,
} from '@binaryalert/core';
import { loadTfvars, resourceNames, type BinaryAlertConfig } from '@binaryalert/deployment';
import { startDynamo, startS3, type Emulator } from '@binaryalert/testing';
import { csvField, printable } from '../results/format';
import {
  listResults,
  parseShowTarget,
  parseSince,
  showResults,
  summarizeResults,
  type ResultsContext,
} from './results';

const EICAR_SHA = 'a'.repeat(64);
const CLEAN_SHA = 'c'.repeat(64);

function record(key: string, fields: Partial<VerdictRecord> & Pick<VerdictRecord, 'verdict'>) {
  return {
    bucket: '',
    key,
    analyzedAt: '2026-01-01T00:00:00.000Z',
    analyzerVersion: 1,
    rules: [],
    matches: [],
    ...fields,
  } satisfies VerdictRecord;
}

describe('manage.ts results', () => {
  let dynamo: Emulator<DynamoDBClient>;
  let s3: Emulator<S3Client>;
  let config: BinaryAlertConfig;
  let bucket: string;
  let output: string;
  let context: ResultsContext;
  let prefixCount = 0;

  beforeAll(async () => {
    [dynamo, s3] = await Promise.all([startDynamo(), startS3()]);
  });
  afterAll(async () => {
    await Promise.all([dynamo.stop(), s3.stop()]);
  });

  beforeEach(async () => {
    prefixCount += 1;
    config = { ...(await loadTfvars()), name_prefix: `results${prefixCount}` };
    const names = resourceNames(config);
    bucket = names.bucket;
    await s3.client.send(new CreateBucketCommand({ Bucket: bucket }));
    await dynamo.client.send(new CreateTableCommand(verdictTableDefinition(names.verdictTable)));
    await dynamo.client.send(new CreateTableCommand(matchTableDefinition(names.table)));
    output = '';
    context = {
      config,
      clients: { dynamodb: dynamo.client, s3: s3.client },
      out: { write: (text: string) => (output += text) },
    };
  });

  /** Writes a ledger item as the analyzer does (same codec). */
  const write = (fields: VerdictRecord) =>
    dynamo.client.send(
      new PutItemCommand({
        TableName: resourceNames(config).verdictTable,
        Item: verdictToItem({ ...fields, bucket: fields.bucket || bucket }),
      }),
    );

  /** A mix as the analyzer leaves it. */
  async function seed(): Promise<void> {
    const eicar = {
      verdict: 'matched' as const,
      sha256: EICAR_SHA,
      rules: ['eicar.yara:eicar_av_test'],
      matches: [
        {
          id: 'eicar.yara:eicar_av_test',
          tags: ['test'],
          meta: { description: 'EICAR test file', score: 10 },
          strings: ['$eicar'],
        },
      ],
      alerted: true,
      alertReason: 'first match',
    };
    await write(record('uploads/eicar.com', { ...eicar, analyzedAt: '2026-01-02T00:00:00.000Z' }));
    await write(
      record('other/eicar copy.exe', {
        ...eicar,
        alerted: false,
        alertReason: 'already known',
        analyzedAt: '2026-01-03T00:00:00.000Z',
      }),
    );
    await write(record('uploads/notes.txt', { verdict: 'clean', sha256: CLEAN_SHA, size: 5 }));
    await write(record('uploads/huge.iso', { verdict: 'skipped', reason: 'too-large' }));
    await write(record('gone.bin', { verdict: 'skipped', reason: 'missing' }));
    await write(
      record('uploads/slow.bin', {
        verdict: 'failed',
        reason: 'scan-timeout',
        analyzedAt: '2026-01-05T00:00:00.000Z',
      }),
    );
  }

  const json = () => JSON.parse(output) as Record<string, unknown>[];

  it('lists every object with its verdict as JSON, matches first', async () => {
    await seed();

    await listResults(context, {}, 'json');

    const items = json();
    expect(items.map((item) => [item.key, item.verdict, item.reason])).toEqual([
      ['other/eicar copy.exe', 'matched', null],
      ['uploads/eicar.com', 'matched', null],
      ['uploads/slow.bin', 'failed', 'scan-timeout'],
      ['gone.bin', 'skipped', 'missing'],
      ['uploads/huge.iso', 'skipped', 'too-large'],
      ['uploads/notes.txt', 'clean', null],
    ]);
    expect(items[1]).toEqual({
      bucket,
      key: 'uploads/eicar.com',
      sha256: EICAR_SHA,
      verdict: 'matched',
      reason: null,
      rules: ['eicar.yara:eicar_av_test'],
      analyzedAt: '2026-01-02T00:00:00.000Z',
      size: null,
      etag: null,
      versionId: null,
      analyzerVersion: 1,
      alerted: true,
    });
  });

  it.each([
    [{ verdict: 'skipped' as const }, ['gone.bin', 'uploads/huge.iso']],
    [{ verdict: 'clean' as const }, ['uploads/notes.txt']],
    [{ rule: 'eicar.yara:eicar_av_test' }, ['other/eicar copy.exe', 'uploads/eicar.com']],
    [{ rule: 'eicar_av_test' }, ['other/eicar copy.exe', 'uploads/eicar.com']],
    [{ rule: 'eicar' }, []],
    [{ rule: 'other.yara:eicar_av_test' }, []],
    [
      { prefix: 'uploads/', bucket: 'the binaries bucket' },
      ['uploads/eicar.com', 'uploads/slow.bin', 'uploads/huge.iso', 'uploads/notes.txt'],
    ],
    [{ since: '2026-01-03T00:00:00.000Z' }, ['other/eicar copy.exe', 'uploads/slow.bin']],
    [{ verdict: 'matched' as const, since: '2026-01-03T00:00:00.000Z' }, ['other/eicar copy.exe']],
    [{ verdict: 'matched' as const, prefix: 'uploads/' }, ['uploads/eicar.com']],
  ])('filters by %p', async (filter, keys) => {
    await seed();

    await listResults(context, { ...filter, ...('bucket' in filter ? { bucket } : {}) }, 'json');

    expect(json().map((item) => item.key)).toEqual(keys);
  });

  it('pages through more items than one DynamoDB response holds, and stops at --limit', async () => {
    // 1,100 items of ~1.1 KB: more than the 1 MB one Query or Scan page returns.
    const items = Array.from({ length: 1100 }, (_, i) =>
      verdictToItem(
        record(`bulk/${String(i).padStart(5, '0')}`, {
          bucket,
          verdict: 'matched',
          rules: ['r.yar:big'],
          matches: [{ id: 'r.yar:big', tags: [], meta: { d: 'x'.repeat(1000) }, strings: [] }],
        }),
      ),
    );
    for (let offset = 0; offset < items.length; offset += 25) {
      await dynamo.client.send(
        new BatchWriteItemCommand({
          RequestItems: {
            [resourceNames(config).verdictTable]: items
              .slice(offset, offset + 25)
              .map((Item) => ({ PutRequest: { Item } })),
          },
        }),
      );
    }

    const all = await listResults(context, { verdict: 'matched' }, 'json');
    const everything = await listResults(context, {}, 'json');
    const some = await listResults(context, { rule: 'big', limit: 7 }, 'json');

    expect(all).toHaveLength(1100);
    expect(everything).toHaveLength(1100);
    expect(some).toHaveLength(7);
  });

  it('prints CSV that a spreadsheet cannot run as a formula', async () => {
    await write(record('=HYPERLINK("http://evil")', { verdict: 'clean', sha256: CLEAN_SHA }));
    await write(record('a,"b"\nc', { verdict: 'clean', sha256: CLEAN_SHA }));

    await listResults(context, {}, 'csv');

    const lines = output.split('\r\n');
    expect(lines[0]).toBe('bucket,key,verdict,reason,rules,sha256,size,analyzedAt,analyzerVersion');
    expect(output).toContain(`${bucket},"'=HYPERLINK(""http://evil"")",clean`);
    expect(output).toContain(`${bucket},"a,""b""\nc",clean`);
    expect(csvField('-1')).toBe("'-1");
    expect(csvField(null)).toBe('');
  });

  it('prints a table without the control characters of hostile keys', async () => {
    await seed();
    await write(record('evil\x1b[2J\x07.exe', { verdict: 'clean', sha256: CLEAN_SHA }));

    await listResults(context, {}, 'table');

    expect(output.includes('\x1b') || output.includes('\x07')).toBe(false);
    expect(output).toContain('evil\\x1b[2J\\x07.exe');
    expect(output.split('\n')[0]).toMatch(
      /^VERDICT\s+RULES \/ REASON\s+SHA256\s+ANALYZED\s+OBJECT$/,
    );
    expect(output.split('\n')[1]).toMatch(/^matched\s+eicar\.yara:eicar_av_test/);
    expect(printable('\u009b31m')).toBe('\\x9b31m');
  });

  it('prints a table without the characters that make a hostile key read as another name', async () => {
    await seed();
    // Shown raw, the right-to-left override makes this read "invoiceexe.pdf" on a terminal.
    await write(record('invoice\u202efdp.exe', { verdict: 'clean', sha256: CLEAN_SHA }));
    await write(record('a\u2028b\u2066.exe', { verdict: 'clean', sha256: CLEAN_SHA }));

    await listResults(context, {}, 'table');

    expect(output).not.toMatch(/[\u202e\u2028\u2066]/);
    expect(output).toContain('invoice\\u202efdp.exe');
    expect(output).toContain('a\\u2028b\\u2066.exe');
  });

  it('shows every object holding the same bytes, with rule details and the match history', async () => {
    await seed();
    const table = resourceNames(config).table;
    // The alert decision's record of the binary: rules alerted across two rules releases.
    await dynamo.client.send(
      new PutItemCommand({
        TableName: table,
        Item: {
          SHA256: { S: EICAR_SHA },
          AlertedRules: { SS: ['eicar.yara:eicar_av_test@f1', 'new.yara:eicar_v2@f2'] },
          FirstMatchedAt: { S: '2026-01-02T00:00:00.000Z' },
          LastAlertAt: { S: '2026-01-09T00:00:00.000Z' },
        },
      }),
    );
    // An item with only the alert decision's per-object state is not a verdict.
    await dynamo.client.send(
      new PutItemCommand({
        TableName: resourceNames(config).verdictTable,
        Item: {
          Bucket: { S: bucket },
          Key: { S: 'uploads/being-decided.exe' },
          MatchAlertSha256: { S: EICAR_SHA },
        },
      }),
    );

    const bySha = await showResults(context, EICAR_SHA.toUpperCase());
    const text = output;
    output = '';
    const byKey = await showResults(context, 'uploads/eicar.com', 'json');
    const shown = JSON.parse(output) as {
      objects: { key: string; matches: unknown[] }[];
      matchHistory: Record<string, { alertedRules: { id: string; fingerprint: string }[] }>;
    };
    output = '';
    const byUrl = await showResults(context, `s3://${bucket}/uploads/notes.txt`);

    expect(bySha.map((r) => r.key)).toEqual(['other/eicar copy.exe', 'uploads/eicar.com']);
    expect(text).toContain(`s3://${bucket}/uploads/eicar.com`);
    expect(text).toContain('rule eicar.yara:eicar_av_test [test]');
    expect(text).toContain('description = "EICAR test file"');
    expect(text).toContain('strings: $eicar');
    expect(text).toContain('alert:       sent (first match)');
    expect(text).toContain('alert:       not sent (already known)');
    expect(text).toContain('alerted: new.yara:eicar_v2 (rule version f2)');
    expect(byKey.map((r) => r.key)).toEqual(['other/eicar copy.exe', 'uploads/eicar.com']);
    expect(shown.objects[0]?.matches).toHaveLength(1);
    expect(shown.matchHistory[EICAR_SHA]?.alertedRules).toEqual([
      { id: 'eicar.yara:eicar_av_test', fingerprint: 'f1' },
      { id: 'new.yara:eicar_v2', fingerprint: 'f2' },
    ]);
    expect(text).toContain('last alert:    2026-01-09T00:00:00.000Z');
    expect(await showResults(context, 'uploads/being-decided.exe')).toEqual([]);
    output = '';
    await listResults(context, {}, 'json');
    expect(json().map((item) => item.key)).not.toContain('uploads/being-decided.exe');
    expect(byUrl.map((r) => r.verdict)).toEqual(['clean']);
    expect(await showResults(context, 'no/such/key')).toEqual([]);
    expect(output).toContain('No verdict for no/such/key.');
  });

  it('summarizes by verdict, reason and rule, and counts objects without a verdict', async () => {
    await seed();
    for (const key of ['uploads/eicar.com', 'uploads/notes.txt', 'never/analyzed.bin']) {
      await s3.client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: key }));
    }

    const summary = await summarizeResults(context, { format: 'json' });

    expect(summary.byVerdict).toEqual({ matched: 2, clean: 1, skipped: 2, failed: 1 });
    expect(summary.byReason).toEqual({ 'too-large': 1, missing: 1, 'scan-timeout': 1 });
    expect(summary.byRule).toEqual({ 'eicar.yara:eicar_av_test': 2 });
    expect(summary.coverage).toMatchObject({
      listed: 3,
      gone: 4,
      gaps: expect.objectContaining({ 'no verdict': 1 }),
    });
    // The two analyzed objects were uploaded after their (seeded, 2026-01) verdicts: replaced.
    expect(summary.coverage.gaps['content changed']).toBe(2);
    expect(JSON.parse(output)).toMatchObject({ bucket, byVerdict: summary.byVerdict });
  });

  it('parses --since and show targets, refusing malformed ones', () => {
    expect(parseSince('2026-01-31T12:00:00Z')).toBe('2026-01-31T12:00:00.000Z');
    expect(parseSince('2h', Date.parse('2026-01-01T02:00:00Z'))).toBe('2026-01-01T00:00:00.000Z');
    expect(() => parseSince('yesterday')).toThrow(/--since expects/);
    expect(() => parseSince('2026-13-45')).toThrow(/--since expects/);
    expect(parseShowTarget('s3://b/dir/k', 'd')).toEqual({ bucket: 'b', key: 'dir/k' });
    expect(parseShowTarget('dir/k', 'd')).toEqual({ bucket: 'd', key: 'dir/k' });
    expect(parseShowTarget(EICAR_SHA, 'd')).toEqual({ sha256: EICAR_SHA });
    expect(() => parseShowTarget('s3://bucket-only', 'd')).toThrow(/s3:\/\/bucket\/key/);
  });
});
