# What the ECS task definitions (deploy/ecs) reference, when var.ecs_enabled: the execution role
# (pulls the image, writes logs, hands the configuration file and the masking key to the `config`
# init container), the log group and the configuration parameter. The masking key secret exists on
# both platforms (on EKS, sync it into the etl-mask-key Kubernetes Secret).

resource "aws_secretsmanager_secret" "mask_key" {
  name        = "${var.name}/mask-key"
  description = "HMAC key that masks phone numbers (etl --mask-key-file). Set its value out of band; never in Terraform state."
  kms_key_id  = aws_kms_key.ops.arn
  tags        = local.tags

  #checkov:skip=CKV2_AWS_57:Rotating the masking key changes every masked value (joins across the rotation break); a rotation is a planned data migration, not a schedule.
}

resource "aws_ssm_parameter" "config" {
  count = var.ecs_enabled ? 1 : 0

  name        = "/${var.name}/etl.toml"
  description = "etl configuration file, written to /etc/etl/etl.toml by the ECS init container"
  type        = "SecureString"
  key_id      = aws_kms_key.ops.arn
  tier        = "Standard"
  value       = local.etl_toml
  tags        = local.tags
}

resource "aws_cloudwatch_log_group" "ecs" {
  count = var.ecs_enabled ? 1 : 0

  name              = "/ecs/${var.name}"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.ops.arn
  tags              = local.tags
}

data "aws_iam_policy_document" "assume_ecs_execution" {
  statement {
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

data "aws_iam_policy_document" "ecs_execution" {
  count = var.ecs_enabled ? 1 : 0

  statement {
    # GetAuthorizationToken has no resource-level permissions.
    sid       = "EcrLogin"
    actions   = ["ecr:GetAuthorizationToken"]
    resources = ["*"]
  }
  statement {
    sid       = "PullImage"
    actions   = ["ecr:BatchCheckLayerAvailability", "ecr:GetDownloadUrlForLayer", "ecr:BatchGetImage"]
    resources = ["arn:${local.partition}:ecr:${var.region}:${local.account_id}:repository/etl"]
  }
  statement {
    sid       = "WriteLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.ecs[0].arn}:*"]
  }
  statement {
    sid       = "ConfigAndMaskKey"
    actions   = ["ssm:GetParameters", "secretsmanager:GetSecretValue"]
    resources = [aws_ssm_parameter.config[0].arn, aws_secretsmanager_secret.mask_key.arn]
  }
  statement {
    sid       = "DecryptConfigAndMaskKey"
    actions   = ["kms:Decrypt"]
    resources = [aws_kms_key.ops.arn]
  }
}

resource "aws_iam_role" "ecs_execution" {
  count = var.ecs_enabled ? 1 : 0

  name               = "${var.name}-ecs-execution"
  description        = "ECS execution role of the etl tasks"
  assume_role_policy = data.aws_iam_policy_document.assume_ecs_execution.json
  tags               = local.tags
}

resource "aws_iam_role_policy" "ecs_execution" {
  count = var.ecs_enabled ? 1 : 0

  name   = "etl-ecs-execution"
  role   = aws_iam_role.ecs_execution[0].id
  policy = data.aws_iam_policy_document.ecs_execution[0].json
}
