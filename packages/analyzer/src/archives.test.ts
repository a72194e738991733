// The analyzer against s3rver, dynalite and local-aws-sqs with archives made by Debian's tools:
// members are scanned, named in the alert and the match table, bounded, and never retried.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { GetItemCommand, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { CreateBucketCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import {
  InvalidParameterException,
  PublishCommand,
  SNSClient,
  type PublishCommandInput,
} from '@aws-sdk/client-sns';
import type { SQSClient } from '@aws-sdk/client-sqs';
import 'aws-sdk-client-mock-jest';
import { mockClient } from 'aws-sdk-client-mock';
import {
  createLogger,
  createMetrics,
  DEFAULT_ARCHIVE_SETTINGS,
  s3EventRecord,
  type FileSummary,
} from '@binaryalert/core';
import {
  ArchiveKit,
  captureEmf,
  EICAR_TEXT,
  type EmfCapture,
  startDynamo,
  startS3,
  startSqs,
  uniqueName,
  type Emulator,
} from '@binaryalert/testing';
import { compileRules, type CompiledRules } from '@binaryalert/yara';
import { scanBudgetMs, type AnalyzerDeps, type AnalyzerSettings } from './analyze';
import { handleInvocation, type AnalysisResults } from './invocation';
import { readVerdict } from './ledger';
import { fixedRules, unreleasedRules } from './rules-release';
import { createMatchTable, createVerdictTable } from './testing';

const RULES =
  'rule eicar : test { strings: $a = "EICAR-STANDARD-ANTIVIRUS-TEST-FILE" condition: $a }';
const TOPIC = 'arn:aws:sns:us-east-1:123456789012:matches';
const sha256 = (data: string | Buffer) => createHash('sha256').update(data).digest('hex');

describe('analyzing containers', () => {
  let s3: Emulator<S3Client>;
  let sqs: Emulator<SQSClient>;
  let dynamo: Emulator<DynamoDBClient>;
  let rules: CompiledRules;
  let workDir: string;
  let tmpDir: string;
  let kit: ArchiveKit;
  const snsMock = mockClient(SNSClient);
  let emf: EmfCapture;
  let bucket: string;
  let settings: AnalyzerSettings;
  let deps: AnalyzerDeps;

  beforeAll(async () => {
    [s3, sqs, dynamo] = await Promise.all([startS3(), startSqs(), startDynamo()]);
    workDir = await mkdtemp(path.join(os.tmpdir(), 'analyzer-archives-'));
    await writeFile(path.join(workDir, 'eicar.yar'), RULES);
    ({ rules } = await compileRules([
      { path: path.join(workDir, 'eicar.yar'), namespace: 'eicar.yar' },
    ]));
    tmpDir = path.join(workDir, 'tmp');
    await mkdir(tmpDir);
    kit = new ArchiveKit(path.join(workDir, 'samples'));
  });

  afterAll(async () => {
    await Promise.all([s3.stop(), sqs.stop(), dynamo.stop()]);
    await rm(workDir, { recursive: true, force: true });
  });

  beforeEach(async () => {
    snsMock.reset();
    emf = captureEmf();
    bucket = uniqueName('binaries');
    const table = uniqueName('matches');
    const verdictTable = uniqueName('verdicts');
    await s3.client.send(new CreateBucketCommand({ Bucket: bucket }));
    await createMatchTable(dynamo.client, table);
    await createVerdictTable(dynamo.client, verdictTable);
    settings = {
      matchesTable: table,
      alertsTopicArn: TOPIC,
      negativeAlertsTopicArn: '',
      queueUrl: 'http://127.0.0.1:9/000000000000/unused',
      maxFileBytes: 64 * 1024 * 1024,
      scanTimeoutSeconds: 30,
      archives: DEFAULT_ARCHIVE_SETTINGS,
      concurrency: 2,
      tempRoot: tmpDir,
      verdictTable,
      verdictTtlDays: 0,
    };
    deps = {
      s3: s3.client,
      dynamo: dynamo.client,
      sqs: sqs.client,
      sns: new SNSClient({ region: 'us-east-1' }),
      rules: fixedRules(unreleasedRules(rules)),
      log: createLogger('analyzer', () => undefined),
      metrics: createMetrics(
        'analyzer',
        createLogger('analyzer', () => undefined),
      ),
    };
  });

  afterEach(async () => {
    emf.restore();
    // Neither downloads nor spilled members are left behind.
    expect(await readdir(tmpDir)).toEqual([]);
  });

  async function analyze(key: string, file: string, remainingMs?: () => number) {
    await s3.client.send(
      new PutObjectCommand({ Bucket: bucket, Key: key, Body: await readFile(file) }),
    );
    const event = { Records: [s3EventRecord({ bucket, key })] };
    const results = (await handleInvocation(
      deps,
      settings,
      event,
      1,
      remainingMs,
    )) as AnalysisResults;
    return results[`S3:${bucket}:${key}`]!;
  }
  const verdictOf = (key: string) =>
    readVerdict(dynamo.client, settings.verdictTable, { bucket, key });
  const publishes = () => snsMock.commandCalls(PublishCommand).map((call) => call.args[0].input);
  /** The value of a metric in the last invocation's EMF line. */
  const metric = (name: string) =>
    emf.metrics().findLast((written) => written.name === name)?.values[0];

  it('alerts once on EICAR inside a tar.gz, naming the member in the alert and the match table', async () => {
    const archive = kit.tar('sample.tar.gz', { 'dropper/payload.exe': EICAR_TEXT }, '-z');

    const summary = await analyze('uploads/sample.tar.gz', archive);
    const again = await analyze('uploads/sample.tar.gz', archive); // a duplicate delivery

    expect(summary.FileInfo.SHA256).toBe(sha256(await readFile(archive)));
    expect(summary.MatchedRules).toEqual({
      Rule1: expect.objectContaining({
        RuleName: 'eicar',
        MemberPath: 'uploads/sample.tar.gz!dropper/payload.exe',
        MemberSHA256: sha256(EICAR_TEXT),
      }),
    });
    expect(summary).toMatchObject({ Coverage: 'complete', NumMembersScanned: 1, Unscanned: [] });
    expect(again.NumMatchedRules).toBe(1);
    expect(publishes()).toEqual([
      expect.objectContaining({
        Subject: '[BinaryAlert] uploads/sample.tar.gz!dropper/payload.exe matches a YARA rule',
        Message: expect.stringContaining(
          '"MemberPath": "uploads/sample.tar.gz!dropper/payload.exe"',
        ),
      }),
    ]);
    const item = await dynamo.client.send(
      new GetItemCommand({
        TableName: settings.matchesTable,
        Key: { SHA256: { S: summary.FileInfo.SHA256 } },
      }),
    );
    expect(item.Item?.MatchedMembers).toEqual({
      L: [
        {
          M: {
            RuleId: { S: 'eicar.yar:eicar' },
            MemberPath: { S: 'dropper/payload.exe' },
            MemberSHA256: { S: sha256(EICAR_TEXT) },
          },
        },
      ],
    });
    expect(await verdictOf('uploads/sample.tar.gz')).toMatchObject({
      verdict: 'matched',
      matches: [
        expect.objectContaining({
          id: 'eicar.yar:eicar',
          memberPath: 'uploads/sample.tar.gz!dropper/payload.exe',
          memberSha256: sha256(EICAR_TEXT),
        }),
      ],
    });
  });

  it('opens a zip encrypted with the password "infected" from the configured list', async () => {
    const archive = kit.zip('sample.zip', { 'payload.exe': EICAR_TEXT }, 'infected');

    const opened = await analyze('opened.zip', archive);
    settings.archives = { ...DEFAULT_ARCHIVE_SETTINGS, passwords: [] };
    const locked = await analyze('locked.zip', archive);

    expect(opened.MatchedRules.Rule1?.MemberPath).toBe('opened.zip!payload.exe');
    expect(locked).toMatchObject({
      NumMatchedRules: 0,
      Coverage: 'partial',
      Unscanned: [expect.objectContaining({ Path: 'locked.zip!payload.exe', Reason: 'encrypted' })],
    });
    expect(metric('UnscannedContent')).toBe(1);
  });

  it('opens a 7z locked with "infected" inside a zip and names its member in the alert', async () => {
    const locked = kit.sevenZip('locked.7z', { 'drop/payload.exe': EICAR_TEXT }, 'infected');
    const archive = kit.zip('mail.zip', { 'attachment.7z': await readFile(locked) });

    const summary = await analyze('inbox/mail.zip', archive);

    expect(summary.MatchedRules).toEqual({
      Rule1: expect.objectContaining({
        RuleName: 'eicar',
        MemberPath: 'inbox/mail.zip!attachment.7z!drop/payload.exe',
        MemberSHA256: sha256(EICAR_TEXT),
      }),
    });
    expect(summary).toMatchObject({ Coverage: 'complete', NumMembersScanned: 2, Unscanned: [] });
    expect(publishes()).toEqual([
      expect.objectContaining({
        Subject: '[BinaryAlert] inbox/mail.zip!attachment.7z!drop/payload.exe matches a YARA rule',
      }),
    ]);
  });

  it('finishes a 10 GiB zip bomb as partial, counted in UnscannedContent, without a retry', async () => {
    const bomb = kit.zipBomb('bomb.zip');

    const summary: FileSummary = await analyze('bomb.zip', bomb);

    expect(summary.Coverage).toBe('partial');
    expect(summary.Unscanned).toEqual([
      expect.objectContaining({ Path: 'bomb.zip', Reason: 'ratio-limit' }),
    ]);
    expect(metric('UnscannedContent')).toBe(1);
    expect(metric('AnalysisErrors')).toBe(0);
    expect(await verdictOf('bomb.zip')).toMatchObject({
      verdict: 'partial',
      reason: 'ratio-limit',
    });
  });

  it('cuts the extraction budget to the invocation time left and reports time-limit', async () => {
    settings.archives = { ...DEFAULT_ARCHIVE_SETTINGS, maxRatio: 0, maxExpandedBytes: 2 ** 40 };
    const bomb = kit.zipBomb('bomb.zip');

    const summary = await analyze('bomb.zip', bomb, () => 11_000); // 1 s left after the reserve

    expect(summary.Coverage).toBe('partial');
    expect(summary.Unscanned).toEqual([expect.objectContaining({ Reason: 'time-limit' })]);
    expect(scanBudgetMs(settings, () => 11_000)).toBe(1000);
    expect(scanBudgetMs(settings, () => 600_000)).toBe(30_000);
  });

  it('alerts once on a sample pack whose every member matches, within what SNS accepts', async () => {
    // SNS refuses a message over 256 KiB, its attributes included (InvalidParameter).
    snsMock.on(PublishCommand).callsFake((input: PublishCommandInput) => {
      const attributes = Object.entries(input.MessageAttributes ?? {}).map(
        ([name, value]) => name + (value.DataType ?? '') + (value.StringValue ?? ''),
      );
      if (Buffer.byteLength([input.Message, ...attributes].join('')) > 256 * 1024) {
        throw new InvalidParameterException({
          message: 'Invalid parameter: Message too long',
          $metadata: {},
        });
      }
      return { MessageId: 'sent' };
    });
    const samples = Object.fromEntries(
      Array.from({ length: 800 }, (_, i) => [
        `samples/sample-${String(i).padStart(4, '0')}.exe`,
        `${EICAR_TEXT} ${i}`,
      ]),
    );
    const pack = kit.zip('pack.zip', samples);

    const summary = await analyze('packs/pack.zip', pack);

    // zip stores so small a file as is: the pack's own bytes match too.
    expect(summary.NumMatchedRules).toBe(801);
    expect(publishes()).toHaveLength(1);
    const alert = JSON.parse(publishes()[0]!.Message!) as FileSummary & {
      OmittedMatchedRules?: number;
    };
    expect(alert.NumMatchedRules).toBe(801);
    expect(alert.OmittedMatchedRules).toBeGreaterThan(0);
    expect(Object.keys(alert.MatchedRules).length + alert.OmittedMatchedRules!).toBe(801);
    expect(alert.MatchedRules.Rule2?.MemberPath).toBe('packs/pack.zip!samples/sample-0000.exe');
    expect(await verdictOf('packs/pack.zip')).toMatchObject({ verdict: 'matched', alerted: true });
  });

  it('records the verdict and the alert of matches deep inside members with 1,000-byte names', async () => {
    // 120 matching members 5 levels down, every name 1,000 bytes, under a 1,024-byte key: each
    // member path is about 6 KB.
    const nested = path.join(workDir, 'samples', 'long-names.zip');
    execFileSync('python3', [
      '-c',
      `import io, sys, zipfile
def pack(files):
    out = io.BytesIO()
    with zipfile.ZipFile(out, 'w', zipfile.ZIP_DEFLATED) as z:
        for name, data in files: z.writestr(name, data)
    return out.getvalue()
data = pack([('m' * 992 + '%04d.exe' % i, sys.argv[2] + str(i)) for i in range(120)])
for level in range(4): data = pack([('d' * 996 + '.zip', data)])
open(sys.argv[1], 'wb').write(data)`,
      nested,
      EICAR_TEXT,
    ]);
    const key = `${'k'.repeat(1020)}.zip`;

    const summary = await analyze(key, nested);

    expect(summary.NumMatchedRules).toBe(120);
    expect(publishes()).toHaveLength(1);
    const verdict = await verdictOf(key);
    expect(verdict).toMatchObject({ verdict: 'matched', alerted: true });
    // Kept by its start and its end, the member's own name.
    expect(verdict?.matches[0]?.memberPath).toMatch(/^k+ \.\.\. m+0000\.exe$/);
    const { Item } = await dynamo.client.send(
      new GetItemCommand({
        TableName: settings.matchesTable,
        Key: { SHA256: { S: sha256(await readFile(nested)) } },
      }),
    );
    expect(Item?.AlertedRules?.SS).toEqual([expect.stringMatching(/^eicar\.yar:eicar@/)]);
  });

  it('scans a truncated archive as plain bytes and reports it corrupt instead of failing', async () => {
    const whole = kit.tar(
      'whole.tar.gz',
      { 'a.bin': Buffer.alloc(300_000, 3), 'b.exe': EICAR_TEXT },
      '-z',
    );
    const truncated = kit.truncate(whole, 'truncated.tar.gz', 0.2);

    const summary = await analyze('truncated.tar.gz', truncated);

    expect(summary).toMatchObject({
      Coverage: 'partial',
      Unscanned: [expect.objectContaining({ Reason: 'corrupt' })],
    });
    expect(metric('AnalysisErrors')).toBe(0);
  });
});
