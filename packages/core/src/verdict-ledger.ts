import type { AttributeValue } from '@aws-sdk/client-dynamodb';
import { elideMiddle } from './text';

/**
 * What BinaryAlert concluded about one S3 object. `partial`: some of its content (e.g. an archive
 * member) could not be scanned; the rest was, and `rules` lists what matched there.
 */
export const VERDICTS = ['matched', 'clean', 'skipped', 'failed', 'partial'] as const;
export type Verdict = (typeof VERDICTS)[number];

/**
 * Why an object was skipped, failed or only partly scanned. Open-ended: other packages (archive
 * extraction) add their own reasons.
 */
export type VerdictReason =
  | 'too-large'
  | 'missing'
  | 'access-denied'
  | 'scan-timeout'
  | 'scan-error'
  | 'download-error'
  | 'bookkeeping-error'
  | 'internal-error'
  | (string & {});

/** A matched rule as the ledger keeps it: enough for `results show` without the rules. */
export interface LedgerRuleMatch {
  /** `namespace:rule` */
  id: string;
  tags: string[];
  meta: Record<string, string | number | boolean>;
  /** Names of the strings that matched (`$a`, ...), never their content. */
  strings: string[];
  /** Set when the rule matched inside a container: `key!dir/member` and that member's SHA-256. */
  memberPath?: string;
  memberSha256?: string;
}

/** One item of the verdict ledger: the newest verdict of one S3 object. */
export interface VerdictRecord {
  bucket: string;
  key: string;
  verdict: Verdict;
  reason?: VerdictReason;
  /** When the analyzer began reading the object (ISO 8601, ms): the ledger's order of writes. */
  analyzedAt: string;
  /** The analyzer Lambda version (0 for $LATEST / unversioned). */
  analyzerVersion: number;
  /** The rules fingerprint, when the analyzer knows one. */
  rulesVersion?: string;
  sha256?: string;
  md5?: string;
  size?: number;
  etag?: string;
  versionId?: string;
  /** The object's Last-Modified as S3 reported it (ISO 8601). */
  lastModified?: string;
  /** `namespace:rule` of every matched rule. */
  rules: string[];
  matches: LedgerRuleMatch[];
  /** Whether this analysis published an alert (matched objects only). */
  alerted?: boolean;
  /** Why it did or did not alert (the match history's decision). */
  alertReason?: string;
  /** Epoch seconds after which DynamoDB's TTL may delete the item (when a TTL is set). */
  expiresAt?: number;
}

// Bounds that keep an item far below DynamoDB's 400 KB: all rule ids are kept, details of at most
// this many rules (a file matching more is listed with ids only past the limit).
const MAX_DETAILED_MATCHES = 100;
const MAX_STRING_NAMES = 50;
const MAX_META_VALUE_CHARS = 1024;
/**
 * Member paths (`key!dir/a.zip!x.exe`) are kept to this many characters in the ledger and the match
 * table: a hostile archive nests members with names of 1,000 bytes, and 100 such paths must
 * not pass DynamoDB's 400 KB per item (4 bytes a character at most).
 */
export const MAX_STORED_MEMBER_PATH_CHARS = 512;

/** A member path as the tables keep it: its start and its end (the member's own name) at most. */
export function storedMemberPath(memberPath: string): string {
  return elideMiddle(memberPath, MAX_STORED_MEMBER_PATH_CHARS);
}

function metaValue(value: string | number | boolean): AttributeValue {
  if (typeof value === 'number') return { N: String(value) };
  if (typeof value === 'boolean') return { BOOL: value };
  return { S: value.slice(0, MAX_META_VALUE_CHARS) };
}

function fromMetaValue(value: AttributeValue): string | number | boolean {
  if (value.N !== undefined) return Number(value.N);
  if (value.BOOL !== undefined) return value.BOOL;
  return value.S ?? '';
}

const str = (value: string | undefined): AttributeValue | undefined =>
  value === undefined || value === '' ? undefined : { S: value };
const num = (value: number | undefined): AttributeValue | undefined =>
  value === undefined ? undefined : { N: String(value) };

/**
 * Every attribute a verdict owns, undefined where this record has no value (a write removes it).
 * Other attributes of the item (the alert decision's per-object state) are not the verdict's.
 */
export function verdictAttributes(
  record: VerdictRecord,
): Record<string, AttributeValue | undefined> {
  const matches = record.matches.slice(0, MAX_DETAILED_MATCHES).map((match): AttributeValue => ({
    M: {
      Rule: { S: match.id },
      Tags: { L: match.tags.map((tag) => ({ S: tag })) },
      Meta: {
        M: Object.fromEntries(
          Object.entries(match.meta).map(([name, value]) => [name, metaValue(value)]),
        ),
      },
      Strings: { L: match.strings.slice(0, MAX_STRING_NAMES).map((name) => ({ S: name })) },
      ...(match.memberPath ? { MemberPath: { S: storedMemberPath(match.memberPath) } } : {}),
      ...(match.memberSha256 ? { MemberSHA256: { S: match.memberSha256 } } : {}),
    },
  }));
  return {
    Bucket: { S: record.bucket },
    Key: { S: record.key },
    Verdict: { S: record.verdict },
    // Only verdicts that need attention enter the NotableVerdicts index.
    Notable: record.verdict === 'clean' ? undefined : { S: record.verdict },
    Reason: str(record.reason),
    AnalyzedAt: { S: record.analyzedAt },
    AnalyzerVersion: { N: String(record.analyzerVersion) },
    RulesVersion: str(record.rulesVersion),
    SHA256: str(record.sha256),
    MD5: str(record.md5),
    Size: num(record.size),
    ETag: str(record.etag),
    VersionId: str(record.versionId),
    LastModified: str(record.lastModified),
    Rules: record.rules.length > 0 ? { SS: [...new Set(record.rules)] } : undefined,
    Matches: matches.length > 0 ? { L: matches } : undefined,
    Alerted: record.alerted === undefined ? undefined : { BOOL: record.alerted },
    AlertReason: str(record.alertReason),
    ExpiresAt: num(record.expiresAt),
  };
}

/** The DynamoDB item of a record (PascalCase attributes, as in the match table). */
export function verdictToItem(record: VerdictRecord): Record<string, AttributeValue> {
  const attributes = verdictAttributes(record);
  return Object.fromEntries(
    Object.entries(attributes).filter((entry): entry is [string, AttributeValue] => !!entry[1]),
  );
}

function isVerdict(value: string | undefined): value is Verdict {
  return (VERDICTS as readonly (string | undefined)[]).includes(value);
}

/**
 * Whether a ledger item holds a verdict: an item may so far hold only the alert decision's
 * per-object state (the verdict is written after the decision).
 */
export function hasVerdict(item: Record<string, AttributeValue>): boolean {
  return item.Verdict?.S !== undefined;
}

/** The record of a DynamoDB item; a verdict it does not know reads as `failed` with the reason. */
export function verdictFromItem(item: Record<string, AttributeValue>): VerdictRecord {
  const stored = item.Verdict?.S;
  const optional = <T>(name: string, value: T | undefined) =>
    value === undefined ? {} : { [name]: value };
  const text = (name: string) => item[name]?.S;
  const number = (name: string) => (item[name]?.N === undefined ? undefined : Number(item[name].N));
  const rules = [...(item.Rules?.SS ?? [])].sort();
  const matches = (item.Matches?.L ?? []).map((entry): LedgerRuleMatch => {
    const match = entry.M ?? {};
    return {
      id: match.Rule?.S ?? '',
      tags: (match.Tags?.L ?? []).map((tag) => tag.S ?? ''),
      meta: Object.fromEntries(
        Object.entries(match.Meta?.M ?? {}).map(([name, value]) => [name, fromMetaValue(value)]),
      ),
      strings: (match.Strings?.L ?? []).map((name) => name.S ?? ''),
      ...optional('memberPath', match.MemberPath?.S),
      ...optional('memberSha256', match.MemberSHA256?.S),
    };
  });
  return {
    bucket: text('Bucket') ?? '',
    key: text('Key') ?? '',
    verdict: isVerdict(stored) ? stored : 'failed',
    ...optional('reason', isVerdict(stored) ? text('Reason') : `unknown verdict ${stored ?? ''}`),
    analyzedAt: text('AnalyzedAt') ?? '',
    analyzerVersion: number('AnalyzerVersion') ?? 0,
    ...optional('rulesVersion', text('RulesVersion')),
    ...optional('sha256', text('SHA256')),
    ...optional('md5', text('MD5')),
    ...optional('size', number('Size')),
    ...optional('etag', text('ETag')),
    ...optional('versionId', text('VersionId')),
    ...optional('lastModified', text('LastModified')),
    rules,
    matches,
    ...optional('alerted', item.Alerted?.BOOL),
    ...optional('alertReason', text('AlertReason')),
    ...optional('expiresAt', number('ExpiresAt')),
  };
}
