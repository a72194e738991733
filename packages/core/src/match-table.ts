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
