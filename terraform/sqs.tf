# The analyzer queue: S3 sends object-created events here; the dispatcher or the event source
# mapping (analyzer_trigger) drains it.

resource "aws_sqs_queue" "dead_letter" {
  name                      = local.names.dead_letter_queue
  message_retention_seconds = 1209600 # the maximum, 14 days: time to investigate
  sqs_managed_sse_enabled   = true
}

resource "aws_sqs_queue" "analyzer" {
  name                    = local.names.queue
  sqs_managed_sse_enabled = true
  # Longer than an analyzer can hold a message, so one being analyzed is not handed out twice.
  visibility_timeout_seconds = local.queue_visibility_timeout_seconds
  message_retention_seconds  = var.sqs_retention_minutes * 60

  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.dead_letter.arn
    maxReceiveCount     = var.max_receives
  })
}

resource "aws_sqs_queue_redrive_allow_policy" "dead_letter" {
  queue_url = aws_sqs_queue.dead_letter.id
  redrive_allow_policy = jsonencode({
    redrivePermission = "byQueue"
    sourceQueueArns   = [aws_sqs_queue.analyzer.arn]
  })
}

# Only the binaries bucket may send to the queue (the workers use their IAM roles).
data "aws_iam_policy_document" "analyzer_queue" {
  statement {
    sid       = "AllowBinariesBucketNotifications"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.analyzer.arn]
    principals {
      type        = "Service"
      identifiers = ["s3.amazonaws.com"]
    }
    condition {
      test     = "ArnEquals"
      variable = "aws:SourceArn"
      values   = [aws_s3_bucket.binaries.arn]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_sqs_queue_policy" "analyzer" {
  queue_url = aws_sqs_queue.analyzer.id
  policy    = data.aws_iam_policy_document.analyzer_queue.json
}

# analyzer_trigger = "sqs": Lambda polls the queue and invokes the analyzer with batches of up to
# ten messages, never more than lambda_analyze_concurrency_limit at once; the analyzer answers with
# the messages it did not finish (batchItemFailures), and only those return to the queue.
resource "aws_lambda_event_source_mapping" "analyzer" {
  count            = var.analyzer_trigger == "sqs" ? 1 : 0
  event_source_arn = aws_sqs_queue.analyzer.arn
  function_name    = module.analyzer.alias_arn
  batch_size       = 10

  function_response_types = ["ReportBatchItemFailures"]

  scaling_config {
    maximum_concurrency = var.lambda_analyze_concurrency_limit
  }
}
