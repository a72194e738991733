output "aws_region" {
  description = "Region BinaryAlert is deployed in."
  value       = var.aws_region
}

output "binaries_bucket" {
  description = "Upload files here to have them analyzed."
  value       = aws_s3_bucket.binaries.id
}

output "access_log_bucket" {
  description = "Bucket receiving the binaries bucket's access logs."
  value       = local.names.log_bucket
}

output "analyzer_queue_url" {
  description = "URL of the analyzer queue (S3 events and retroactive batches)."
  value       = aws_sqs_queue.analyzer.url
}

output "dead_letter_queue_url" {
  description = "URL of the dead-letter queue for messages that failed max_receives times."
  value       = aws_sqs_queue.dead_letter.url
}

output "matches_table" {
  description = "DynamoDB table of YARA match history."
  value       = aws_dynamodb_table.matches.name
}

output "verdicts_table" {
  description = "DynamoDB verdict ledger: the newest verdict of every analyzed S3 object (manage.ts results reads it)."
  value       = aws_dynamodb_table.verdicts.name
}

output "yara_match_alerts_topic_arn" {
  description = "SNS topic receiving YARA match alerts."
  value       = aws_sns_topic.yara_match_alerts.arn
}

output "no_yara_match_alerts_topic_arn" {
  description = "SNS topic receiving negative-match alerts (empty when disabled)."
  value       = local.negative_topic_arn
}

output "metric_alarm_topic_arn" {
  description = "SNS topic the CloudWatch alarms notify."
  value       = local.alarm_topic_arn
}

output "analyzer_function_name" {
  description = "Name of the analyzer Lambda function."
  value       = module.analyzer.function_name
}

output "analyzer_alias_arn" {
  description = "ARN of the analyzer's Production alias."
  value       = module.analyzer.alias_arn
}

output "dispatcher_function_name" {
  description = "Name of the dispatcher Lambda function."
  value       = module.dispatcher.function_name
}

output "batcher_function_name" {
  description = "Name of the batcher Lambda function (invoked by manage.ts retro-analyze)."
  value       = module.batcher.function_name
}

output "batcher_alias_arn" {
  description = "ARN of the batcher's Production alias."
  value       = module.batcher.alias_arn
}

output "dashboard_url" {
  description = "CloudWatch dashboard of every BinaryAlert metric."
  value       = "https://${var.aws_region}.console.aws.amazon.com/cloudwatch/home?region=${var.aws_region}#dashboards:name=${aws_cloudwatch_dashboard.binaryalert.dashboard_name}"
}

output "rules_bucket" {
  description = "Rules releases (manage.ts deploy-rules uploads here; the analyzer reads the newest)."
  value       = aws_s3_bucket.rules.id
}
