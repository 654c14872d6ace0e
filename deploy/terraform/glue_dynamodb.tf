# The Glue database of the lake tables (etl creates and extends the tables and partitions itself:
# `etl catalog sync`, and every commit of `etl run`), and the DynamoDB shard lease table.

resource "aws_glue_catalog_database" "lake" {
  name        = local.glue_database
  description = "etl lake tables (${local.lake_location}); tables and partitions are managed by etl"
  # Tables are created by etl under the lake location.
  location_uri = "${local.lake_location}/"
}

# Shard leases for N consumer replicas: PLANNED (issue 13), nothing reads or writes it yet.
# Modelled on the KCL lease table (hash key leaseKey), on-demand billing.
resource "aws_dynamodb_table" "leases" {
  name         = local.lease_table_name
  billing_mode = "PAY_PER_REQUEST"
  hash_key     = "leaseKey"

  attribute {
    name = "leaseKey"
    type = "S"
  }

  point_in_time_recovery {
    enabled = true
  }

  server_side_encryption {
    enabled     = true
    kms_key_arn = aws_kms_key.ops.arn
  }

  deletion_protection_enabled = true

  tags = local.tags
}
