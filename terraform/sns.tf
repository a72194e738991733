# Alert topics. The match topics use the AWS-managed SNS key; the alarm topic stays unencrypted
# because CloudWatch alarms cannot publish to a topic encrypted with the AWS-managed key.

resource "aws_sns_topic" "yara_match_alerts" {
  name              = local.names.matches_topic
  kms_master_key_id = "alias/aws/sns"
}

resource "aws_sns_topic_subscription" "yara_match_alerts" {
  for_each  = toset(var.yara_match_alert_emails)
  topic_arn = aws_sns_topic.yara_match_alerts.arn
  protocol  = "email"
  endpoint  = each.value
}

resource "aws_sns_topic" "no_yara_match_alerts" {
  count             = var.enable_negative_match_alerts ? 1 : 0
  name              = local.names.negative_topic
  kms_master_key_id = "alias/aws/sns"
}

resource "aws_sns_topic_subscription" "no_yara_match_alerts" {
  for_each  = var.enable_negative_match_alerts ? toset(var.negative_match_alert_emails) : toset([])
  topic_arn = aws_sns_topic.no_yara_match_alerts[0].arn
  protocol  = "email"
  endpoint  = each.value
}

resource "aws_sns_topic" "metric_alarms" {
  count = var.metric_alarm_sns_topic_arn == "" ? 1 : 0
  name  = local.names.alarm_topic
}

resource "aws_sns_topic_subscription" "metric_alarms" {
  for_each  = var.metric_alarm_sns_topic_arn == "" ? toset(var.metric_alarm_emails) : toset([])
  topic_arn = aws_sns_topic.metric_alarms[0].arn
  protocol  = "email"
  endpoint  = each.value
}
