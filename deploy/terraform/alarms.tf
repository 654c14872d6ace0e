# CloudWatch alarms on lag and freshness.
#
# 1. Kinesis' own metrics (no agent needed): GetRecords.IteratorAgeMilliseconds is the age of the
#    oldest record the consumer is about to read, i.e. what etl exports per shard as
#    etl_kinesis_millis_behind_latest.
# 2. etl's own Prometheus metrics, when a CloudWatch agent scrapes /metrics and publishes them as
#    embedded metric format into var.prometheus_metrics_namespace with the dimension sets used below
#    (deploy/README.md, "Metrics in CloudWatch"). Without it (null), alert from Prometheus instead
#    with the rules in deploy/README.md.

locals {
  prometheus_alarms = var.prometheus_metrics_namespace == null ? {} : merge(
    { for stream, _ in var.streams : "millis-behind-${stream}" => {
      metric      = "etl_kinesis_millis_behind_latest"
      dimensions  = tomap({ stream = stream })
      statistic   = "Maximum"
      comparison  = "GreaterThanThreshold"
      threshold   = var.iterator_age_alarm_ms
      periods     = 3
      missing     = "breaching"
      description = "etl run of ${stream} is more than ${var.iterator_age_alarm_ms} ms behind the tip of a shard (or reports nothing)."
    } },
    { for stream, _ in var.streams : "freshness-${stream}" => {
      metric      = "etl_event_freshness_seconds"
      dimensions  = tomap({ stream = stream })
      statistic   = "Maximum"
      comparison  = "GreaterThanThreshold"
      threshold   = var.freshness_alarm_seconds
      periods     = 3
      missing     = "breaching"
      description = "The newest event of ${stream} committed to the lake is older than ${var.freshness_alarm_seconds} s."
    } },
    { for stream, _ in var.streams : "lake-commit-failures-${stream}" => {
      metric      = "etl_lake_commit_failures_total"
      dimensions  = tomap({ stream = stream })
      statistic   = "Sum"
      comparison  = "GreaterThanThreshold"
      threshold   = 0
      periods     = 1
      missing     = "notBreaching"
      description = "A lake commit of ${stream} failed (S3/Glue errors, or a fenced writer)."
    } },
    { for stream, _ in var.streams : "redshift-pending-${stream}" => {
      metric      = "etl_redshift_batches_pending"
      dimensions  = tomap({ table = stream })
      statistic   = "Minimum"
      comparison  = "GreaterThanThreshold"
      threshold   = var.redshift_pending_alarm_batches
      periods     = 3
      missing     = "breaching"
      description = "More than ${var.redshift_pending_alarm_batches} committed batches of ${stream} wait for the Redshift loader for 15 minutes."
    } },
    { for stream, _ in var.streams : "redshift-permanent-failures-${stream}" => {
      metric      = "etl_redshift_load_failures_total"
      dimensions  = tomap({ table = stream, kind = "permanent" })
      statistic   = "Sum"
      comparison  = "GreaterThanThreshold"
      threshold   = 0
      periods     = 1
      missing     = "notBreaching"
      description = "The Redshift loader stopped on a permanent error for ${stream} (waiting cannot fix it)."
    } },
  )
}

resource "aws_cloudwatch_metric_alarm" "iterator_age" {
  for_each = aws_kinesis_stream.this

  alarm_name          = "${var.name}-${each.key}-iterator-age"
  alarm_description   = "The consumer of ${each.value.name} is more than ${var.iterator_age_alarm_ms} ms behind (Kinesis GetRecords.IteratorAgeMilliseconds)."
  namespace           = "AWS/Kinesis"
  metric_name         = "GetRecords.IteratorAgeMilliseconds"
  dimensions          = { StreamName = each.value.name }
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 3
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.iterator_age_alarm_ms
  treat_missing_data  = "notBreaching"
  alarm_actions       = var.alarm_topic_arns
  ok_actions          = var.alarm_topic_arns
  tags                = local.tags
}

resource "aws_cloudwatch_metric_alarm" "read_throttled" {
  for_each = aws_kinesis_stream.this

  alarm_name          = "${var.name}-${each.key}-read-throttled"
  alarm_description   = "GetRecords calls on ${each.value.name} are throttled for 15 minutes: too many readers per shard, or too few shards."
  namespace           = "AWS/Kinesis"
  metric_name         = "ReadProvisionedThroughputExceeded"
  dimensions          = { StreamName = each.value.name }
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 3
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  treat_missing_data  = "notBreaching"
  alarm_actions       = var.alarm_topic_arns
  ok_actions          = var.alarm_topic_arns
  tags                = local.tags
}

resource "aws_cloudwatch_metric_alarm" "etl" {
  for_each = local.prometheus_alarms

  alarm_name          = "${var.name}-${each.key}"
  alarm_description   = each.value.description
  namespace           = var.prometheus_metrics_namespace
  metric_name         = each.value.metric
  dimensions          = each.value.dimensions
  statistic           = each.value.statistic
  period              = 300
  evaluation_periods  = each.value.periods
  comparison_operator = each.value.comparison
  threshold           = each.value.threshold
  treat_missing_data  = each.value.missing
  alarm_actions       = var.alarm_topic_arns
  ok_actions          = var.alarm_topic_arns
  tags                = local.tags
}
