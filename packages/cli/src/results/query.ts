import {
  GetItemCommand,
  QueryCommand,
  ScanCommand,
  type AttributeValue,
  type DynamoDBClient,
} from '@aws-sdk/client-dynamodb';
import {
  batchGetItems,
  hasVerdict,
  NOTABLE_VERDICTS_INDEX,
  parseAlertedRule,
  VERDICTS_BY_SHA256_INDEX,
  verdictFromItem,
  type Verdict,
  type VerdictRecord,
} from '@binaryalert/core';

/** What `manage.ts results` lists. Every filter narrows; none lists every object. */
export interface ResultFilter {
  verdict?: Verdict;
  /** `namespace:rule`, or a bare rule name matching it in any namespace. */
  rule?: string;
  /** Key prefix (in `bucket`). */
  prefix?: string;
  /** Only verdicts from this time on (ISO 8601). */
  since?: string;
  /** Only this bucket (required with `prefix`). */
  bucket?: string;
  /** Stop after this many results. */
  limit?: number;
}

/** Whether a record names the rule: `namespace:rule` exactly, or a bare name in any namespace. */
export function matchesRule(record: Pick<VerdictRecord, 'rules'>, rule: string): boolean {
  return rule.includes(':')
    ? record.rules.includes(rule)
    : record.rules.some((id) => id.slice(id.lastIndexOf(':') + 1) === rule);
}

/** The filter applied to each record (also after the server-side filter, which may be looser). */
export function passesFilter(record: VerdictRecord, filter: ResultFilter): boolean {
  if (filter.verdict && record.verdict !== filter.verdict) return false;
  if (filter.rule && !matchesRule(record, filter.rule)) return false;
  if (filter.bucket && record.bucket !== filter.bucket) return false;
  if (filter.prefix !== undefined && !record.key.startsWith(filter.prefix)) return false;
  if (filter.since && record.analyzedAt < filter.since) return false;
  return true;
}

type Page = {
  Items?: Record<string, AttributeValue>[];
  LastEvaluatedKey?: Record<string, AttributeValue>;
};

/** Runs a Query or Scan page by page, yielding the records. */
async function* pages(
  send: (start?: Record<string, AttributeValue>) => Promise<Page>,
): AsyncGenerator<VerdictRecord> {
  let start: Record<string, AttributeValue> | undefined;
  do {
    const page = await send(start);
    for (const item of page.Items ?? []) if (hasVerdict(item)) yield verdictFromItem(item);
    start = page.LastEvaluatedKey;
  } while (start);
}

interface Expression {
  FilterExpression?: string;
  ExpressionAttributeNames: Record<string, string>;
  ExpressionAttributeValues: Record<string, AttributeValue>;
}

/**
 * The server-side filter for what the key condition (`keyed`) does not already select. The exact
 * filter runs again on each record: a bare rule name cannot be expressed here.
 */
function serverFilter(
  filter: ResultFilter,
  keyed: { bucket?: boolean; prefix?: boolean; since?: boolean; verdict?: boolean },
  key: { names: Record<string, string>; values: Record<string, AttributeValue> } = {
    names: {},
    values: {},
  },
): Expression {
  const names = { ...key.names };
  const values = { ...key.values };
  const conditions: string[] = [];
  const add = (name: string, attribute: string, value: AttributeValue, condition: string) => {
    names[name] = attribute;
    values[`:${name.slice(1)}`] = value;
    conditions.push(condition);
  };
  if (filter.bucket && !keyed.bucket) {
    add('#bucket', 'Bucket', { S: filter.bucket }, '#bucket = :bucket');
  }
  if (filter.prefix && !keyed.prefix) {
    add('#key', 'Key', { S: filter.prefix }, 'begins_with(#key, :key)');
  }
  if (filter.since && !keyed.since) add('#at', 'AnalyzedAt', { S: filter.since }, '#at >= :at');
  if (filter.rule?.includes(':')) {
    add('#rules', 'Rules', { S: filter.rule }, 'contains(#rules, :rules)');
  }
  if (filter.verdict && !keyed.verdict) {
    add('#verdict', 'Verdict', { S: filter.verdict }, '#verdict = :verdict');
  }
  return {
    ...(conditions.length > 0 ? { FilterExpression: conditions.join(' AND ') } : {}),
    ExpressionAttributeNames: names,
    ExpressionAttributeValues: values,
  };
}

/** The verdicts whose records the NotableVerdicts index holds and the filter may select. */
function notableVerdicts(filter: ResultFilter): Verdict[] {
  if (filter.verdict) return filter.verdict === 'clean' ? [] : [filter.verdict];
  // Only matched and partial objects have matched rules.
  return filter.rule ? ['matched', 'partial'] : [];
}

/**
 * The ledger records a filter selects, choosing the cheapest access: the NotableVerdicts index for
 * a verdict other than clean or a rule, the table's key for a bucket and prefix, and a Scan only
 * for what no key serves (every object, or every clean one).
 */
export async function* findVerdicts(
  dynamo: DynamoDBClient,
  table: string,
  filter: ResultFilter,
): AsyncGenerator<VerdictRecord> {
  let source: AsyncGenerator<VerdictRecord>;
  const notable = notableVerdicts(filter);
  if (notable.length > 0) {
    source = (async function* () {
      for (const verdict of notable) {
        const expression = serverFilter(
          filter,
          { since: true, verdict: true },
          {
            names: { '#notable': 'Notable', ...(filter.since ? { '#since': 'AnalyzedAt' } : {}) },
            values: {
              ':notable': { S: verdict },
              ...(filter.since ? { ':since': { S: filter.since } } : {}),
            },
          },
        );
        yield* pages((start) =>
          dynamo.send(
            new QueryCommand({
              TableName: table,
              IndexName: NOTABLE_VERDICTS_INDEX,
              KeyConditionExpression: filter.since
                ? '#notable = :notable AND #since >= :since'
                : '#notable = :notable',
              ...expression,
              ScanIndexForward: false, // newest first
              ...(start ? { ExclusiveStartKey: start } : {}),
            }),
          ),
        );
      }
    })();
  } else if (filter.bucket) {
    // One bucket (under a prefix): the table's own key.
    const expression = serverFilter(
      filter,
      { bucket: true, prefix: true },
      {
        names: { '#b': 'Bucket', ...(filter.prefix ? { '#k': 'Key' } : {}) },
        values: {
          ':b': { S: filter.bucket },
          ...(filter.prefix ? { ':p': { S: filter.prefix } } : {}),
        },
      },
    );
    source = pages((start) =>
      dynamo.send(
        new QueryCommand({
          TableName: table,
          KeyConditionExpression: filter.prefix ? '#b = :b AND begins_with(#k, :p)' : '#b = :b',
          ...expression,
          ...(start ? { ExclusiveStartKey: start } : {}),
        }),
      ),
    );
  } else {
    const expression = serverFilter(filter, {});
    const hasNames = Object.keys(expression.ExpressionAttributeNames).length > 0;
    source = pages((start) =>
      dynamo.send(
        new ScanCommand({
          TableName: table,
          ...(hasNames ? expression : {}),
          ...(start ? { ExclusiveStartKey: start } : {}),
        }),
      ),
    );
  }

  let count = 0;
  for await (const record of source) {
    if (!passesFilter(record, filter)) continue;
    yield record;
    count += 1;
    if (filter.limit !== undefined && count >= filter.limit) return;
  }
}

/** The ledger record of one object, or undefined. */
export async function getVerdict(
  dynamo: DynamoDBClient,
  table: string,
  bucket: string,
  key: string,
): Promise<VerdictRecord | undefined> {
  const { Item } = await dynamo.send(
    new GetItemCommand({ TableName: table, Key: { Bucket: { S: bucket }, Key: { S: key } } }),
  );
  return Item && hasVerdict(Item) ? verdictFromItem(Item) : undefined;
}

/** Every object whose content has this SHA-256: the BySHA256 index, then the items in batches. */
export async function verdictsBySha256(
  dynamo: DynamoDBClient,
  table: string,
  sha256: string,
): Promise<VerdictRecord[]> {
  const keys: Record<string, AttributeValue>[] = [];
  let start: Record<string, AttributeValue> | undefined;
  do {
    const page = await dynamo.send(
      new QueryCommand({
        TableName: table,
        IndexName: VERDICTS_BY_SHA256_INDEX,
        KeyConditionExpression: 'SHA256 = :sha',
        ExpressionAttributeValues: { ':sha': { S: sha256.toLowerCase() } },
        ...(start ? { ExclusiveStartKey: start } : {}),
      }),
    );
    for (const item of page.Items ?? []) keys.push({ Bucket: item.Bucket!, Key: item.Key! });
    start = page.LastEvaluatedKey;
  } while (start);

  const { items } = await batchGetItems(dynamo, table, keys, { maxAttempts: Infinity });
  const records = items.filter(hasVerdict).map((item) => verdictFromItem(item));
  // The index is eventually consistent: keep only items that still hold these bytes.
  return records
    .filter((record) => record.sha256 === sha256.toLowerCase())
    .sort((a, b) => a.bucket.localeCompare(b.bucket) || a.key.localeCompare(b.key));
}

/** The match table's record of one binary, as `results show` reports it. */
export interface MatchHistory {
  /** Every (rule, rule fingerprint) pair an alert was sent for, whichever object held the binary. */
  alertedRules: { id: string; fingerprint: string }[];
  firstMatchedAt?: string;
  lastAlertAt?: string;
}

/** The match table's item of one SHA-256 (one per binary), or undefined when it never alerted. */
export async function matchHistory(
  dynamo: DynamoDBClient,
  table: string,
  sha256: string,
): Promise<MatchHistory | undefined> {
  const { Item } = await dynamo.send(
    new GetItemCommand({ TableName: table, Key: { SHA256: { S: sha256.toLowerCase() } } }),
  );
  if (!Item) return undefined;
  return {
    alertedRules: [...(Item.AlertedRules?.SS ?? [])]
      .map(parseAlertedRule)
      .sort((a, b) => a.id.localeCompare(b.id) || a.fingerprint.localeCompare(b.fingerprint)),
    ...(Item.FirstMatchedAt?.S ? { firstMatchedAt: Item.FirstMatchedAt.S } : {}),
    ...(Item.LastAlertAt?.S ? { lastAlertAt: Item.LastAlertAt.S } : {}),
  };
}
