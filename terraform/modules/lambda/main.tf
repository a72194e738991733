# One BinaryAlert worker: function, Production alias, log group, alarms and role.

data "aws_iam_policy_document" "assume_role" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "this" {
  name               = "${var.function_name}_role"
  assume_role_policy = data.aws_iam_policy_document.assume_role.json
  tags               = var.tags
}

# Created here (not by Lambda on first run) so its retention is managed and the role needs no
# logs:CreateLogGroup.
resource "aws_cloudwatch_log_group" "this" {
  name              = "/aws/lambda/${var.function_name}"
  retention_in_days = var.log_retention_days
  tags              = var.tags
}

data "aws_iam_policy_document" "logging" {
  statement {
    sid       = "WriteOwnLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.this.arn}:*"]
  }
}

resource "aws_iam_role_policy" "logging" {
  name   = "logging"
  role   = aws_iam_role.this.id
  policy = data.aws_iam_policy_document.logging.json
}

resource "aws_iam_role_policy" "function" {
  name   = "function"
  role   = aws_iam_role.this.id
  policy = var.policy_json
}

resource "aws_lambda_function" "this" {
  function_name                  = var.function_name
  description                    = var.description
  filename                       = var.filename
  source_code_hash               = var.source_code_hash
  handler                        = var.handler
  runtime                        = var.runtime
  architectures                  = ["x86_64"]
  memory_size                    = var.memory_size_mb
  timeout                        = var.timeout_sec
  reserved_concurrent_executions = var.reserved_concurrent_executions
  role                           = aws_iam_role.this.arn
  publish                        = true

  ephemeral_storage {
    size = var.ephemeral_storage_mb
  }

  environment {
    variables = var.environment_variables
  }

  tags = var.tags

  depends_on = [
    aws_cloudwatch_log_group.this,
    aws_iam_role_policy.logging,
    aws_iam_role_policy.function,
  ]
}

# Callers invoke the alias, which always points at the newest published version.
resource "aws_lambda_alias" "production" {
  name             = "Production"
  description      = "Production version of ${var.function_name}"
  function_name    = aws_lambda_function.this.function_name
  function_version = aws_lambda_function.this.version
}

# How Lambda treats asynchronous invocations of the alias (the schedule, the dispatcher, the
# batcher continuing itself): how often a failed one is retried and how long an event may wait.
resource "aws_lambda_function_event_invoke_config" "this" {
  function_name                = aws_lambda_function.this.function_name
  qualifier                    = aws_lambda_alias.production.name
  maximum_retry_attempts       = var.async_max_retry_attempts
  maximum_event_age_in_seconds = var.async_max_event_age_seconds
}

# Fires when failed invocations are a share of all invocations in several consecutive periods,
# so one bad file or one cold-start hiccup does not page anyone.
resource "aws_cloudwatch_metric_alarm" "errors" {
  alarm_name          = "${var.function_name}_errors"
  alarm_description   = "${var.function_name} failed more than ${var.errors_alarm_percent}% of its invocations in ${var.errors_alarm_periods} consecutive 5-minute period(s). Look for level \"error\" lines in the log group ${aws_cloudwatch_log_group.this.name} around the alarm time; fix the cause (bad input, permissions, timeouts) and redeploy."
  evaluation_periods  = var.errors_alarm_periods
  datapoints_to_alarm = var.errors_alarm_periods
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.errors_alarm_percent
  treat_missing_data  = "notBreaching"
  alarm_actions       = var.alarm_actions
  ok_actions          = var.alarm_actions
  tags                = var.tags

  metric_query {
    id          = "error_rate"
    expression  = "IF(invocations > 0, 100 * errors / invocations, 0)"
    label       = "Failed invocations (%)"
    return_data = true
  }

  metric_query {
    id = "errors"
    metric {
      namespace   = "AWS/Lambda"
      metric_name = "Errors"
      dimensions  = { FunctionName = aws_lambda_function.this.function_name }
      stat        = "Sum"
      period      = 300
    }
  }

  metric_query {
    id = "invocations"
    metric {
      namespace   = "AWS/Lambda"
      metric_name = "Invocations"
      dimensions  = { FunctionName = aws_lambda_function.this.function_name }
      stat        = "Sum"
      period      = 300
    }
  }
}

# Fires only on sustained throttling: a short burst is absorbed (Lambda retries throttled
# asynchronous events, the event source mapping retries throttled batches).
resource "aws_cloudwatch_metric_alarm" "throttles" {
  alarm_name          = "${var.function_name}_throttles"
  alarm_description   = "${var.function_name} invocations were throttled in ${var.throttles_alarm_periods} consecutive 5-minute periods: the reserved or account concurrency is exhausted. Reserve concurrency for the function in terraform.tfvars (lambda_analyze_reserved_concurrency for the analyzer) or ask AWS for a higher Lambda concurrency quota, or lower lambda_analyze_concurrency_limit, then run manage.ts deploy."
  namespace           = "AWS/Lambda"
  metric_name         = "Throttles"
  dimensions          = { FunctionName = aws_lambda_function.this.function_name }
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = var.throttles_alarm_periods
  datapoints_to_alarm = var.throttles_alarm_periods
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  treat_missing_data  = "notBreaching"
  alarm_actions       = var.alarm_actions
  ok_actions          = var.alarm_actions
  tags                = var.tags
}
