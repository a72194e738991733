# Match history: one item per (SHA256, analyzer Lambda version).

resource "aws_dynamodb_table" "matches" {
  name           = local.names.table
  billing_mode   = var.dynamo_billing_mode
  read_capacity  = var.dynamo_billing_mode == "PROVISIONED" ? var.dynamo_read_capacity : null
  write_capacity = var.dynamo_billing_mode == "PROVISIONED" ? var.dynamo_write_capacity : null
  hash_key       = "SHA256"
  range_key      = "AnalyzerVersion"

  attribute {
    name = "SHA256"
    type = "S"
  }

  attribute {
    name = "AnalyzerVersion"
    type = "N"
  }

  server_side_encryption {
    enabled = true
  }

  point_in_time_recovery {
    enabled = true
  }
}
