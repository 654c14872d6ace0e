//! Turning arguments and configuration into a ready pipeline.

use crate::cli::{Global, LogFormat};
use anyhow::{bail, Context, Result};
use etl_lake::catalog::FileCatalog;
use etl_lake::Lake;
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
    pub lake_dir: PathBuf,
    pub key_is_demo: bool,
    key: MaskKey,
    transform_sql: Vec<etl_transform::TransformSql>,
}

impl Setup {
    pub fn load(global: &Global) -> Result<Self> {
        let schemas = match &global.schemas {
            Some(dir) => etl_schema::load_dir(dir)?,
            None => etl_schema::embedded()?,
        };
        let transform_sql = match &global.transform_sql {
            Some(dir) => etl_transform::load_sql_dir(dir)?,
            None => etl_transform::embedded_sql(),
        };
        let options = match &global.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read config file {}", path.display()))?;
                let config: ConfigFile = toml::from_str(&text)
                    .with_context(|| format!("config file {} is invalid", path.display()))?;
                config.pipeline
            }
            None => PipelineOptions::default(),
        };
        options.validate()?;
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
            key_is_demo,
            key,
            transform_sql,
        })
    }

    pub fn lake(&self) -> Result<Lake> {
        let location = self
            .lake_dir
            .to_str()
            .context("the --dir path must be valid UTF-8")?;
        Ok(Lake::open(location)?)
    }

    pub fn pipeline(&self) -> Result<Pipeline> {
        if self.schemas.is_empty() {
            bail!("no stream schemas loaded");
        }
        let lake = self.lake()?;
        let catalog = Arc::new(FileCatalog::new(lake.clone()));
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
