# Redshift Serverless: the warehouse `etl warehouse migrate` and `etl warehouse load` run against
# through the Data API (--workgroup). The admin password is kept in Secrets Manager by Redshift.

resource "aws_redshiftserverless_namespace" "this" {
  namespace_name        = var.name
  db_name               = var.redshift_database
  admin_username        = "etl_admin"
  manage_admin_password = true
  kms_key_id            = aws_kms_key.warehouse.arn
  iam_roles             = [aws_iam_role.redshift_copy.arn]
  default_iam_role_arn  = aws_iam_role.redshift_copy.arn
  log_exports           = ["userlog", "connectionlog", "useractivitylog"]
  tags                  = local.tags
}

resource "aws_redshiftserverless_workgroup" "this" {
  namespace_name       = aws_redshiftserverless_namespace.this.namespace_name
  workgroup_name       = var.name
  base_capacity        = var.redshift_base_capacity
  max_capacity         = var.redshift_max_capacity
  subnet_ids           = var.subnet_ids
  security_group_ids   = var.redshift_security_group_ids
  publicly_accessible  = false
  enhanced_vpc_routing = true

  config_parameter {
    parameter_key   = "require_ssl"
    parameter_value = "true"
  }

  tags = local.tags
}
