data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition

  # The same names as resourceNames() in packages/deployment/src/names.ts (checked by terraform.test.ts).
  names = {
    bucket              = "${replace(var.name_prefix, "_", ".")}.binaryalert-binaries.${var.aws_region}"
    log_bucket          = var.s3_log_bucket == "" ? "${replace(var.name_prefix, "_", ".")}.binaryalert-s3-access-logs.${var.aws_region}" : var.s3_log_bucket
    queue               = "${var.name_prefix}_binaryalert_analyzer_queue"
    dead_letter_queue   = "${var.name_prefix}_binaryalert_analyzer_dead_letter_queue"
    table               = "${var.name_prefix}_binaryalert_matches"
    verdict_table       = "${var.name_prefix}_binaryalert_verdicts"
    rules_bucket        = "${replace(var.name_prefix, "_", ".")}.binaryalert-rules.${var.aws_region}"
    dispatch_slots      = "${var.name_prefix}_binaryalert_dispatch_slots"
    matches_topic       = "${var.name_prefix}_binaryalert_yara_match_alerts"
    negative_topic      = "${var.name_prefix}_binaryalert_no_yara_match_alerts"
    alarm_topic         = "${var.name_prefix}_binaryalert_metric_alarms"
    analyzer_function   = "${var.name_prefix}_binaryalert_analyzer"
    dispatcher_function = "${var.name_prefix}_binaryalert_dispatcher"
    batcher_function    = "${var.name_prefix}_binaryalert_batcher"
    dispatch_rule       = "${var.name_prefix}_binaryalert_dispatch_schedule"
    dashboard           = "${var.name_prefix}_binaryalert"
  }

  # Zips written by `manage.ts build` (packages/cli/src/commands/build.ts).
  lambda_zip = {
    analyzer   = "${path.module}/../dist/lambda/analyzer.zip"
    dispatcher = "${path.module}/../dist/lambda/dispatcher.zip"
    batcher    = "${path.module}/../dist/lambda/batcher.zip"
  }

  alarm_topic_arn    = var.metric_alarm_sns_topic_arn == "" ? aws_sns_topic.metric_alarms[0].arn : var.metric_alarm_sns_topic_arn
  negative_topic_arn = var.enable_negative_match_alerts ? aws_sns_topic.no_yara_match_alerts[0].arn : ""

  # Custom metrics: Powertools Metrics in each function's log (CloudWatch embedded metric format;
  # packages/core/src/metrics.ts lists them with the function that emits each). Every metric has
  # one dimension, service = the emitting function's name (Lambda's AWS_LAMBDA_FUNCTION_NAME), so
  # alarms and widgets select it with { service = local.functions.<emitter> } and one deployment
  # never counts another's metrics. terraform.test.ts checks both sides.
  metric_namespace = "BinaryAlert"
  functions = {
    analyzer   = module.analyzer.function_name
    dispatcher = module.dispatcher.function_name
    batcher    = module.batcher.function_name
  }

  # The queueing invariant (docs/contracts.md; terraform.test.ts checks these relations, and
  # packages/core/src/config.ts computes the same numbers for the local stack):
  # - Lambda drops an asynchronous analyzer event that has not started within this age (60 s is
  #   the least Lambda allows) and never retries one (maximum_retry_attempts = 0), so a received
  #   message is in an analyzer's hands for at most this age plus the analyzer timeout.
  analyzer_max_event_age_seconds = 60
  # - No message becomes visible again while an analyzer may still hold it. With the event source
  #   mapping, AWS asks for six analyzer timeouts so it can retry a throttled batch in time.
  queue_visibility_timeout_seconds = var.analyzer_trigger == "sqs" ? 6 * var.lambda_analyze_timeout_sec : local.analyzer_max_event_age_seconds + var.lambda_analyze_timeout_sec + 30
  # - A dispatcher slot is held from before the receive (up to one long poll) until the analyzer
  #   that got it ends; a slot whose analyzer never releases it frees itself after this.
  dispatch_slot_lease_seconds = var.lambda_dispatch_wait_time_seconds + local.analyzer_max_event_age_seconds + var.lambda_analyze_timeout_sec + 30
}
