# Least privilege: each worker's inline policy names only the actions its code calls, on only
# the resources it touches (terraform.test.ts keeps these lists equal to the function manifest's
# `actions` and to the SDK commands the code sends).
# The base logging policy is added by modules/lambda.

data "aws_iam_policy_document" "analyzer" {
  statement {
    sid       = "ReadBinaries"
    actions   = ["s3:GetObject"]
    resources = concat(["${aws_s3_bucket.binaries.arn}/*"], var.external_s3_bucket_resources)
  }

  # SSE-KMS objects of external buckets: S3 decrypts them with these keys on the analyzer's behalf.
  dynamic "statement" {
    for_each = length(var.external_kms_key_resources) > 0 ? [1] : []
    content {
      sid       = "DecryptExternalObjects"
      actions   = ["kms:Decrypt"]
      resources = var.external_kms_key_resources
      condition {
        test     = "StringEquals"
        variable = "kms:ViaService"
        values   = ["s3.${var.aws_region}.amazonaws.com"]
      }
    }
  }

  statement {
    sid       = "ReadRulesReleases"
    actions   = ["s3:GetObject"]
    resources = ["${aws_s3_bucket.rules.arn}/*"]
  }

  statement {
    sid = "AlertDecisions"
    # GetItem reads a binary's alerted rules and an object's alert state; UpdateItem claims and
    # records alerts (packages/analyzer/src/match-history.ts); BatchGetItem reads the delta re-scan
    # outcomes of an invocation's binaries and its objects' verdicts (delta.ts).
    actions   = ["dynamodb:BatchGetItem", "dynamodb:GetItem", "dynamodb:UpdateItem"]
    resources = [aws_dynamodb_table.matches.arn, aws_dynamodb_table.verdicts.arn]
  }

  statement {
    sid = "VerdictLedger"
    # UpdateItem writes an object's verdict (conditional: a newer one is never replaced; the
    # object's alert state on the same item is kept); GetItem reads the previous verdict;
    # PartiQLUpdate: verdicts carried over to a new rules release, 25 conditional UPDATEs to a
    # BatchExecuteStatement (ledger.ts recordCarriedVerdicts).
    actions   = ["dynamodb:UpdateItem", "dynamodb:GetItem", "dynamodb:PartiQLUpdate"]
    resources = [aws_dynamodb_table.verdicts.arn]
  }

  statement {
    sid     = "PublishAlerts"
    actions = ["sns:Publish"]
    resources = compact([
      aws_sns_topic.yara_match_alerts.arn,
      local.negative_topic_arn,
    ])
  }

  statement {
    sid       = "ReleaseDispatchSlot"
    actions   = ["dynamodb:UpdateItem"]
    resources = [aws_dynamodb_table.dispatch_slots.arn]
  }

  statement {
    sid = "FinishQueueMessages"
    # ChangeMessageVisibility: a message whose alert another analysis holds is retried when that
    # claim expires, not after the whole visibility timeout. SendMessage: the failed objects of a
    # partly finished message go back on their own (requeue.ts).
    actions   = ["sqs:ChangeMessageVisibility", "sqs:DeleteMessage", "sqs:SendMessage"]
    resources = [aws_sqs_queue.analyzer.arn]
  }

  # analyzer_trigger = "sqs": the event source mapping polls the queue with the analyzer's role.
  dynamic "statement" {
    for_each = var.analyzer_trigger == "sqs" ? [1] : []
    content {
      sid       = "EventSourceMappingPollsQueue"
      actions   = ["sqs:ReceiveMessage", "sqs:GetQueueAttributes"]
      resources = [aws_sqs_queue.analyzer.arn]
    }
  }
}

data "aws_iam_policy_document" "dispatcher" {
  statement {
    sid       = "PollQueue"
    actions   = ["sqs:ReceiveMessage", "sqs:DeleteMessage"]
    resources = [aws_sqs_queue.analyzer.arn]
  }

  statement {
    sid = "DispatchSlots"
    # Scan finds the free slots; UpdateItem takes and gives back one, conditionally.
    actions   = ["dynamodb:Scan", "dynamodb:UpdateItem"]
    resources = [aws_dynamodb_table.dispatch_slots.arn]
  }

  statement {
    sid       = "InvokeAnalyzer"
    actions   = ["lambda:InvokeFunction"]
    resources = [module.analyzer.alias_arn]
  }
}

data "aws_iam_policy_document" "batcher" {
  statement {
    sid       = "ListBinaries"
    actions   = ["s3:ListBucket"]
    resources = [aws_s3_bucket.binaries.arn]
  }

  statement {
    sid       = "EnqueueBinaries"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.analyzer.arn]
  }

  statement {
    sid     = "ContinueInNewInvocation"
    actions = ["lambda:InvokeFunction"]
    # Built from the name (not the module output) so the policy does not depend on the function.
    resources = ["arn:${local.partition}:lambda:${var.aws_region}:${local.account_id}:function:${local.names.batcher_function}:Production"]
  }
}
