# One Kinesis stream per configured stream, encrypted with the streams key.

resource "aws_kinesis_stream" "this" {
  for_each = var.streams

  name             = local.kinesis_stream_names[each.key]
  shard_count      = var.stream_mode == "PROVISIONED" ? each.value.shard_count : null
  retention_period = var.stream_retention_hours
  encryption_type  = "KMS"
  kms_key_id       = aws_kms_key.streams.arn

  # Per-shard iterator age and throttling: which shard lags, next to etl's per-shard metrics.
  shard_level_metrics = ["IteratorAgeMilliseconds", "ReadProvisionedThroughputExceeded", "IncomingRecords"]

  stream_mode_details {
    stream_mode = var.stream_mode
  }

  tags = merge(local.tags, { "etl:stream" = each.key })
}
