import { PublishCommand, type SNSClient } from '@aws-sdk/client-sns';
import { elideMiddle, type FileSummary } from '@binaryalert/core';

/** SNS subjects must be shorter than 100 characters. */
export const SUBJECT_MAX_LENGTH = 99;

/** SNS refuses a message larger than 256 KiB, its attributes' names, types and values included. */
export const SNS_MESSAGE_MAX_BYTES = 256 * 1024;

/** A summary shortened to fit an alert: the entries left out are counted instead. */
export type AlertSummary = FileSummary & {
  OmittedMatchedRules?: number;
  OmittedUnscanned?: number;
};

/**
 * The alert's body: the summary as pretty JSON, at most `maxBytes` (UTF-8). A summary too large
 * (a sample pack whose every member matched, thousands of members left unscanned) keeps its first
 * `Unscanned` entries, then its first `MatchedRules`, and counts the rest in `OmittedUnscanned` and
 * `OmittedMatchedRules`; `NumMatchedRules` still counts them all. Otherwise SNS would refuse it
 * on every retry and the object would never alert.
 */
export function alertMessage(summary: FileSummary, maxBytes: number): string {
  const rules = Object.entries(summary.MatchedRules);
  let keepRules = rules.length;
  let keepUnscanned = summary.Unscanned.length;
  for (;;) {
    const shortened: AlertSummary = {
      ...summary,
      MatchedRules: Object.fromEntries(rules.slice(0, keepRules)),
      Unscanned: summary.Unscanned.slice(0, keepUnscanned),
      ...(keepRules < rules.length ? { OmittedMatchedRules: rules.length - keepRules } : {}),
      ...(keepUnscanned < summary.Unscanned.length
        ? { OmittedUnscanned: summary.Unscanned.length - keepUnscanned }
        : {}),
    };
    const message = JSON.stringify(shortened, null, 4);
    const size = Buffer.byteLength(message);
    if (size <= maxBytes || (keepRules === 0 && keepUnscanned === 0)) return message;
    // What went unscanned goes first: the matches are what the alert is about.
    const fewer = (kept: number) => Math.min(kept - 1, Math.floor((kept * maxBytes) / size));
    if (keepUnscanned > 0) keepUnscanned = Math.max(0, fewer(keepUnscanned));
    else keepRules = Math.max(0, fewer(keepRules));
  }
}

/** What a message's attributes count toward SNS_MESSAGE_MAX_BYTES. */
function attributeBytes(attributes: Record<string, { DataType: string; StringValue: string }>) {
  return Object.entries(attributes).reduce(
    (sum, [name, value]) => sum + Buffer.byteLength(name + value.DataType + value.StringValue),
    0,
  );
}

function subjectFor(summary: FileSummary, what: string): string {
  // A match inside a container names the member (`key!dir/member`), the file that matched.
  const member = Object.values(summary.MatchedRules).find((rule) => rule.MemberPath)?.MemberPath;
  const name = member ?? (summary.FileInfo.S3Metadata.filepath || summary.FileInfo.SHA256);
  // SNS rejects line breaks and control characters in subjects.
  // eslint-disable-next-line no-control-regex
  const clean = `[BinaryAlert] ${name} ${what}`.replace(/[\u0000-\u001f\u007f]+/g, ' ');
  return elideMiddle(clean, SUBJECT_MAX_LENGTH);
}

/**
 * Publishes a match alert: the summary as pretty JSON, with message attributes `rules` (rule names)
 * and `rule_files` (their namespaces) as String.Array, and `sha256`, for subscription filter policies.
 */
export async function publishMatchAlert(
  sns: SNSClient,
  topicArn: string,
  summary: FileSummary,
): Promise<void> {
  const matched = Object.values(summary.MatchedRules);
  const unique = (values: string[]) => [...new Set(values)].sort();
  const attributes = {
    rules: {
      DataType: 'String.Array',
      StringValue: JSON.stringify(unique(matched.map((rule) => rule.RuleName))),
    },
    rule_files: {
      DataType: 'String.Array',
      StringValue: JSON.stringify(unique(matched.map((rule) => rule.RuleFile))),
    },
    sha256: { DataType: 'String', StringValue: summary.FileInfo.SHA256 },
  };
  await sns.send(
    new PublishCommand({
      TopicArn: topicArn,
      Subject: subjectFor(summary, 'matches a YARA rule'),
      Message: alertMessage(summary, SNS_MESSAGE_MAX_BYTES - attributeBytes(attributes)),
      MessageAttributes: attributes,
    }),
  );
}

/** Publishes a negative-match notification (a file that matched no rule). */
export async function publishNegativeAlert(
  sns: SNSClient,
  topicArn: string,
  summary: FileSummary,
): Promise<void> {
  const attributes = {
    sha256: { DataType: 'String', StringValue: summary.FileInfo.SHA256 },
  };
  await sns.send(
    new PublishCommand({
      TopicArn: topicArn,
      Subject: subjectFor(summary, 'did not match any YARA rules'),
      Message: alertMessage(summary, SNS_MESSAGE_MAX_BYTES - attributeBytes(attributes)),
      MessageAttributes: attributes,
    }),
  );
}
