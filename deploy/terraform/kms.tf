# Customer-managed keys, one per kind of data so that each role decrypts only what it reads:
#   streams   Kinesis records (producers encrypt, the consumer decrypts)
#   lake      the lake bucket's objects (consumer writes, loader/COPY/Athena read), Athena results
#   warehouse the Redshift Serverless namespace
#   ops       the configuration parameter, the masking key secret, the ECS log group

data "aws_iam_policy_document" "kms_default" {
  # The account administers its keys through IAM policies (the roles below grant use of each key).
  # In a key policy, resources = ["*"] means this key only; the principal is the account itself.
  #checkov:skip=CKV_AWS_111:Key policy: "*" is the key itself, and only the account's IAM policies can delegate its use (the AWS default key policy).
  #checkov:skip=CKV_AWS_356:Key policy: "*" is the key itself (the AWS default key policy).
  #checkov:skip=CKV_AWS_109:Key policy: the account root principal keeps administration so the key cannot become unmanageable (the AWS default key policy).
  statement {
    sid       = "AccountAdministersThroughIam"
    actions   = ["kms:*"]
    resources = ["*"]
    principals {
      type        = "AWS"
      identifiers = ["arn:${local.partition}:iam::${local.account_id}:root"]
    }
  }
}

data "aws_iam_policy_document" "kms_ops" {
  source_policy_documents = [data.aws_iam_policy_document.kms_default.json]

  statement {
    sid       = "CloudWatchLogsEncryptsTheLogGroup"
    actions   = ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey"]
    resources = ["*"]
    principals {
      type        = "Service"
      identifiers = ["logs.${var.region}.amazonaws.com"]
    }
    condition {
      test     = "ArnLike"
      variable = "kms:EncryptionContext:aws:logs:arn"
      values   = ["arn:${local.partition}:logs:${var.region}:${local.account_id}:log-group:/ecs/${var.name}"]
    }
  }
}

resource "aws_kms_key" "streams" {
  description             = "${var.name}: Kinesis stream records"
  enable_key_rotation     = true
  deletion_window_in_days = 30
  policy                  = data.aws_iam_policy_document.kms_default.json
  tags                    = local.tags
}

resource "aws_kms_alias" "streams" {
  name          = "alias/${var.name}-streams"
  target_key_id = aws_kms_key.streams.key_id
}

resource "aws_kms_key" "lake" {
  description             = "${var.name}: lake objects and Athena results"
  enable_key_rotation     = true
  deletion_window_in_days = 30
  policy                  = data.aws_iam_policy_document.kms_default.json
  tags                    = local.tags
}

resource "aws_kms_alias" "lake" {
  name          = "alias/${var.name}-lake"
  target_key_id = aws_kms_key.lake.key_id
}

resource "aws_kms_key" "warehouse" {
  description             = "${var.name}: Redshift Serverless namespace"
  enable_key_rotation     = true
  deletion_window_in_days = 30
  policy                  = data.aws_iam_policy_document.kms_default.json
  tags                    = local.tags
}

resource "aws_kms_alias" "warehouse" {
  name          = "alias/${var.name}-warehouse"
  target_key_id = aws_kms_key.warehouse.key_id
}

resource "aws_kms_key" "ops" {
  description             = "${var.name}: configuration, masking key, logs"
  enable_key_rotation     = true
  deletion_window_in_days = 30
  policy                  = data.aws_iam_policy_document.kms_ops.json
  tags                    = local.tags
}

resource "aws_kms_alias" "ops" {
  name          = "alias/${var.name}-ops"
  target_key_id = aws_kms_key.ops.key_id
}
