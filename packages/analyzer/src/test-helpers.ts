// Test-only helpers shared by the analyzer's tests (not exported from the package).
import { CreateTableCommand, type DynamoDBClient } from '@aws-sdk/client-dynamodb';

/** Creates the match table exactly as Terraform defines it. */
export async function createMatchTable(dynamo: DynamoDBClient, name: string): Promise<void> {
  await dynamo.send(
    new CreateTableCommand({
      TableName: name,
      AttributeDefinitions: [
        { AttributeName: 'SHA256', AttributeType: 'S' },
        { AttributeName: 'AnalyzerVersion', AttributeType: 'N' },
      ],
      KeySchema: [
        { AttributeName: 'SHA256', KeyType: 'HASH' },
        { AttributeName: 'AnalyzerVersion', KeyType: 'RANGE' },
      ],
      BillingMode: 'PAY_PER_REQUEST',
    }),
  );
}
