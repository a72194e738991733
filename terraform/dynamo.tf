# Match history: one item per binary (SHA256) with the (rule, fingerprint) pairs already alerted
# on; bounded whatever the number of objects holding the binary.

resource "aws_dynamodb_table" "matches" {
  name           = local.names.table
  billing_mode   = var.dynamo_billing_mode
  read_capacity  = var.dynamo_billing_mode == "PROVISIONED" ? var.dynamo_read_capacity : null
  write_capacity = var.dynamo_billing_mode == "PROVISIONED" ? var.dynamo_write_capacity : null
  hash_key       = "SHA256"

  attribute {
    name = "SHA256"
    type = "S"
  }

  server_side_encryption {
    enabled = true
  }

  point_in_time_recovery {
    enabled = true
  }
}

# The verdict ledger: one item per S3 object (Bucket + Key) with its newest verdict, written by the
# analyzer for every object it finishes (packages/core/src/match-table.ts defines the same table
# for the local stack and the tests; `manage.ts results` reads it). The alert decision keeps each
# object's alert state on its item too (MatchAlertSha256; packages/analyzer/src/match-history.ts).
resource "aws_dynamodb_table" "verdicts" {
  name           = local.names.verdict_table
  billing_mode   = var.dynamo_billing_mode
  read_capacity  = var.dynamo_billing_mode == "PROVISIONED" ? var.dynamo_read_capacity : null
  write_capacity = var.dynamo_billing_mode == "PROVISIONED" ? var.dynamo_write_capacity : null
  hash_key       = "Bucket"
  range_key      = "Key"

  attribute {
    name = "Bucket"
    type = "S"
  }

  attribute {
    name = "Key"
    type = "S"
  }

  attribute {
    name = "Notable"
    type = "S"
  }

  attribute {
    name = "AnalyzedAt"
    type = "S"
  }

  attribute {
    name = "SHA256"
    type = "S"
  }

  # Sparse: only matched, skipped, failed and partial verdicts carry Notable.
  global_secondary_index {
    name            = "NotableVerdicts"
    hash_key        = "Notable"
    range_key       = "AnalyzedAt"
    projection_type = "ALL"
    read_capacity   = var.dynamo_billing_mode == "PROVISIONED" ? var.dynamo_read_capacity : null
    write_capacity  = var.dynamo_billing_mode == "PROVISIONED" ? var.dynamo_write_capacity : null
  }

  global_secondary_index {
    name            = "BySHA256"
    hash_key        = "SHA256"
    projection_type = "KEYS_ONLY"
    read_capacity   = var.dynamo_billing_mode == "PROVISIONED" ? var.dynamo_read_capacity : null
    write_capacity  = var.dynamo_billing_mode == "PROVISIONED" ? var.dynamo_write_capacity : null
  }

  ttl {
    attribute_name = "ExpiresAt"
    enabled        = var.verdict_ttl_days > 0
  }

  server_side_encryption {
    enabled = true
  }

  point_in_time_recovery {
    enabled = true
  }
}

# The dispatcher's slots (packages/core dispatchSlotsTableDefinition): one item per analyzer
# invocation that may be in flight, so the dispatcher never starts more analyzers than
# lambda_analyze_concurrency_limit, across runs and crashes. A few tiny items: always on demand.
resource "aws_dynamodb_table" "dispatch_slots" {
  name         = local.names.dispatch_slots
  billing_mode = "PAY_PER_REQUEST"
  hash_key     = "Slot"

  attribute {
    name = "Slot"
    type = "N"
  }

  server_side_encryption {
    enabled = true
  }
}
