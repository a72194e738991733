# analyzer_trigger = "dispatcher": the dispatcher runs on a schedule (with "sqs" the event source
# mapping in sqs.tf feeds the analyzer instead, and the dispatcher is never invoked).

resource "aws_cloudwatch_event_rule" "dispatch" {
  count               = var.analyzer_trigger == "dispatcher" ? 1 : 0
  name                = local.names.dispatch_rule
  description         = "Runs the BinaryAlert dispatcher every ${var.lambda_dispatch_frequency_minutes} minute(s)"
  schedule_expression = var.lambda_dispatch_frequency_minutes == 1 ? "rate(1 minute)" : "rate(${var.lambda_dispatch_frequency_minutes} minutes)"
}

resource "aws_cloudwatch_event_target" "dispatch" {
  count = var.analyzer_trigger == "dispatcher" ? 1 : 0
  rule  = aws_cloudwatch_event_rule.dispatch[0].name
  arn   = module.dispatcher.alias_arn
}

resource "aws_lambda_permission" "dispatch" {
  count         = var.analyzer_trigger == "dispatcher" ? 1 : 0
  statement_id  = "AllowExecutionFromEventBridge"
  action        = "lambda:InvokeFunction"
  function_name = module.dispatcher.function_name
  qualifier     = module.dispatcher.alias_name
  principal     = "events.amazonaws.com"
  source_arn    = aws_cloudwatch_event_rule.dispatch[0].arn
}
