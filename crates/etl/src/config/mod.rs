//! The configuration file (`--config`): one TOML file with a section per part (`[pipeline]`,
//! `[lake]`, `[aws]`, `[kinesis]`, `[leases]`, `[warehouse.redshift]`, `[observability]`, `[dashboards]`, `[athena]`, `[compaction]`), every field documented
//! on its struct, unknown keys refused,
//! and `ETL_<SECTION>__<FIELD>` environment variables overriding fields.

pub mod compaction;

use anyhow::{bail, Context, Result};
use etl_aws::AwsSettings;
use etl_lake::S3Encryption;
use etl_pipeline::PipelineOptions;
use serde::Deserialize;
use std::path::PathBuf;

pub mod athena;
pub mod leases;

/// The optional configuration file (`--config`). Unknown keys are refused.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// Batching, dedup and Parquet options; see `PipelineOptions`.
    #[serde(default)]
    pub pipeline: PipelineOptions,
    /// Where the lake and its catalog live. Default: a local lake under `<--dir>/lake` with the
    /// file catalog inside it.
    #[serde(default)]
    pub lake: LakeConfig,
    /// How to reach AWS (region, endpoint override, credentials, retries) for the S3 lake and
    /// Glue; see `etl_aws::AwsSettings`. Default: region us-east-1, the SDK's credential chain.
    #[serde(default)]
    pub aws: AwsSettings,
    /// The listener of `/metrics`, `/healthz` and `/readyz` of the long-running commands; see
    /// `crate::observe::ObservabilityConfig`. Default: `0.0.0.0:9464` for `etl run` and `etl
    /// warehouse load --follow`, none for the other commands.
    #[serde(default)]
    pub observability: crate::observe::ObservabilityConfig,
    /// Values of the `${…}` placeholders of `dashboards/` for `etl dashboards deploy`; see
    /// `etl_dashboards::deploy::DeployConfig`.
    #[serde(default)]
    pub dashboards: etl_dashboards::deploy::DeployConfig,
    /// The warehouse `etl warehouse migrate|load|status` work on; see [`WarehouseConfig`].
    #[serde(default)]
    pub warehouse: WarehouseConfig,
    /// The Kinesis streams `etl run` consumes (and `etl produce` writes to) and how it reads
    /// them; see [`KinesisConfig`].
    #[serde(default)]
    pub kinesis: KinesisConfig,
    /// How `etl compact` merges small files; see [`compaction::CompactionConfig`].
    #[serde(default)]
    pub compaction: compaction::CompactionConfig,
    /// Where `etl query --engine athena` runs and the partition projection of the Glue
    /// tables; see [`athena::AthenaConfig`].
    #[serde(default)]
    pub athena: athena::AthenaConfig,
    /// Shard leases in DynamoDB, so several `etl run` processes share the shards; off unless
    /// `table` is set; see [`leases::LeasesConfig`] and `docs/leases.md`.
    #[serde(default)]
    pub leases: leases::LeasesConfig,
}

/// `[kinesis]` of the configuration file.
///
/// ```toml
/// [kinesis]
/// streams = { app_events = "app-events-prod", call_events = "call-events-prod" }
/// start = "trim-horizon"      # or "latest" or "at:<epoch ms>"
/// batch_max_ms = 1000
/// raw_archive = true
/// ```
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KinesisConfig {
    /// Pipeline stream (a schema's `stream`) → the Kinesis stream it is read from. Any stream
    /// with a schema and a transform can be named. `--stream NAME=KINESIS_STREAM` adds or
    /// replaces entries. Default: none.
    #[serde(default)]
    pub streams: std::collections::BTreeMap<String, String>,
    /// Where a shard without a committed position starts: `trim-horizon`, `latest` or
    /// `at:<epoch ms>`. Default: [`DEFAULT_KINESIS_START`].
    #[serde(default = "default_kinesis_start")]
    pub start: String,
    /// A batch is committed at the latest this many milliseconds after its first record.
    /// Default: [`DEFAULT_BATCH_MAX_MS`].
    #[serde(default = "default_batch_max_ms")]
    pub batch_max_ms: u64,
    /// Also archive each batch's raw records (gzip NDJSON under `raw/`, in the same commit: the
    /// source for backfills). Default: `true`.
    #[serde(default = "default_true")]
    pub raw_archive: bool,
}

/// `[warehouse]` of the configuration file.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WarehouseConfig {
    /// The Redshift target; see [`RedshiftConfig`].
    #[serde(default)]
    pub redshift: RedshiftConfig,
}

/// `[warehouse.redshift]` of the configuration file: where `etl warehouse migrate`, `load` and
/// `status` run their statements (through the Redshift Data API). The command-line flags
/// (`--cluster-id`, `--workgroup`, …, and their `ETL_REDSHIFT_*` variables) override it.
///
/// ```toml
/// [warehouse.redshift]
/// workgroup = "analytics"          # Serverless; or cluster_id = "…" with db_user or secret_arn
/// database = "dev"
/// schema = "analytics"
/// iam_role_arn = "arn:aws:iam::123456789012:role/etl-redshift-copy"   # COPY reads the lake with it (load only)
/// load_interval_secs = 2
/// load_group_max_batches = 50      # pending batches of a table per load transaction
/// ```
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedshiftConfig {
    /// Provisioned cluster id (with `db_user` or `secret_arn`). Default: none.
    #[serde(default)]
    pub cluster_id: Option<String>,
    /// Serverless workgroup name (instead of `cluster_id`). Default: none.
    #[serde(default)]
    pub workgroup: Option<String>,
    /// Database user for temporary credentials (clusters only). Default: none.
    #[serde(default)]
    pub db_user: Option<String>,
    /// Secrets Manager secret with the database credentials. Default: none.
    #[serde(default)]
    pub secret_arn: Option<String>,
    /// Database name. Default: [`DEFAULT_REDSHIFT_DATABASE`].
    #[serde(default = "default_redshift_database")]
    pub database: String,
    /// Schema of the lake tables, the load ledger and the views. Default:
    /// [`DEFAULT_REDSHIFT_SCHEMA`].
    #[serde(default = "default_redshift_schema")]
    pub schema: String,
    /// IAM role Redshift assumes to read the lake (`COPY … IAM_ROLE`); `etl warehouse load`
    /// needs it, `migrate` and `status` do not. Default: none.
    #[serde(default)]
    pub iam_role_arn: Option<String>,
    /// Seconds between passes of `etl warehouse load --follow`. Default: the loader's
    /// `DEFAULT_INTERVAL`.
    #[serde(default = "default_load_interval_secs")]
    pub load_interval_secs: u64,
    /// Seconds one statement may run before it counts as failed. Default:
    /// [`DEFAULT_STATEMENT_TIMEOUT_SECS`].
    #[serde(default = "default_statement_timeout_secs")]
    pub statement_timeout_secs: u64,
    /// Most pending batches of a table loaded in one transaction (one COPY, one MERGE);
    /// 1 loads batch by batch. Default: the loader's `DEFAULT_GROUP_MAX_BATCHES` (50).
    #[serde(default = "default_group_max_batches")]
    pub load_group_max_batches: usize,
    /// Most rows in one grouped load. Default: the loader's `DEFAULT_GROUP_MAX_ROWS`
    /// (5,000,000).
    #[serde(default = "default_group_max_rows")]
    pub load_group_max_rows: u64,
    /// Most Parquet bytes in one grouped load. Default: the loader's
    /// `DEFAULT_GROUP_MAX_BYTES` (1 GiB).
    #[serde(default = "default_group_max_bytes")]
    pub load_group_max_bytes: u64,
}

/// Default of `warehouse.redshift.database`.
pub const DEFAULT_REDSHIFT_DATABASE: &str = "dev";
/// Default of `warehouse.redshift.schema`.
pub const DEFAULT_REDSHIFT_SCHEMA: &str = "analytics";
/// Default of `warehouse.redshift.statement_timeout_secs`.
pub const DEFAULT_STATEMENT_TIMEOUT_SECS: u64 = 3600;

fn default_redshift_database() -> String {
    DEFAULT_REDSHIFT_DATABASE.into()
}
fn default_redshift_schema() -> String {
    DEFAULT_REDSHIFT_SCHEMA.into()
}
fn default_load_interval_secs() -> u64 {
    etl_redshift::loader::DEFAULT_INTERVAL.as_secs()
}
fn default_statement_timeout_secs() -> u64 {
    DEFAULT_STATEMENT_TIMEOUT_SECS
}
fn default_group_max_batches() -> usize {
    etl_redshift::loader::DEFAULT_GROUP_MAX_BATCHES
}
fn default_group_max_rows() -> u64 {
    etl_redshift::loader::DEFAULT_GROUP_MAX_ROWS
}
fn default_group_max_bytes() -> u64 {
    etl_redshift::loader::DEFAULT_GROUP_MAX_BYTES
}

impl Default for RedshiftConfig {
    fn default() -> Self {
        RedshiftConfig {
            cluster_id: None,
            workgroup: None,
            db_user: None,
            secret_arn: None,
            database: default_redshift_database(),
            schema: default_redshift_schema(),
            iam_role_arn: None,
            load_interval_secs: default_load_interval_secs(),
            statement_timeout_secs: default_statement_timeout_secs(),
            load_group_max_batches: default_group_max_batches(),
            load_group_max_rows: default_group_max_rows(),
            load_group_max_bytes: default_group_max_bytes(),
        }
    }
}

/// Default of `kinesis.start`.
pub const DEFAULT_KINESIS_START: &str = "trim-horizon";
/// Default of `kinesis.batch_max_ms`.
pub const DEFAULT_BATCH_MAX_MS: u64 = 1_000;

fn default_kinesis_start() -> String {
    DEFAULT_KINESIS_START.into()
}
fn default_batch_max_ms() -> u64 {
    DEFAULT_BATCH_MAX_MS
}
fn default_true() -> bool {
    true
}

impl Default for KinesisConfig {
    fn default() -> Self {
        KinesisConfig {
            streams: Default::default(),
            start: default_kinesis_start(),
            batch_max_ms: default_batch_max_ms(),
            raw_archive: true,
        }
    }
}

/// Prefix of the environment variables that override fields of the configuration file:
/// `ETL_<SECTION>__<FIELD>` (two underscores between levels), e.g. `ETL_PIPELINE__PARALLELISM=4`
/// or `ETL_KINESIS__STREAMS__APP_EVENTS=app-events-prod`. The value is read as a TOML value
/// (number, boolean, `[list]`, `{table}`), and as text when it is not one.
pub const ENV_PREFIX: &str = "ETL_";

impl ConfigFile {
    /// Parses `text` (from `origin`), then applies the `ETL_<SECTION>__<FIELD>` variables of
    /// `env`. Unknown keys, also through a variable, are refused with their name.
    pub fn parse(
        text: &str,
        origin: &str,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self> {
        let mut value: toml::Table = toml::from_str(text)
            .with_context(|| format!("config file {origin} is not valid TOML"))?;
        let mut applied = Vec::new();
        for (name, raw) in env {
            let Some(path) = name.strip_prefix(ENV_PREFIX) else {
                continue;
            };
            // ETL_DIR, ETL_CONFIG, ETL_LOG… are command-line options, not fields.
            if !path.contains("__") {
                continue;
            }
            let keys: Vec<String> = path.split("__").map(str::to_ascii_lowercase).collect();
            set_path(&mut value, &keys, parse_env_value(&raw))
                .with_context(|| format!("environment variable {name}"))?;
            applied.push(name);
        }
        let config: ConfigFile = value.try_into().with_context(|| {
            if applied.is_empty() {
                format!("config file {origin} is invalid")
            } else {
                format!(
                    "config file {origin} with the environment overrides {} is invalid",
                    applied.join(", ")
                )
            }
        })?;
        Ok(config)
    }
}

fn parse_env_value(raw: &str) -> toml::Value {
    toml::from_str::<toml::Table>(&format!("v = {raw}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_string()))
}

fn set_path(table: &mut toml::Table, keys: &[String], value: toml::Value) -> Result<()> {
    let Some((last, parents)) = keys.split_last() else {
        bail!("names no field");
    };
    let mut at = table;
    for key in parents {
        let entry = at
            .entry(key.clone())
            .or_insert_with(|| toml::Value::Table(Default::default()));
        at = entry
            .as_table_mut()
            .with_context(|| format!("`{key}` is a value, not a section"))?;
    }
    at.insert(last.clone(), value);
    Ok(())
}

/// `[lake]` of the configuration file.
///
/// ```toml
/// [lake]
/// location = "s3://analytics-lake/events"   # default: <--dir>/lake on local disk
/// encryption = "kms"                         # "bucket-default" (default) | "s3" | "kms"
/// kms_key_id = "alias/analytics-lake"        # with encryption = "kms"
/// glue_database = "analytics"                # tables and partitions in Glue (what Athena reads)
/// ```
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LakeConfig {
    /// `s3://bucket/prefix` of an S3 lake. Default: none, i.e. the local directory `<--dir>/lake`.
    #[serde(default)]
    pub location: Option<String>,
    /// Server-side encryption of the objects written to an S3 lake. Default: `bucket-default`.
    #[serde(default)]
    pub encryption: LakeEncryption,
    /// KMS key id, alias or ARN; required with `encryption = "kms"`, refused otherwise.
    #[serde(default)]
    pub kms_key_id: Option<String>,
    /// Glue database of the lake's tables. Default: none, i.e. the file catalog inside the lake.
    /// Requires an S3 `location` (Athena reads S3 only).
    #[serde(default)]
    pub glue_database: Option<String>,
}

/// `lake.encryption`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LakeEncryption {
    /// Whatever the bucket's default encryption does (at least SSE-S3 on AWS).
    #[default]
    BucketDefault,
    /// SSE-S3 requested on every write.
    S3,
    /// SSE-KMS with `lake.kms_key_id`.
    Kms,
}

/// The lake location after validation.
#[derive(Debug, Clone)]
pub(crate) enum LakeTargetConfig {
    Local(PathBuf),
    S3 {
        location: String,
        encryption: S3Encryption,
        glue_database: Option<String>,
    },
}

impl LakeConfig {
    pub(crate) fn resolve(&self, dir: &std::path::Path) -> Result<LakeTargetConfig> {
        let encryption = match (self.encryption, &self.kms_key_id) {
            (LakeEncryption::Kms, Some(key_id)) if !key_id.trim().is_empty() => S3Encryption::Kms {
                key_id: key_id.clone(),
            },
            (LakeEncryption::Kms, _) => {
                bail!(
                    "lake.encryption = \"kms\" needs lake.kms_key_id (a KMS key id, alias or ARN)"
                )
            }
            (_, Some(_)) => {
                bail!("lake.kms_key_id is set but lake.encryption is not \"kms\": set encryption = \"kms\" or remove kms_key_id")
            }
            (LakeEncryption::S3, None) => S3Encryption::S3Managed,
            (LakeEncryption::BucketDefault, None) => S3Encryption::BucketDefault,
        };
        match &self.location {
            Some(location) if location.starts_with("s3://") => {
                etl_lake::parse_s3_url(location)
                    .map_err(|e| anyhow::anyhow!("lake.location: {e}"))?;
                if let Some(db) = &self.glue_database {
                    if db.is_empty() || !db.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_') {
                        bail!("lake.glue_database {db:?} is not a valid Glue database name: use lowercase letters, digits and _");
                    }
                }
                Ok(LakeTargetConfig::S3 {
                    location: location.trim_end_matches('/').to_string(),
                    encryption,
                    glue_database: self.glue_database.clone(),
                })
            }
            Some(other) => bail!(
                "lake.location {other:?} is not an s3:// URL: write s3://bucket/prefix, or remove it to use the local lake under --dir"
            ),
            None => {
                if self.glue_database.is_some() {
                    bail!("lake.glue_database needs an S3 lake: set lake.location = \"s3://bucket/prefix\" (Athena reads S3 only)");
                }
                if self.encryption != LakeEncryption::BucketDefault {
                    bail!("lake.encryption applies to S3 lakes only: set lake.location or remove encryption");
                }
                Ok(LakeTargetConfig::Local(dir.join("lake")))
            }
        }
    }
}

#[cfg(test)]
mod tests;
