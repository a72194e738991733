import type { CreateTableCommandInput } from '@aws-sdk/client-dynamodb';

/**
 * The match-history table as terraform/dynamo.tf defines it: one item per (binary, analyzer
 * version). The local stack and the tests create it from here so all three agree.
 */
export function matchTableDefinition(tableName: string): CreateTableCommandInput {
  return {
    TableName: tableName,
    AttributeDefinitions: [
      { AttributeName: 'SHA256', AttributeType: 'S' },
      { AttributeName: 'AnalyzerVersion', AttributeType: 'N' },
    ],
    KeySchema: [
      { AttributeName: 'SHA256', KeyType: 'HASH' },
      { AttributeName: 'AnalyzerVersion', KeyType: 'RANGE' },
    ],
    BillingMode: 'PAY_PER_REQUEST',
  };
}

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
