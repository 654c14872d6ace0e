# Everything the configuration file (etl.toml), the Kubernetes overlay and the ECS task
# definitions need. `terraform output -raw etl_toml > etl.toml` writes the configuration file.

locals {
  etl_toml = templatefile("${path.module}/etl.toml.tftpl", {
    name             = var.name
    streams          = join(", ", [for stream, kinesis in local.kinesis_stream_names : "${stream} = \"${kinesis}\""])
    lake_location    = local.lake_location
    lake_kms_key_arn = aws_kms_key.lake.arn
    glue_database    = aws_glue_catalog_database.lake.name
    region           = var.region
  })
}

output "etl_toml" {
  description = "The configuration file (/etc/etl/etl.toml) of the consumer and the loader."
  value       = local.etl_toml
}

output "kinesis_stream_names" {
  description = "Configured stream -> Kinesis stream name ([kinesis] streams)."
  value       = { for stream, s in aws_kinesis_stream.this : stream => s.name }
}

output "kinesis_stream_arns" {
  description = "Configured stream -> Kinesis stream ARN (producers' IAM policies)."
  value       = { for stream, s in aws_kinesis_stream.this : stream => s.arn }
}

output "streams_kms_key_arn" {
  description = "Key producers need kms:GenerateDataKey on to put records."
  value       = aws_kms_key.streams.arn
}

output "lake_location" {
  description = "lake.location"
  value       = local.lake_location
}

output "lake_bucket" {
  description = "The lake bucket."
  value       = aws_s3_bucket.lake.bucket
}

output "lake_kms_key_arn" {
  description = "lake.kms_key_id"
  value       = aws_kms_key.lake.arn
}

output "lake_kms_key_alias" {
  description = "Alias of the lake key (also accepted as lake.kms_key_id)."
  value       = aws_kms_alias.lake.name
}

output "glue_database" {
  description = "lake.glue_database"
  value       = aws_glue_catalog_database.lake.name
}

output "lease_table_name" {
  description = "DynamoDB shard lease table (planned, issue 13)."
  value       = aws_dynamodb_table.leases.name
}

output "consumer_role_arn" {
  description = "IAM role of `etl run` (ServiceAccount etl-consumer annotation, or ECS taskRoleArn)."
  value       = aws_iam_role.consumer.arn
}

output "loader_role_arn" {
  description = "IAM role of `etl warehouse load|migrate` (ServiceAccount etl-loader annotation, or ECS taskRoleArn)."
  value       = aws_iam_role.loader.arn
}

output "redshift_copy_role_arn" {
  description = "ETL_REDSHIFT_IAM_ROLE_ARN / --iam-role-arn: the role Redshift COPY assumes."
  value       = aws_iam_role.redshift_copy.arn
}

output "athena_role_arn" {
  description = "Role for Athena queries over the lake (QuickSight, analysts)."
  value       = aws_iam_role.athena.arn
}

output "athena_workgroup" {
  description = "Athena workgroup (results encrypted under athena-results/ of the lake bucket)."
  value       = aws_athena_workgroup.this.name
}

output "redshift_workgroup" {
  description = "ETL_REDSHIFT_WORKGROUP / --workgroup"
  value       = aws_redshiftserverless_workgroup.this.workgroup_name
}

output "redshift_database" {
  description = "ETL_REDSHIFT_DATABASE / --database"
  value       = aws_redshiftserverless_namespace.this.db_name
}

output "mask_key_secret_arn" {
  description = "Secrets Manager secret holding the masking key (value set out of band)."
  value       = aws_secretsmanager_secret.mask_key.arn
}

output "ecs_execution_role_arn" {
  description = "ECS executionRoleArn (null unless ecs_enabled)."
  value       = var.ecs_enabled ? aws_iam_role.ecs_execution[0].arn : null
}

output "config_parameter_arn" {
  description = "SSM parameter with etl.toml for the ECS init container (null unless ecs_enabled)."
  value       = var.ecs_enabled ? aws_ssm_parameter.config[0].arn : null
}

output "ecs_log_group" {
  description = "awslogs-group of the ECS task definitions (null unless ecs_enabled)."
  value       = var.ecs_enabled ? aws_cloudwatch_log_group.ecs[0].name : null
}
