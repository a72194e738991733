# The three workers, one modules/lambda instance each, as the function manifest
# (packages/deployment/src/functions.ts) describes them: description, settings, environment and
# IAM actions are checked against it by terraform.test.ts.

module "analyzer" {
  source = "./modules/lambda"

  function_name                  = local.names.analyzer_function
  description                    = "BinaryAlert: downloads, hashes and YARA-scans S3 objects"
  filename                       = local.lambda_zip.analyzer
  source_code_hash               = filebase64sha256(local.lambda_zip.analyzer)
  handler                        = "index.handler"
  runtime                        = var.lambda_runtime
  memory_size_mb                 = var.lambda_analyze_memory_mb
  timeout_sec                    = var.lambda_analyze_timeout_sec
  ephemeral_storage_mb           = var.lambda_analyze_ephemeral_storage_mb
  reserved_concurrent_executions = var.lambda_analyze_reserved_concurrency
  log_retention_days             = var.lambda_log_retention_days
  policy_json                    = data.aws_iam_policy_document.analyzer.json
  alarm_actions                  = [local.alarm_topic_arn]

  # The queueing invariant (locals.tf): an event that cannot start in time is dropped and its
  # message returns to the queue; a failed run is never retried behind the queue's back.
  async_max_retry_attempts    = 0
  async_max_event_age_seconds = local.analyzer_max_event_age_seconds

  environment_variables = {
    YARA_MATCHES_DYNAMO_TABLE_NAME = aws_dynamodb_table.matches.name
    VERDICTS_DYNAMO_TABLE_NAME     = aws_dynamodb_table.verdicts.name
    VERDICT_TTL_DAYS               = tostring(var.verdict_ttl_days)
    RULES_BUCKET_NAME              = aws_s3_bucket.rules.id
    RULES_REFRESH_SECONDS          = tostring(var.rules_refresh_seconds)
    YARA_ALERTS_SNS_TOPIC_ARN      = aws_sns_topic.yara_match_alerts.arn
    NEGATIVE_ALERTS_SNS_TOPIC_ARN  = local.negative_topic_arn
    SQS_QUEUE_URL                  = aws_sqs_queue.analyzer.url
    MAX_FILE_SIZE_MB               = tostring(var.max_file_size_mb)
    SCAN_TIMEOUT_SECONDS           = tostring(var.scan_timeout_seconds)
    ARCHIVE_PASSWORDS              = jsonencode(var.archive_passwords)
    ARCHIVE_MAX_DEPTH              = tostring(var.archive_max_depth)
    ARCHIVE_MAX_MEMBERS            = tostring(var.archive_max_members)
    ARCHIVE_MAX_EXPANDED_MB        = tostring(var.archive_max_expanded_mb)
    ARCHIVE_MAX_RATIO              = tostring(var.archive_max_ratio)
    CONTENT_PREFILTER              = tostring(var.content_prefilter)
    DISPATCH_SLOTS_TABLE           = aws_dynamodb_table.dispatch_slots.name
  }
}

module "dispatcher" {
  source = "./modules/lambda"

  function_name      = local.names.dispatcher_function
  description        = "BinaryAlert: polls the analyzer queue and invokes analyzers"
  filename           = local.lambda_zip.dispatcher
  source_code_hash   = filebase64sha256(local.lambda_zip.dispatcher)
  handler            = "index.handler"
  runtime            = var.lambda_runtime
  memory_size_mb     = var.lambda_dispatch_memory_mb
  timeout_sec        = var.lambda_dispatch_timeout_sec
  log_retention_days = var.lambda_log_retention_days
  policy_json        = data.aws_iam_policy_document.dispatcher.json
  alarm_actions      = [local.alarm_topic_arn]

  # A missed or failed run is simply replaced by the next scheduled one.
  async_max_retry_attempts    = 0
  async_max_event_age_seconds = 60

  environment_variables = {
    SQS_QUEUE_URL               = aws_sqs_queue.analyzer.url
    ANALYZER_FUNCTION_NAME      = module.analyzer.function_name
    ANALYZER_FUNCTION_QUALIFIER = module.analyzer.alias_name
    MAX_INVOCATIONS             = tostring(var.lambda_dispatch_limit)
    SQS_WAIT_TIME_SECONDS       = tostring(var.lambda_dispatch_wait_time_seconds)
    RECEIVE_CONCURRENCY         = tostring(var.lambda_dispatch_receive_concurrency)
    DISPATCH_SLOTS_TABLE        = aws_dynamodb_table.dispatch_slots.name
    ANALYZER_CONCURRENCY_LIMIT  = tostring(var.lambda_analyze_concurrency_limit)
    DISPATCH_SLOT_LEASE_SECONDS = tostring(local.dispatch_slot_lease_seconds)
  }
}

module "batcher" {
  source = "./modules/lambda"

  function_name      = local.names.batcher_function
  description        = "BinaryAlert: enqueues every object of the bucket for retroactive analysis"
  filename           = local.lambda_zip.batcher
  source_code_hash   = filebase64sha256(local.lambda_zip.batcher)
  handler            = "index.handler"
  runtime            = var.lambda_runtime
  memory_size_mb     = var.lambda_batch_memory_mb
  timeout_sec        = var.lambda_batch_timeout_sec
  log_retention_days = var.lambda_log_retention_days
  policy_json        = data.aws_iam_policy_document.batcher.json
  alarm_actions      = [local.alarm_topic_arn]

  # It runs rarely and its failure stops a retroactive scan: alarm on any failed run.
  errors_alarm_percent = 0
  errors_alarm_periods = 1

  environment_variables = {
    BATCH_LAMBDA_NAME      = local.names.batcher_function
    BATCH_LAMBDA_QUALIFIER = "Production"
    OBJECTS_PER_MESSAGE    = tostring(var.objects_per_retro_message)
    S3_BUCKET_NAME         = aws_s3_bucket.binaries.id
    SQS_QUEUE_URL          = aws_sqs_queue.analyzer.url
  }
}
