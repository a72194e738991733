# The binaries bucket: every object created in it is queued for analysis.

resource "aws_s3_bucket" "binaries" {
  bucket        = local.names.bucket
  force_destroy = var.force_destroy
}

resource "aws_s3_bucket_ownership_controls" "binaries" {
  bucket = aws_s3_bucket.binaries.id
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_public_access_block" "binaries" {
  bucket                  = aws_s3_bucket.binaries.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_versioning" "binaries" {
  bucket = aws_s3_bucket.binaries.id
  versioning_configuration {
    status = "Enabled"
  }
}

# SSE-S3 keeps the analyzer's role free of KMS permissions.
resource "aws_s3_bucket_server_side_encryption_configuration" "binaries" {
  bucket = aws_s3_bucket.binaries.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm = "AES256"
    }
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "binaries" {
  bucket = aws_s3_bucket.binaries.id

  rule {
    id     = "expire-noncurrent-versions"
    status = "Enabled"
    filter {}
    noncurrent_version_expiration {
      noncurrent_days = var.s3_noncurrent_version_expiration_days
    }
    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }
  }

  depends_on = [aws_s3_bucket_versioning.binaries]
}

resource "aws_s3_bucket_logging" "binaries" {
  bucket        = aws_s3_bucket.binaries.id
  target_bucket = local.names.log_bucket
  target_prefix = var.s3_log_prefix

  depends_on = [aws_s3_bucket_policy.access_logs]
}

data "aws_iam_policy_document" "binaries_bucket" {
  statement {
    sid       = "DenyInsecureTransport"
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = [aws_s3_bucket.binaries.arn, "${aws_s3_bucket.binaries.arn}/*"]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_s3_bucket_policy" "binaries" {
  bucket = aws_s3_bucket.binaries.id
  policy = data.aws_iam_policy_document.binaries_bucket.json

  depends_on = [aws_s3_bucket_public_access_block.binaries]
}

resource "aws_s3_bucket_notification" "binaries" {
  bucket = aws_s3_bucket.binaries.id

  queue {
    queue_arn = aws_sqs_queue.analyzer.arn
    events    = ["s3:ObjectCreated:*"]
  }

  # S3 checks that it may send to the queue when the notification is created.
  depends_on = [aws_sqs_queue_policy.analyzer]
}

# The access-log bucket, created unless s3_log_bucket names an existing one.

resource "aws_s3_bucket" "access_logs" {
  count         = var.s3_log_bucket == "" ? 1 : 0
  bucket        = local.names.log_bucket
  force_destroy = var.force_destroy
}

resource "aws_s3_bucket_ownership_controls" "access_logs" {
  count  = length(aws_s3_bucket.access_logs)
  bucket = aws_s3_bucket.access_logs[0].id
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_public_access_block" "access_logs" {
  count                   = length(aws_s3_bucket.access_logs)
  bucket                  = aws_s3_bucket.access_logs[0].id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_server_side_encryption_configuration" "access_logs" {
  count  = length(aws_s3_bucket.access_logs)
  bucket = aws_s3_bucket.access_logs[0].id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm = "AES256"
    }
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "access_logs" {
  count  = length(aws_s3_bucket.access_logs)
  bucket = aws_s3_bucket.access_logs[0].id

  rule {
    id     = "expire-access-logs"
    status = "Enabled"
    filter {}
    expiration {
      days = var.s3_log_expiration_days
    }
  }
}

data "aws_iam_policy_document" "access_logs" {
  count = length(aws_s3_bucket.access_logs)

  statement {
    sid       = "S3ServerAccessLogDelivery"
    actions   = ["s3:PutObject"]
    resources = ["${aws_s3_bucket.access_logs[0].arn}/${var.s3_log_prefix}*"]
    principals {
      type        = "Service"
      identifiers = ["logging.s3.amazonaws.com"]
    }
    condition {
      test     = "ArnLike"
      variable = "aws:SourceArn"
      values   = [aws_s3_bucket.binaries.arn]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }

  statement {
    sid       = "DenyInsecureTransport"
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = [aws_s3_bucket.access_logs[0].arn, "${aws_s3_bucket.access_logs[0].arn}/*"]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_s3_bucket_policy" "access_logs" {
  count  = length(aws_s3_bucket.access_logs)
  bucket = aws_s3_bucket.access_logs[0].id
  policy = data.aws_iam_policy_document.access_logs[0].json

  depends_on = [aws_s3_bucket_public_access_block.access_logs]
}

# The rules bucket: `manage.ts deploy-rules` uploads each rules release here; the analyzer may
# only read it. Versioned, so an overwritten or deleted release can be recovered.

resource "aws_s3_bucket" "rules" {
  bucket        = local.names.rules_bucket
  force_destroy = var.force_destroy
}

resource "aws_s3_bucket_ownership_controls" "rules" {
  bucket = aws_s3_bucket.rules.id
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_public_access_block" "rules" {
  bucket                  = aws_s3_bucket.rules.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_versioning" "rules" {
  bucket = aws_s3_bucket.rules.id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "rules" {
  bucket = aws_s3_bucket.rules.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm = "AES256"
    }
  }
}

data "aws_iam_policy_document" "rules_bucket" {
  statement {
    sid       = "DenyInsecureTransport"
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = [aws_s3_bucket.rules.arn, "${aws_s3_bucket.rules.arn}/*"]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_s3_bucket_policy" "rules" {
  bucket = aws_s3_bucket.rules.id
  policy = data.aws_iam_policy_document.rules_bucket.json

  depends_on = [aws_s3_bucket_public_access_block.rules]
}
