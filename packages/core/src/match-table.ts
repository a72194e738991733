import type { CreateTableCommandInput } from '@aws-sdk/client-dynamodb';

/**
 * The match table as terraform/dynamo.tf defines it: one item per binary (SHA-256), holding the
 * (rule, fingerprint) pairs already alerted on. Its size does not depend on how many objects hold
 * the binary: the per-object record lives in the coverage ledger. The local stack and the tests
 * create it from here so all three agree.
 */
export function matchTableDefinition(tableName: string): CreateTableCommandInput {
  return {
    TableName: tableName,
    AttributeDefinitions: [{ AttributeName: 'SHA256', AttributeType: 'S' }],
    KeySchema: [{ AttributeName: 'SHA256', KeyType: 'HASH' }],
    BillingMode: 'PAY_PER_REQUEST',
  };
}

/**
 * The match-table item's attribute holding the binary's content signature (content-signature.ts):
 * written by a full analysis that scanned every byte inside, read by the delta re-scans' prefilter.
 * On the binary's item, not each object's ledger item: one per content, and the ledger items a
 * re-scan rewrites stay small (DynamoDB bills a write by the whole item's size).
 */
export const CONTENT_SIGNATURE_ATTRIBUTE = 'ContentTrigrams';

/** The verdict ledger's GSI of non-clean verdicts (sparse: clean items carry no `Notable`). */
export const NOTABLE_VERDICTS_INDEX = 'NotableVerdicts';
/** The verdict ledger's GSI by content hash (keys only: `results show` fetches the items). */
export const VERDICTS_BY_SHA256_INDEX = 'BySHA256';

/**
 * The verdict ledger as terraform/dynamo.tf defines it: one item per S3 object (Bucket + Key),
 * with a sparse index of the verdicts that need attention (matched, skipped, failed, partial) by
 * time, and an index by SHA-256. The local stack and the tests create it from here.
 */
export function verdictTableDefinition(tableName: string): CreateTableCommandInput {
  return {
    TableName: tableName,
    AttributeDefinitions: [
      { AttributeName: 'Bucket', AttributeType: 'S' },
      { AttributeName: 'Key', AttributeType: 'S' },
      { AttributeName: 'Notable', AttributeType: 'S' },
      { AttributeName: 'AnalyzedAt', AttributeType: 'S' },
      { AttributeName: 'SHA256', AttributeType: 'S' },
    ],
    KeySchema: [
      { AttributeName: 'Bucket', KeyType: 'HASH' },
      { AttributeName: 'Key', KeyType: 'RANGE' },
    ],
    GlobalSecondaryIndexes: [
      {
        IndexName: NOTABLE_VERDICTS_INDEX,
        KeySchema: [
          { AttributeName: 'Notable', KeyType: 'HASH' },
          { AttributeName: 'AnalyzedAt', KeyType: 'RANGE' },
        ],
        Projection: { ProjectionType: 'ALL' },
      },
      {
        IndexName: VERDICTS_BY_SHA256_INDEX,
        KeySchema: [{ AttributeName: 'SHA256', KeyType: 'HASH' }],
        Projection: { ProjectionType: 'KEYS_ONLY' },
      },
    ],
    BillingMode: 'PAY_PER_REQUEST',
  };
}

/** A matched rule as the match table records it. */
export interface MatchedRule {
  /** `namespace:rule` */
  id: string;
  /** The rule's content fingerprint in the rules release that matched. */
  fingerprint: string;
}

/** The stored form of a (rule, fingerprint) pair in the match table's `AlertedRules` set. */
export function alertedRule(rule: MatchedRule): string {
  return `${rule.id}@${rule.fingerprint}`;
}

/** The inverse of alertedRule (for `results show`): the fingerprint follows the last '@'. */
export function parseAlertedRule(pair: string): MatchedRule {
  const at = pair.lastIndexOf('@');
  return at === -1
    ? { id: pair, fingerprint: '' }
    : { id: pair.slice(0, at), fingerprint: pair.slice(at + 1) };
}
