// Test-only helpers shared by the analyzer's tests (not exported from the package).
import { CreateTableCommand, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { matchTableDefinition, verdictTableDefinition } from '@binaryalert/core';

/** Creates the match table exactly as Terraform defines it. */
export async function createMatchTable(dynamo: DynamoDBClient, name: string): Promise<void> {
  await dynamo.send(new CreateTableCommand(matchTableDefinition(name)));
}

/** Creates the verdict ledger exactly as Terraform defines it. */
export async function createVerdictTable(dynamo: DynamoDBClient, name: string): Promise<void> {
  await dynamo.send(new CreateTableCommand(verdictTableDefinition(name)));
}
