# The analyzer queue: S3 sends object-created events here; the dispatcher drains it.

resource "aws_sqs_queue" "dead_letter" {
  name                      = local.names.dead_letter_queue
  message_retention_seconds = 1209600 # the maximum, 14 days: time to investigate
  sqs_managed_sse_enabled   = true
}

resource "aws_sqs_queue" "analyzer" {
  name                    = local.names.queue
  sqs_managed_sse_enabled = true
  # A little above the analyzer timeout, so a message being analyzed is not handed out twice.
  visibility_timeout_seconds = var.lambda_analyze_timeout_sec + 30
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
