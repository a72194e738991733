import { PublishCommand, type SNSClient } from '@aws-sdk/client-sns';
import type { FileSummary } from '@binaryalert/core';

/** SNS subjects must be shorter than 100 characters. */
export const SUBJECT_MAX_LENGTH = 99;

/** Shortens text to at most `maxLength` characters by replacing its middle with " ... ". */
export function elideMiddle(text: string, maxLength: number): string {
  const chars = Array.from(text);
  if (chars.length <= maxLength) return text;
  const half = Math.floor((maxLength - 5) / 2);
  return `${chars.slice(0, half).join('')} ... ${chars.slice(chars.length - half).join('')}`;
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
  await sns.send(
    new PublishCommand({
      TopicArn: topicArn,
      Subject: subjectFor(summary, 'matches a YARA rule'),
      Message: JSON.stringify(summary, null, 4),
      MessageAttributes: {
        rules: {
          DataType: 'String.Array',
          StringValue: JSON.stringify(unique(matched.map((rule) => rule.RuleName))),
        },
        rule_files: {
          DataType: 'String.Array',
          StringValue: JSON.stringify(unique(matched.map((rule) => rule.RuleFile))),
        },
        sha256: { DataType: 'String', StringValue: summary.FileInfo.SHA256 },
      },
    }),
  );
}

/** Publishes a negative-match notification (a file that matched no rule). */
export async function publishNegativeAlert(
  sns: SNSClient,
  topicArn: string,
  summary: FileSummary,
): Promise<void> {
  await sns.send(
    new PublishCommand({
      TopicArn: topicArn,
      Subject: subjectFor(summary, 'did not match any YARA rules'),
      Message: JSON.stringify(summary, null, 4),
      MessageAttributes: {
        sha256: { DataType: 'String', StringValue: summary.FileInfo.SHA256 },
      },
    }),
  );
}
