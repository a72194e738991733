# Every variable is set in ../terraform.tfvars, which documents each one; no defaults here so a
# setting missing from that file is an error rather than a silent fallback.

variable "aws_region" {
  description = "AWS region to deploy into."
  type        = string
}

variable "name_prefix" {
  description = "Prefix of every resource name: <name_prefix>_binaryalert_<part>."
  type        = string
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
}

variable "lambda_runtime" {
  description = "Lambda runtime of the three functions (a supported Node.js LTS, e.g. nodejs22.x)."
  type        = string
}

variable "lambda_analyze_memory_mb" {
  description = "Memory of the analyzer in MB."
  type        = number
}

variable "lambda_analyze_timeout_sec" {
  description = "Timeout of the analyzer in seconds."
  type        = number
}

variable "lambda_analyze_ephemeral_storage_mb" {
  description = "Size of the analyzer's /tmp in MB."
  type        = number
}

variable "analyzer_trigger" {
  description = "What invokes the analyzer: \"dispatcher\" (scheduled dispatcher Lambda) or \"sqs\" (SQS event source mapping)."
  type        = string

  validation {
    condition     = contains(["dispatcher", "sqs"], var.analyzer_trigger)
    error_message = "analyzer_trigger must be \"dispatcher\" or \"sqs\"."
  }
}

variable "lambda_analyze_concurrency_limit" {
  description = "Most analyzer invocations running at once (the dispatcher's slots or the event source mapping's maximum concurrency)."
  type        = number
}

variable "lambda_analyze_reserved_concurrency" {
  description = "Concurrency reserved for the analyzer (-1 = none; otherwise at least lambda_analyze_concurrency_limit)."
  type        = number
}

variable "lambda_dispatch_memory_mb" {
  description = "Memory of the dispatcher in MB."
  type        = number
}

variable "lambda_dispatch_timeout_sec" {
  description = "Timeout of the dispatcher in seconds."
  type        = number
}

variable "lambda_dispatch_frequency_minutes" {
  description = "Minutes between two scheduled dispatcher runs."
  type        = number
}

variable "lambda_dispatch_limit" {
  description = "Most analyzer invocations one dispatcher run starts."
  type        = number
}

variable "lambda_dispatch_wait_time_seconds" {
  description = "SQS long-poll wait of the dispatcher's receive calls in seconds."
  type        = number
}

variable "lambda_dispatch_receive_concurrency" {
  description = "Receive loops one dispatcher runs concurrently."
  type        = number
}

variable "lambda_batch_memory_mb" {
  description = "Memory of the batcher in MB."
  type        = number
}

variable "lambda_batch_timeout_sec" {
  description = "Timeout of the batcher in seconds."
  type        = number
}

variable "objects_per_retro_message" {
  description = "S3 objects per SQS message during retroactive analysis."
  type        = number
}

variable "lambda_log_retention_days" {
  description = "Days Lambda logs are kept."
  type        = number
}

variable "max_file_size_mb" {
  description = "Files larger than this (MB) are skipped by the analyzer."
  type        = number
}

variable "scan_timeout_seconds" {
  description = "YARA scan timeout per file in seconds."
  type        = number
}

variable "archive_passwords" {
  description = "Passwords tried in turn on encrypted zip and 7z archives, at any depth."
  type        = list(string)
}

variable "archive_max_depth" {
  description = "Container levels opened below an uploaded file."
  type        = number
}

variable "archive_max_members" {
  description = "Members scanned per file, all container levels together."
  type        = number
}

variable "archive_max_expanded_mb" {
  description = "MB extracted from containers per file, all levels together."
  type        = number
}

variable "archive_max_ratio" {
  description = "Expanded/compressed ratio past which a container is treated as a decompression bomb (0 = off)."
  type        = number
}

variable "enable_negative_match_alerts" {
  description = "Publish files that match no rule to a separate SNS topic."
  type        = bool
}

variable "external_s3_bucket_resources" {
  description = "Extra S3 object ARNs the analyzer may read (direct invocations)."
  type        = list(string)
}

variable "external_kms_key_resources" {
  description = "KMS key ARNs the analyzer may decrypt with, through S3 only (SSE-KMS objects in external buckets)."
  type        = list(string)
}

variable "sqs_retention_minutes" {
  description = "Retention of messages in the analyzer queue in minutes."
  type        = number
}

variable "max_receives" {
  description = "Receives of a message before it moves to the dead-letter queue."
  type        = number
}

variable "s3_log_bucket" {
  description = "Existing bucket for S3 access logs; empty = create one."
  type        = string
}

variable "s3_log_prefix" {
  description = "Key prefix of the S3 access logs."
  type        = string
}

variable "s3_log_expiration_days" {
  description = "Days access logs are kept in a created log bucket."
  type        = number
}

variable "s3_noncurrent_version_expiration_days" {
  description = "Days a noncurrent version of a binary is kept."
  type        = number
}

variable "force_destroy" {
  description = "Allow destroying buckets that still hold objects."
  type        = bool
}

variable "dynamo_billing_mode" {
  description = "Capacity mode of the match table: PAY_PER_REQUEST or PROVISIONED."
  type        = string

  validation {
    condition     = contains(["PAY_PER_REQUEST", "PROVISIONED"], var.dynamo_billing_mode)
    error_message = "dynamo_billing_mode must be PAY_PER_REQUEST or PROVISIONED."
  }
}

variable "dynamo_read_capacity" {
  description = "Read capacity units of the match table (PROVISIONED only)."
  type        = number
}

variable "dynamo_write_capacity" {
  description = "Write capacity units of the match table (PROVISIONED only)."
  type        = number
}

variable "verdict_ttl_days" {
  description = "Days a verdict stays in the verdict ledger after its analysis (0 = forever)."
  type        = number

  validation {
    condition     = var.verdict_ttl_days >= 0 && floor(var.verdict_ttl_days) == var.verdict_ttl_days
    error_message = "verdict_ttl_days must be 0 or a positive whole number of days."
  }
}

variable "yara_match_alert_emails" {
  description = "Email addresses subscribed to YARA match alerts."
  type        = list(string)
}

variable "negative_match_alert_emails" {
  description = "Email addresses subscribed to negative-match alerts."
  type        = list(string)
}

variable "metric_alarm_sns_topic_arn" {
  description = "Existing SNS topic for CloudWatch alarms; empty = create one."
  type        = string
}

variable "metric_alarm_emails" {
  description = "Email addresses subscribed to a created metric alarm topic."
  type        = list(string)
}

variable "expected_analysis_frequency_minutes" {
  description = "Alarm when nothing was analyzed for this many minutes."
  type        = number
}

variable "queue_age_alarm_minutes" {
  description = "Alarm when the oldest queued message is older than this many minutes."
  type        = number
}

variable "content_prefilter" {
  description = "Record content signatures in full analyses so rules-release re-scans skip objects the new rules cannot match."
  type        = bool
}

variable "rules_refresh_seconds" {
  description = "How often (at most) each analyzer checks the rules bucket for a newer rules release."
  type        = number
}

variable "yara_rules_min_count" {
  description = "Alarm when the analyzer reports fewer YARA rules than this (0 = no alarm)."
  type        = number
}
