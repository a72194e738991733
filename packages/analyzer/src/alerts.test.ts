import { PublishCommand, SNSClient } from '@aws-sdk/client-sns';
import 'aws-sdk-client-mock-jest';
import { mockClient } from 'aws-sdk-client-mock';
import type { FileSummary } from '@binaryalert/core';
import {
  publishMatchAlert,
  publishNegativeAlert,
  SNS_MESSAGE_MAX_BYTES,
  SUBJECT_MAX_LENGTH,
  type AlertSummary,
} from './alerts';

function summary(filepath?: string): FileSummary {
  return {
    FileInfo: {
      MD5: 'm'.repeat(32),
      SHA256: 's'.repeat(64),
      S3LastModified: '2026-01-01T00:00:00.000Z',
      S3Location: 'S3:bucket:key',
      S3Metadata: filepath === undefined ? {} : { filepath },
    },
    MatchedRules: {
      Rule1: {
        RuleName: 'evil',
        RuleFile: 'a.yar',
        RuleTags: [],
        Meta: {},
        MatchedStrings: ['$a'],
      },
      Rule2: {
        RuleName: 'worse',
        RuleFile: 'b.yar',
        RuleTags: ['t'],
        Meta: {},
        MatchedStrings: [],
      },
    },
    NumMatchedRules: 2,
    Coverage: 'complete',
    NumMembersScanned: 0,
    Unscanned: [],
  };
}

describe('publishMatchAlert', () => {
  const snsMock = mockClient(SNSClient);
  const sns = new SNSClient({ region: 'us-east-1' });
  beforeEach(() => snsMock.reset());

  it('publishes the summary as pretty JSON with the rule names as message attributes', async () => {
    await publishMatchAlert(sns, 'arn:topic', summary('/bin/evil.exe'));

    expect(snsMock).toHaveReceivedCommandWith(PublishCommand, {
      TopicArn: 'arn:topic',
      Subject: '[BinaryAlert] /bin/evil.exe matches a YARA rule',
      Message: JSON.stringify(summary('/bin/evil.exe'), null, 4),
      MessageAttributes: {
        rules: { DataType: 'String.Array', StringValue: '["evil","worse"]' },
        rule_files: { DataType: 'String.Array', StringValue: '["a.yar","b.yar"]' },
        sha256: { DataType: 'String', StringValue: 's'.repeat(64) },
      },
    });
  });

  it('names the SHA256 without a filepath and elides long subjects to 99 characters', async () => {
    await publishMatchAlert(sns, 'arn:topic', summary());
    await publishMatchAlert(sns, 'arn:topic', summary(`/very/long/${'x'.repeat(200)}\n.exe`));

    const subjects = snsMock
      .commandCalls(PublishCommand)
      .map((call) => call.args[0].input.Subject!);
    expect(subjects[0]).toBe(`[BinaryAlert] ${'s'.repeat(64)} matches a YARA rule`);
    expect(subjects[1]).toHaveLength(SUBJECT_MAX_LENGTH);
    expect(subjects[1]).toMatch(
      /^\[BinaryAlert\] \/very\/long\/x+ \.\.\. x+ \.exe matches a YARA rule$/,
    );
  });
});

describe('publishNegativeAlert', () => {
  const snsMock = mockClient(SNSClient);
  const sns = new SNSClient({ region: 'us-east-1' });
  beforeEach(() => snsMock.reset());

  it('keeps within what SNS accepts a summary of thousands of unscanned members, counting those left out', async () => {
    const locked: FileSummary = {
      ...summary('C:/locked.zip'),
      MatchedRules: {},
      NumMatchedRules: 0,
      Coverage: 'partial',
      Unscanned: Array.from({ length: 5000 }, (_, i) => ({
        Path: `uploads/locked.zip!samples/sample-${i}.exe`,
        Reason: 'encrypted',
        Detail: 'no password of the list decrypts this member',
      })),
    };

    await publishNegativeAlert(sns, 'arn:negative', locked);

    const message = snsMock.commandCalls(PublishCommand)[0]!.args[0].input.Message!;
    expect(Buffer.byteLength(message)).toBeLessThanOrEqual(SNS_MESSAGE_MAX_BYTES);
    const sent = JSON.parse(message) as AlertSummary;
    expect(sent.Unscanned[0]).toEqual(locked.Unscanned[0]);
    expect(sent.Unscanned.length + sent.OmittedUnscanned!).toBe(5000);
    expect(sent.Coverage).toBe('partial');
  });

  it('publishes to the negative topic', async () => {
    await publishNegativeAlert(sns, 'arn:negative', summary('C:/clean.txt'));

    expect(snsMock).toHaveReceivedCommandWith(PublishCommand, {
      TopicArn: 'arn:negative',
      Subject: '[BinaryAlert] C:/clean.txt did not match any YARA rules',
    });
  });
});
