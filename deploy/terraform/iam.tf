# Least-privilege roles. Consumer and loader are assumed by their Kubernetes ServiceAccounts (IRSA,
# when var.eks_oidc_provider_arn is set) and/or by ECS tasks (var.ecs_enabled).

locals {
  lake_objects_arn = "${aws_s3_bucket.lake.arn}/${local.lake_prefix}/*"
  stream_arns      = [for s in aws_kinesis_stream.this : s.arn]
  glue_catalog_arn = "arn:${local.partition}:glue:${var.region}:${local.account_id}:catalog"
  glue_db_arn      = "arn:${local.partition}:glue:${var.region}:${local.account_id}:database/${local.glue_database}"
  glue_tables_arn  = "arn:${local.partition}:glue:${var.region}:${local.account_id}:table/${local.glue_database}/*"
}

# --- Trust: IRSA and ECS tasks -------------------------------------------------------------------

data "aws_iam_policy_document" "assume_consumer" {
  dynamic "statement" {
    for_each = local.eks_enabled ? [1] : []
    content {
      sid     = "EksServiceAccount"
      actions = ["sts:AssumeRoleWithWebIdentity"]
      principals {
        type        = "Federated"
        identifiers = [var.eks_oidc_provider_arn]
      }
      condition {
        test     = "StringEquals"
        variable = "${local.eks_oidc_issuer}:sub"
        values   = ["system:serviceaccount:${var.eks_namespace}:etl-consumer"]
      }
      condition {
        test     = "StringEquals"
        variable = "${local.eks_oidc_issuer}:aud"
        values   = ["sts.amazonaws.com"]
      }
    }
  }
  dynamic "statement" {
    for_each = var.ecs_enabled ? [1] : []
    content {
      sid     = "EcsTasks"
      actions = ["sts:AssumeRole"]
      principals {
        type        = "Service"
        identifiers = ["ecs-tasks.amazonaws.com"]
      }
      condition {
        test     = "StringEquals"
        variable = "aws:SourceAccount"
        values   = [local.account_id]
      }
    }
  }
}

data "aws_iam_policy_document" "assume_loader" {
  dynamic "statement" {
    for_each = local.eks_enabled ? [1] : []
    content {
      sid     = "EksServiceAccount"
      actions = ["sts:AssumeRoleWithWebIdentity"]
      principals {
        type        = "Federated"
        identifiers = [var.eks_oidc_provider_arn]
      }
      condition {
        test     = "StringEquals"
        variable = "${local.eks_oidc_issuer}:sub"
        values   = ["system:serviceaccount:${var.eks_namespace}:etl-loader"]
      }
      condition {
        test     = "StringEquals"
        variable = "${local.eks_oidc_issuer}:aud"
        values   = ["sts.amazonaws.com"]
      }
    }
  }
  dynamic "statement" {
    for_each = var.ecs_enabled ? [1] : []
    content {
      sid     = "EcsTasks"
      actions = ["sts:AssumeRole"]
      principals {
        type        = "Service"
        identifiers = ["ecs-tasks.amazonaws.com"]
      }
      condition {
        test     = "StringEquals"
        variable = "aws:SourceAccount"
        values   = [local.account_id]
      }
    }
  }
}

# --- Consumer: Kinesis -> lake + Glue (+ leases) --------------------------------------------------

data "aws_iam_policy_document" "consumer" {
  statement {
    sid       = "ReadStreams"
    actions   = ["kinesis:ListShards", "kinesis:GetShardIterator", "kinesis:GetRecords", "kinesis:DescribeStreamSummary"]
    resources = local.stream_arns
  }
  statement {
    sid       = "DecryptStreams"
    actions   = ["kms:Decrypt"]
    resources = [aws_kms_key.streams.arn]
  }
  statement {
    sid       = "ListLake"
    actions   = ["s3:ListBucket"]
    resources = [aws_s3_bucket.lake.arn]
    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["${local.lake_prefix}/*"]
    }
  }
  statement {
    # Staged files are written, copied to their final keys and deleted (docs/delivery.md).
    sid       = "WriteLake"
    actions   = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"]
    resources = [local.lake_objects_arn]
  }
  statement {
    sid       = "EncryptLake"
    actions   = ["kms:GenerateDataKey", "kms:Decrypt"]
    resources = [aws_kms_key.lake.arn]
  }
  statement {
    # Tables and partitions of the lake (the database itself is created here, by Terraform).
    sid       = "Catalog"
    actions   = ["glue:GetDatabase", "glue:GetTable", "glue:CreateTable", "glue:UpdateTable", "glue:GetPartitions", "glue:BatchCreatePartition"]
    resources = [local.glue_catalog_arn, local.glue_db_arn, local.glue_tables_arn]
  }
  statement {
    # Planned shard leases (issue 13).
    sid       = "Leases"
    actions   = ["dynamodb:DescribeTable", "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:Query", "dynamodb:Scan"]
    resources = [aws_dynamodb_table.leases.arn, "${aws_dynamodb_table.leases.arn}/index/*"]
  }
  statement {
    sid       = "LeaseTableKey"
    actions   = ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey"]
    resources = [aws_kms_key.ops.arn]
    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["dynamodb.${var.region}.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "consumer" {
  name                 = "${var.name}-consumer"
  description          = "etl run: Kinesis -> S3 lake + Glue"
  assume_role_policy   = data.aws_iam_policy_document.assume_consumer.json
  max_session_duration = 3600
  tags                 = local.tags

  lifecycle {
    precondition {
      condition     = local.eks_enabled || var.ecs_enabled
      error_message = "Say where etl runs: set eks_oidc_provider_arn (EKS, IRSA) and/or ecs_enabled = true."
    }
  }
}

resource "aws_iam_role_policy" "consumer" {
  name   = "etl-consumer"
  role   = aws_iam_role.consumer.id
  policy = data.aws_iam_policy_document.consumer.json
}

# --- Loader: lake -> Redshift Data API ------------------------------------------------------------

data "aws_iam_policy_document" "loader" {
  statement {
    sid       = "ListLake"
    actions   = ["s3:ListBucket"]
    resources = [aws_s3_bucket.lake.arn]
    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["${local.lake_prefix}/*"]
    }
  }
  statement {
    sid       = "ReadLake"
    actions   = ["s3:GetObject"]
    resources = [local.lake_objects_arn]
  }
  statement {
    # COPY manifests (default <lake>/_load_manifests/).
    sid       = "WriteManifests"
    actions   = ["s3:PutObject"]
    resources = ["${aws_s3_bucket.lake.arn}/${local.lake_prefix}/_load_manifests/*"]
  }
  statement {
    sid       = "LakeKey"
    actions   = ["kms:GenerateDataKey", "kms:Decrypt"]
    resources = [aws_kms_key.lake.arn]
  }
  statement {
    sid       = "RunStatements"
    actions   = ["redshift-data:ExecuteStatement", "redshift-data:BatchExecuteStatement"]
    resources = [aws_redshiftserverless_workgroup.this.arn]
  }
  statement {
    # Statement ids are not resources: limit to the statements this role started.
    sid       = "ReadOwnStatements"
    actions   = ["redshift-data:DescribeStatement", "redshift-data:GetStatementResult", "redshift-data:CancelStatement"]
    resources = ["*"]
    condition {
      test     = "StringEquals"
      variable = "redshift-data:statement-owner-iam-userid"
      values   = ["$${aws:userid}"]
    }
  }
  statement {
    # The Data API signs in to the workgroup with the role's identity (no stored password).
    sid       = "WorkgroupCredentials"
    actions   = ["redshift-serverless:GetCredentials"]
    resources = [aws_redshiftserverless_workgroup.this.arn]
  }
}

resource "aws_iam_role" "loader" {
  name                 = "${var.name}-loader"
  description          = "etl warehouse load/migrate: lake -> Redshift Serverless (Data API)"
  assume_role_policy   = data.aws_iam_policy_document.assume_loader.json
  max_session_duration = 3600
  tags                 = local.tags

  lifecycle {
    precondition {
      condition     = local.eks_enabled || var.ecs_enabled
      error_message = "Say where etl runs: set eks_oidc_provider_arn (EKS, IRSA) and/or ecs_enabled = true."
    }
  }
}

resource "aws_iam_role_policy" "loader" {
  name   = "etl-loader"
  role   = aws_iam_role.loader.id
  policy = data.aws_iam_policy_document.loader.json
}

# --- Redshift COPY: the role Redshift assumes to read the lake (COPY ... IAM_ROLE) ----------------

data "aws_iam_policy_document" "assume_redshift" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["redshift.amazonaws.com", "redshift-serverless.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

data "aws_iam_policy_document" "redshift_copy" {
  statement {
    sid       = "LocateLake"
    actions   = ["s3:GetBucketLocation", "s3:ListBucket"]
    resources = [aws_s3_bucket.lake.arn]
  }
  statement {
    sid       = "ReadLake"
    actions   = ["s3:GetObject"]
    resources = [local.lake_objects_arn]
  }
  statement {
    sid       = "DecryptLake"
    actions   = ["kms:Decrypt"]
    resources = [aws_kms_key.lake.arn]
  }
}

resource "aws_iam_role" "redshift_copy" {
  name               = "${var.name}-redshift-copy"
  description        = "Redshift COPY reads the etl lake"
  assume_role_policy = data.aws_iam_policy_document.assume_redshift.json
  tags               = local.tags
}

resource "aws_iam_role_policy" "redshift_copy" {
  name   = "read-lake"
  role   = aws_iam_role.redshift_copy.id
  policy = data.aws_iam_policy_document.redshift_copy.json
}

# --- Athena: query the lake through Glue (QuickSight, analysts) -----------------------------------

data "aws_iam_policy_document" "assume_athena" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "AWS"
      identifiers = length(var.athena_principal_arns) > 0 ? var.athena_principal_arns : ["arn:${local.partition}:iam::${local.account_id}:root"]
    }
  }
}

data "aws_iam_policy_document" "athena" {
  statement {
    sid       = "Queries"
    actions   = ["athena:StartQueryExecution", "athena:GetQueryExecution", "athena:GetQueryResults", "athena:StopQueryExecution", "athena:GetWorkGroup"]
    resources = [aws_athena_workgroup.this.arn]
  }
  statement {
    sid       = "ReadCatalog"
    actions   = ["glue:GetDatabase", "glue:GetDatabases", "glue:GetTable", "glue:GetTables", "glue:GetPartition", "glue:GetPartitions", "glue:BatchGetPartition"]
    resources = [local.glue_catalog_arn, local.glue_db_arn, local.glue_tables_arn]
  }
  statement {
    sid       = "ListLake"
    actions   = ["s3:GetBucketLocation", "s3:ListBucket"]
    resources = [aws_s3_bucket.lake.arn]
  }
  statement {
    sid       = "ReadLake"
    actions   = ["s3:GetObject"]
    resources = [local.lake_objects_arn]
  }
  statement {
    sid       = "WriteResults"
    actions   = ["s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload"]
    resources = ["${aws_s3_bucket.lake.arn}/athena-results/*"]
  }
  statement {
    sid       = "LakeKey"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [aws_kms_key.lake.arn]
  }
}

resource "aws_iam_role" "athena" {
  name               = "${var.name}-athena"
  description        = "Athena queries over the etl lake"
  assume_role_policy = data.aws_iam_policy_document.assume_athena.json
  tags               = local.tags
}

resource "aws_iam_role_policy" "athena" {
  name   = "query-lake"
  role   = aws_iam_role.athena.id
  policy = data.aws_iam_policy_document.athena.json
}

resource "aws_athena_workgroup" "this" {
  name          = var.name
  force_destroy = false

  configuration {
    enforce_workgroup_configuration    = true
    publish_cloudwatch_metrics_enabled = true

    result_configuration {
      output_location = "s3://${aws_s3_bucket.lake.bucket}/athena-results/"
      encryption_configuration {
        encryption_option = "SSE_KMS"
        kms_key_arn       = aws_kms_key.lake.arn
      }
    }
  }

  tags = local.tags
}
