# Alarms beyond the per-function Errors/Throttles alarms of modules/lambda. Each description says
# what to do when it fires.

resource "aws_cloudwatch_metric_alarm" "queue_age" {
  alarm_name          = "${local.names.queue}_age_of_oldest_message"
  alarm_description   = "The oldest message in ${local.names.queue} has waited more than ${var.queue_age_alarm_minutes} minutes: analysis is falling behind. Check the dispatcher and analyzer logs for errors or throttles; if they are just busy, raise lambda_analyze_concurrency_limit or lambda_dispatch_limit in terraform.tfvars and run manage.ts deploy."
  namespace           = "AWS/SQS"
  metric_name         = "ApproximateAgeOfOldestMessage"
  dimensions          = { QueueName = aws_sqs_queue.analyzer.name }
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.queue_age_alarm_minutes * 60
  treat_missing_data  = "notBreaching"
  alarm_actions       = [local.alarm_topic_arn]
  ok_actions          = [local.alarm_topic_arn]
}

resource "aws_cloudwatch_metric_alarm" "dead_letter_queue" {
  alarm_name          = "${local.names.dead_letter_queue}_not_empty"
  alarm_description   = "Messages reached ${local.names.dead_letter_queue}: their objects failed analysis ${var.max_receives} times. Find the object keys in the messages and the analyzer's error logs, fix the cause, then redrive the messages to ${local.names.queue} (SQS console: Start DLQ redrive) or purge them."
  namespace           = "AWS/SQS"
  metric_name         = "ApproximateNumberOfMessagesVisible"
  dimensions          = { QueueName = aws_sqs_queue.dead_letter.name }
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  treat_missing_data  = "notBreaching"
  alarm_actions       = [local.alarm_topic_arn]
  ok_actions          = [local.alarm_topic_arn]
}

resource "aws_cloudwatch_metric_alarm" "no_analyzed_binaries" {
  alarm_name          = "${var.name_prefix}_binaryalert_no_analyzed_binaries"
  alarm_description   = "No binary was analyzed in the last ${var.expected_analysis_frequency_minutes} minutes. If uploads to ${local.names.bucket} continued, check that the dispatcher schedule is enabled and the dispatcher and analyzer logs for errors; run manage.ts live-test to check the pipeline end to end. If uploads really stopped, raise expected_analysis_frequency_minutes."
  namespace           = local.metric_namespace
  metric_name         = "AnalyzedBinaries"
  dimensions          = { service = local.functions.analyzer }
  statistic           = "Sum"
  period              = var.expected_analysis_frequency_minutes * 60
  evaluation_periods  = 1
  comparison_operator = "LessThanOrEqualToThreshold"
  threshold           = 0
  treat_missing_data  = "breaching"
  alarm_actions       = [local.alarm_topic_arn]
  ok_actions          = [local.alarm_topic_arn]
}

resource "aws_cloudwatch_metric_alarm" "batch_enqueue_failures" {
  alarm_name          = "${var.name_prefix}_binaryalert_batch_enqueue_failures"
  alarm_description   = "The batcher could not enqueue some objects for retroactive analysis, so they were not re-scanned. Check the batcher logs for the SQS error (throttling, permissions, queue deleted) and run manage.ts retro-analyze again."
  namespace           = local.metric_namespace
  metric_name         = "BatchEnqueueFailures"
  dimensions          = { service = local.functions.batcher }
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  treat_missing_data  = "notBreaching"
  alarm_actions       = [local.alarm_topic_arn]
  ok_actions          = [local.alarm_topic_arn]
}

resource "aws_cloudwatch_metric_alarm" "yara_rules" {
  count               = var.yara_rules_min_count > 0 ? 1 : 0
  alarm_name          = "${var.name_prefix}_binaryalert_too_few_yara_rules"
  alarm_description   = "The analyzer loaded fewer than ${var.yara_rules_min_count} YARA rules: the deployed rules are missing or incomplete, so binaries are not really being checked. Run manage.ts compile-rules to see the rule count, fix the rules (or lower yara_rules_min_count) and run manage.ts deploy."
  namespace           = local.metric_namespace
  metric_name         = "YaraRules"
  dimensions          = { service = local.functions.analyzer }
  statistic           = "Minimum"
  period              = 300
  evaluation_periods  = 1
  comparison_operator = "LessThanThreshold"
  threshold           = var.yara_rules_min_count
  treat_missing_data  = "notBreaching"
  alarm_actions       = [local.alarm_topic_arn]
  ok_actions          = [local.alarm_topic_arn]
}

resource "aws_cloudwatch_metric_alarm" "dynamo_throttles" {
  for_each            = toset(["ReadThrottleEvents", "WriteThrottleEvents"])
  alarm_name          = "${local.names.table}_${lower(each.value)}"
  alarm_description   = "${local.names.table} throttled requests (${each.value}): analyzers retry and may fail. Switch dynamo_billing_mode to PAY_PER_REQUEST or raise dynamo_read_capacity / dynamo_write_capacity in terraform.tfvars, then run manage.ts deploy."
  namespace           = "AWS/DynamoDB"
  metric_name         = each.value
  dimensions          = { TableName = aws_dynamodb_table.matches.name }
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  treat_missing_data  = "notBreaching"
  alarm_actions       = [local.alarm_topic_arn]
  ok_actions          = [local.alarm_topic_arn]
}

resource "aws_cloudwatch_metric_alarm" "verdict_ledger_throttles" {
  for_each            = toset(["ReadThrottleEvents", "WriteThrottleEvents"])
  alarm_name          = "${local.names.verdict_table}_${lower(each.value)}"
  alarm_description   = "${local.names.verdict_table} throttled requests (${each.value}): analyzers retry and objects may end without a verdict. Switch dynamo_billing_mode to PAY_PER_REQUEST or raise dynamo_read_capacity / dynamo_write_capacity in terraform.tfvars, then run manage.ts deploy."
  namespace           = "AWS/DynamoDB"
  metric_name         = each.value
  dimensions          = { TableName = aws_dynamodb_table.verdicts.name }
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  treat_missing_data  = "notBreaching"
  alarm_actions       = [local.alarm_topic_arn]
  ok_actions          = [local.alarm_topic_arn]
}

# Objects that were not (fully) scanned are never silent: each kind has its own alarm.
resource "aws_cloudwatch_metric_alarm" "unscanned_binaries" {
  for_each = {
    SkippedBinaries = "were skipped (too large, deleted before analysis, or access denied)"
    PartialBinaries = "were only partly scanned (some content could not be unpacked or scanned)"
    AnalysisErrors  = "failed analysis (they are retried, then go to the dead-letter queue)"
  }
  alarm_name          = "${var.name_prefix}_binaryalert_${lower(each.key)}"
  alarm_description   = "Objects ${each.value}. Run manage.ts results --verdict skipped|partial|failed to list them with their reason; fix the cause (raise max_file_size_mb, grant access, check the analyzer logs) and run manage.ts retro-analyze."
  namespace           = local.metric_namespace
  metric_name         = each.key
  dimensions          = { service = local.functions.analyzer }
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  treat_missing_data  = "notBreaching"
  alarm_actions       = [local.alarm_topic_arn]
  ok_actions          = [local.alarm_topic_arn]
}

# analyzer_trigger = "dispatcher": Lambda dropped dispatched events that could not start within
# the maximum event age. Their messages come back after the visibility timeout and count a receive
# toward the dead-letter queue, so any drop means the dispatcher's slots overcommit the analyzer.
resource "aws_cloudwatch_metric_alarm" "analyzer_events_dropped" {
  count               = var.analyzer_trigger == "dispatcher" ? 1 : 0
  alarm_name          = "${local.names.analyzer_function}_async_events_dropped"
  alarm_description   = "Lambda dropped analyzer invocations from the dispatcher that waited more than ${local.analyzer_max_event_age_seconds} s to start (throttled): their messages are retried after the visibility timeout and may reach ${local.names.dead_letter_queue}. Check the analyzer's Throttles: other functions may use the account's unreserved concurrency; set lambda_analyze_reserved_concurrency (or lower lambda_analyze_concurrency_limit) in terraform.tfvars and run manage.ts deploy."
  namespace           = "AWS/Lambda"
  metric_name         = "AsyncEventsDropped"
  dimensions          = { FunctionName = module.analyzer.function_name }
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  treat_missing_data  = "notBreaching"
  alarm_actions       = [local.alarm_topic_arn]
  ok_actions          = [local.alarm_topic_arn]
}
