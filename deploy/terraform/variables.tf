# Names and sizes of the AWS side of the etl platform. Every name derives from var.name unless set.

variable "name" {
  description = "Prefix of every resource name, e.g. \"etl-prod\" (lowercase letters, digits and -)."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,30}[a-z0-9]$", var.name))
    error_message = "name must be 3-32 characters of lowercase letters, digits and -, starting with a letter."
  }
}

variable "region" {
  description = "AWS region of every resource (Redshift COPY needs the lake bucket in the warehouse's region)."
  type        = string
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}

# --- Kinesis ------------------------------------------------------------------------------------

variable "streams" {
  description = "The configured streams (schemas/<stream>.toml) and their Kinesis streams: shard count (ignored in ON_DEMAND mode)."
  type = map(object({
    shard_count = number
  }))
  default = {
    app_events  = { shard_count = 4 }
    call_events = { shard_count = 2 }
  }
}

variable "stream_mode" {
  description = "Kinesis capacity mode: PROVISIONED (shard_count per stream) or ON_DEMAND."
  type        = string
  default     = "PROVISIONED"

  validation {
    condition     = contains(["PROVISIONED", "ON_DEMAND"], var.stream_mode)
    error_message = "stream_mode must be PROVISIONED or ON_DEMAND."
  }
}

variable "stream_retention_hours" {
  description = "Kinesis retention (24-8760 h): how long a stopped consumer can stay behind without losing records."
  type        = number
  default     = 168
}

# --- Lake ---------------------------------------------------------------------------------------

variable "lake_bucket_name" {
  description = "Name of the lake bucket; default \"<name>-lake-<account id>\"."
  type        = string
  default     = null
}

variable "lake_prefix" {
  description = "Prefix of the lake inside the bucket (lake.location = s3://<bucket>/<prefix>)."
  type        = string
  default     = "events"
}

variable "raw_archive_glacier_after_days" {
  description = "Days after which raw/ (the archive of what etl run read: the source of backfills) moves to Glacier Instant Retrieval."
  type        = number
  default     = 30
}

variable "raw_archive_expire_after_days" {
  description = "Days after which raw/ objects are deleted (0 = never)."
  type        = number
  default     = 400
}

variable "dead_letters_expire_after_days" {
  description = "Days after which dead-letters/ objects are deleted: replay them (etl dead-letters replay) before."
  type        = number
  default     = 90
}

variable "noncurrent_versions_expire_after_days" {
  description = "Days after which overwritten or deleted object versions are removed (the bucket is versioned)."
  type        = number
  default     = 30
}

variable "access_log_bucket" {
  description = "Existing bucket receiving the lake bucket's S3 server access logs (e.g. the organisation's log archive)."
  type        = string
}

variable "glue_database_name" {
  description = "Glue database of the lake tables (lake.glue_database); default: var.name with - replaced by _."
  type        = string
  default     = null
}

# --- Leases -------------------------------------------------------------------------------------

variable "lease_table_name" {
  description = "DynamoDB shard lease table (planned, issue 13); default \"<name>-leases\"."
  type        = string
  default     = null
}

# --- Warehouse ----------------------------------------------------------------------------------

variable "redshift_database" {
  description = "Database of the Redshift Serverless namespace (etl warehouse --database)."
  type        = string
  default     = "analytics"
}

variable "redshift_base_capacity" {
  description = "Redshift Serverless base capacity in RPUs (8-1024, steps of 8)."
  type        = number
  default     = 8
}

variable "redshift_max_capacity" {
  description = "Redshift Serverless maximum capacity in RPUs (caps the cost of load spikes)."
  type        = number
  default     = 64
}

variable "subnet_ids" {
  description = "Private subnets of the Redshift Serverless workgroup (at least 3, in different AZs)."
  type        = list(string)
}

variable "redshift_security_group_ids" {
  description = "Security groups of the Redshift Serverless workgroup."
  type        = list(string)
}

variable "athena_principal_arns" {
  description = "IAM principals (e.g. the QuickSight service role, analysts' roles) allowed to assume the Athena role."
  type        = list(string)
  default     = []
}

# --- Where etl runs ----------------------------------------------------------------------------

variable "eks_oidc_provider_arn" {
  description = "IAM OIDC provider ARN of the EKS cluster (IRSA); null when etl does not run on EKS."
  type        = string
  default     = null
}

variable "eks_namespace" {
  description = "Kubernetes namespace of the etl ServiceAccounts (etl-consumer, etl-loader)."
  type        = string
  default     = "etl"
}

variable "ecs_enabled" {
  description = "Whether etl runs on ECS: trust ecs-tasks.amazonaws.com, create the execution role, the config parameter and the log group."
  type        = bool
  default     = false
}

variable "log_retention_days" {
  description = "Retention of the ECS log group."
  type        = number
  default     = 400
}

# --- Alarms -------------------------------------------------------------------------------------

variable "alarm_topic_arns" {
  description = "SNS topics notified when an alarm fires or recovers."
  type        = list(string)
  default     = []
}

variable "prometheus_metrics_namespace" {
  description = "CloudWatch namespace into which a CloudWatch agent (Prometheus scraping) publishes etl's /metrics; null = no alarms on etl's own metrics (the Kinesis-native ones stay)."
  type        = string
  default     = null
}

variable "iterator_age_alarm_ms" {
  description = "Alarm when a stream's oldest unread record is older than this (GetRecords.IteratorAgeMilliseconds, and etl_kinesis_millis_behind_latest)."
  type        = number
  default     = 300000
}

variable "freshness_alarm_seconds" {
  description = "Alarm when the newest committed event of a stream is older than this (etl_event_freshness_seconds)."
  type        = number
  default     = 900
}

variable "redshift_pending_alarm_batches" {
  description = "Alarm when more committed batches than this wait for the Redshift loader (etl_redshift_batches_pending)."
  type        = number
  default     = 100
}
