# The lake bucket: SSE-KMS with the lake key, versioned, private, TLS only, with lifecycle rules for
# the raw archive (raw/) and the dead letters (dead-letters/). Layout under lake.location: README.md,
# "Architecture" (tables, _commits/, _delivery/, _staging/, _catalog/, raw/, dead-letters/).

resource "aws_s3_bucket" "lake" {
  bucket = local.lake_bucket_name
  tags   = local.tags

  #checkov:skip=CKV_AWS_144:Cross-region replication is a disaster-recovery choice per environment (a second region and key); the lake can be rebuilt from raw/ and Kinesis retention within the region.
  #checkov:skip=CKV2_AWS_62:No consumer of S3 event notifications: etl's commit records (_commits/) are the change feed the loader reads.
}

resource "aws_s3_bucket_ownership_controls" "lake" {
  bucket = aws_s3_bucket.lake.id
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_public_access_block" "lake" {
  bucket                  = aws_s3_bucket.lake.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_versioning" "lake" {
  bucket = aws_s3_bucket.lake.id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "lake" {
  bucket = aws_s3_bucket.lake.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = aws_kms_key.lake.arn
    }
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_logging" "lake" {
  bucket        = aws_s3_bucket.lake.id
  target_bucket = var.access_log_bucket
  target_prefix = "s3/${local.lake_bucket_name}/"
}

resource "aws_s3_bucket_lifecycle_configuration" "lake" {
  bucket = aws_s3_bucket.lake.id

  # Versioning must be on before rules on noncurrent versions apply.
  depends_on = [aws_s3_bucket_versioning.lake]

  rule {
    id     = "raw-archive"
    status = "Enabled"
    filter {
      prefix = "${local.lake_prefix}/raw/"
    }
    transition {
      days          = var.raw_archive_glacier_after_days
      storage_class = "GLACIER_IR"
    }
    dynamic "expiration" {
      for_each = var.raw_archive_expire_after_days > 0 ? [var.raw_archive_expire_after_days] : []
      content {
        days = expiration.value
      }
    }
  }

  rule {
    id     = "dead-letters"
    status = "Enabled"
    filter {
      prefix = "${local.lake_prefix}/dead-letters/"
    }
    expiration {
      days = var.dead_letters_expire_after_days
    }
  }

  rule {
    id     = "athena-results"
    status = "Enabled"
    filter {
      prefix = "athena-results/"
    }
    expiration {
      days = 30
    }
  }

  rule {
    id     = "versions-and-uploads"
    status = "Enabled"
    filter {
      prefix = ""
    }
    noncurrent_version_expiration {
      noncurrent_days = var.noncurrent_versions_expire_after_days
    }
    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }
  }
}

data "aws_iam_policy_document" "lake_bucket" {
  statement {
    sid     = "DenyInsecureTransport"
    effect  = "Deny"
    actions = ["s3:*"]
    resources = [
      aws_s3_bucket.lake.arn,
      "${aws_s3_bucket.lake.arn}/*",
    ]
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

  statement {
    sid     = "DenyOldTls"
    effect  = "Deny"
    actions = ["s3:*"]
    resources = [
      aws_s3_bucket.lake.arn,
      "${aws_s3_bucket.lake.arn}/*",
    ]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    condition {
      test     = "NumericLessThan"
      variable = "s3:TlsVersion"
      values   = ["1.2"]
    }
  }
}

resource "aws_s3_bucket_policy" "lake" {
  bucket = aws_s3_bucket.lake.id
  policy = data.aws_iam_policy_document.lake_bucket.json

  depends_on = [aws_s3_bucket_public_access_block.lake]
}
