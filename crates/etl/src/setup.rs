//! Turning arguments and configuration into a ready pipeline.

use crate::cli::{Global, LogFormat};
use anyhow::{bail, Context, Result};
use etl_aws::{AwsClients, AwsSettings};
use etl_glue::GlueCatalog;
use etl_lake::catalog::{Catalog, FileCatalog};
use etl_lake::{Lake, S3Encryption};
use etl_pipeline::{Pipeline, PipelineOptions};
use etl_schema::StreamSchema;
use etl_transform::{MaskKey, Transformer};
use serde::Deserialize;
use std::path::PathBuf;
use std::sync::Arc;

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
    /// Values of the `${…}` placeholders of `dashboards/` for `etl dashboards deploy`; see
    /// `etl_dashboards::deploy::DeployConfig`.
    #[serde(default)]
    pub dashboards: etl_dashboards::deploy::DeployConfig,
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
enum LakeTargetConfig {
    Local(PathBuf),
    S3 {
        location: String,
        encryption: S3Encryption,
        glue_database: Option<String>,
    },
}

impl LakeConfig {
    fn resolve(&self, dir: &std::path::Path) -> Result<LakeTargetConfig> {
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

/// A key that is public (it is in the source): fine for demos, never for real data.
const DEMO_MASK_KEY: &[u8] = b"etl-demo-mask-key-NOT-SECRET-set-ETL_MASK_KEY_FILE";

pub fn init_logging(global: &Global) {
    let filter = tracing_subscriber::EnvFilter::try_new(&global.log)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match global.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

pub struct Setup {
    pub schemas: Vec<StreamSchema>,
    pub options: PipelineOptions,
    /// The local lake directory (`<--dir>/lake`); the lake itself when no S3 location is set.
    pub lake_dir: PathBuf,
    lake_target: LakeTargetConfig,
    aws: AwsSettings,
    /// AWS clients, loaded once when the lake is on S3.
    aws_clients: Option<AwsClients>,
    pub key_is_demo: bool,
    key: MaskKey,
    transform_sql: Vec<etl_transform::TransformSql>,
}

impl Setup {
    pub async fn load(global: &Global) -> Result<Self> {
        let schemas = match &global.schemas {
            Some(dir) => etl_schema::load_dir(dir)?,
            None => etl_schema::embedded()?,
        };
        let transform_sql = match &global.transform_sql {
            Some(dir) => etl_transform::load_sql_dir(dir)?,
            None => etl_transform::embedded_sql(),
        };
        let config = match &global.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read config file {}", path.display()))?;
                toml::from_str::<ConfigFile>(&text)
                    .with_context(|| format!("config file {} is invalid", path.display()))?
            }
            None => ConfigFile::default(),
        };
        let options = config.pipeline;
        options.validate()?;
        let lake_target = config.lake.resolve(&global.dir)?;
        let aws_clients = match &lake_target {
            LakeTargetConfig::S3 { .. } => Some(
                AwsClients::load(&config.aws)
                    .await
                    .context("the [aws] settings of the configuration file")?,
            ),
            LakeTargetConfig::Local(_) => None,
        };
        let (key, key_is_demo) = match &global.mask_key_file {
            Some(path) => {
                let bytes = std::fs::read(path).with_context(|| {
                    format!(
                        "cannot read the masking key file {} (--mask-key-file)",
                        path.display()
                    )
                })?;
                let trimmed = bytes.trim_ascii();
                let key = MaskKey::new(trimmed)
                    .map_err(|e| anyhow::anyhow!("--mask-key-file {}: {e}", path.display()))?;
                (key, false)
            }
            None => (
                MaskKey::new(DEMO_MASK_KEY).map_err(anyhow::Error::msg)?,
                true,
            ),
        };
        if key_is_demo {
            tracing::warn!("phone numbers are masked with the built-in demo key; set --mask-key-file (ETL_MASK_KEY_FILE) for real data");
        }
        Ok(Setup {
            schemas,
            options,
            lake_dir: global.dir.join("lake"),
            lake_target,
            aws: config.aws,
            aws_clients,
            key_is_demo,
            key,
            transform_sql,
        })
    }

    /// The lake: on S3 when `lake.location` is set, else the local directory.
    pub fn lake(&self) -> Result<Lake> {
        match &self.lake_target {
            LakeTargetConfig::Local(dir) => {
                let location = dir.to_str().context("the --dir path must be valid UTF-8")?;
                Ok(Lake::open(location)?)
            }
            LakeTargetConfig::S3 {
                location,
                encryption,
                ..
            } => Ok(Lake::open_s3(
                location,
                &etl_glue::s3_options(&self.aws, encryption.clone()),
            )?),
        }
    }

    /// The `[aws]` settings of the configuration file (defaults without one).
    pub fn aws_settings(&self) -> &AwsSettings {
        &self.aws
    }

    /// Where the lake is, for messages: a directory or an `s3://` URL.
    pub fn lake_location(&self) -> String {
        match &self.lake_target {
            LakeTargetConfig::Local(dir) => dir.display().to_string(),
            LakeTargetConfig::S3 { location, .. } => location.clone(),
        }
    }

    /// Whether the lake is a local directory (the local warehouse and `etl query` read only those).
    pub fn lake_is_local(&self) -> bool {
        matches!(self.lake_target, LakeTargetConfig::Local(_))
    }

    /// The catalog: Glue when `lake.glue_database` is set, else the file catalog in the lake.
    pub fn catalog(&self, lake: &Lake) -> Arc<dyn Catalog> {
        match (&self.lake_target, &self.aws_clients) {
            (
                LakeTargetConfig::S3 {
                    location,
                    glue_database: Some(database),
                    ..
                },
                Some(clients),
            ) => Arc::new(GlueCatalog::new(clients.glue(), database, location)),
            _ => Arc::new(FileCatalog::new(lake.clone())),
        }
    }

    pub fn pipeline(&self) -> Result<Pipeline> {
        if self.schemas.is_empty() {
            bail!("no stream schemas loaded");
        }
        let lake = self.lake()?;
        let catalog = self.catalog(&lake);
        let transformer =
            Transformer::new(&self.schemas, self.transform_sql.clone(), self.key.clone())?;
        Ok(Pipeline::new(
            self.options.clone(),
            self.schemas.clone(),
            transformer,
            lake,
            catalog,
        )?)
    }
}
