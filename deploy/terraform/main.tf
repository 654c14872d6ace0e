# The AWS side of the etl platform: Kinesis streams, the S3 lake and its Glue database, the
# DynamoDB lease table, the Redshift Serverless warehouse, IAM roles for the consumer, the loader,
# Redshift's COPY and Athena, and CloudWatch alarms. See deploy/README.md.

data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition

  lake_bucket_name = coalesce(var.lake_bucket_name, "${var.name}-lake-${local.account_id}")
  lake_prefix      = trim(var.lake_prefix, "/")
  lake_location    = "s3://${local.lake_bucket_name}/${local.lake_prefix}"
  glue_database    = coalesce(var.glue_database_name, replace(var.name, "-", "_"))
  lease_table_name = coalesce(var.lease_table_name, "${var.name}-leases")

  # configured stream name (app_events) -> Kinesis stream name (etl-prod-app-events)
  kinesis_stream_names = { for stream, _ in var.streams : stream => "${var.name}-${replace(stream, "_", "-")}" }

  eks_enabled = var.eks_oidc_provider_arn != null
  # "oidc.eks.<region>.amazonaws.com/id/<id>" from the provider ARN
  eks_oidc_issuer = local.eks_enabled ? element(split("oidc-provider/", var.eks_oidc_provider_arn), 1) : ""

  tags = merge({ "app" = "etl", "etl:environment" = var.name }, var.tags)
}
