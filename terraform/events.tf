# The dispatcher runs on a schedule.

resource "aws_cloudwatch_event_rule" "dispatch" {
  name                = local.names.dispatch_rule
  description         = "Runs the BinaryAlert dispatcher every ${var.lambda_dispatch_frequency_minutes} minute(s)"
  schedule_expression = var.lambda_dispatch_frequency_minutes == 1 ? "rate(1 minute)" : "rate(${var.lambda_dispatch_frequency_minutes} minutes)"
}

resource "aws_cloudwatch_event_target" "dispatch" {
  rule = aws_cloudwatch_event_rule.dispatch.name
  arn  = module.dispatcher.alias_arn
}

resource "aws_lambda_permission" "dispatch" {
  statement_id  = "AllowExecutionFromEventBridge"
  action        = "lambda:InvokeFunction"
  function_name = module.dispatcher.function_name
  qualifier     = module.dispatcher.alias_name
  principal     = "events.amazonaws.com"
  source_arn    = aws_cloudwatch_event_rule.dispatch.arn
}
