// Test-only helpers shared by the analyzer's tests (not exported from the package).
import { CreateTableCommand, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { matchTableDefinition, verdictTableDefinition } from '@binaryalert/core';
import { uniqueName } from '@binaryalert/testing';
import type { MatchTables } from './match-history';

/** Creates the match table exactly as Terraform defines it. */
export async function createMatchTable(dynamo: DynamoDBClient, name: string): Promise<void> {
  await dynamo.send(new CreateTableCommand(matchTableDefinition(name)));
}

/** Creates the verdict ledger exactly as Terraform defines it. */
export async function createVerdictTable(dynamo: DynamoDBClient, name: string): Promise<void> {
  await dynamo.send(new CreateTableCommand(verdictTableDefinition(name)));
}

/** Creates a fresh match table and verdict ledger (the two records of the alert decision). */
export async function createMatchTables(dynamo: DynamoDBClient): Promise<MatchTables> {
  const tables = { matches: uniqueName('matches'), ledger: uniqueName('verdicts') };
  await createMatchTable(dynamo, tables.matches);
  await createVerdictTable(dynamo, tables.ledger);
  return tables;
}
