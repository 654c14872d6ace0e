//! Turning arguments and configuration into a ready pipeline.

use crate::cli::{Global, LogFormat};
use crate::config::{ConfigFile, KinesisConfig, LakeTargetConfig, WarehouseConfig};
use anyhow::{bail, Context, Result};
use etl_aws::{AwsClients, AwsSettings};
use etl_glue::GlueCatalog;
use etl_lake::catalog::{Catalog, FileCatalog};
use etl_lake::Lake;
use etl_pipeline::{Pipeline, PipelineOptions};
use etl_schema::StreamSchema;
use etl_transform::{MaskKey, Transformer};
use std::path::PathBuf;
use std::sync::Arc;

/// A key that is public (it is in the source): fine for demos, never for real data.
const DEMO_MASK_KEY: &[u8] = b"etl-demo-mask-key-NOT-SECRET-set-ETL_MASK_KEY_FILE";

/// Logs on stderr: JSON lines (one object per event, its fields at the top level, the current
/// span's fields under `span`) with `--log-format json` or when stderr is not a terminal;
/// otherwise text, with colours only on a terminal. Whatever `--log` says, trace events of the
/// AWS SDK and the HTTP crates are not written: they hold whole request and response bodies
/// (the Redshift secret ARN, SQL parameters).
pub fn init_logging(global: &Global) {
    use std::io::IsTerminal;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter = tracing_subscriber::EnvFilter::try_new(&global.log)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let no_wire_dumps = tracing_subscriber::filter::filter_fn(|meta| {
        *meta.level() != tracing::Level::TRACE
            || !["aws_", "hyper", "h2", "rustls"]
                .iter()
                .any(|p| meta.target().starts_with(p))
    });
    let terminal = std::io::stderr().is_terminal();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(terminal);
    let json = match global.log_format {
        LogFormat::Json => true,
        LogFormat::Text => false,
        LogFormat::Auto => !terminal,
    };
    if json {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .finish()
            .with(no_wire_dumps)
            .init();
    } else {
        builder.finish().with(no_wire_dumps).init();
    }
}

pub struct Setup {
    pub schemas: Vec<StreamSchema>,
    pub options: PipelineOptions,
    /// The local lake directory (`<--dir>/lake`); the lake itself when no S3 location is set.
    pub lake_dir: PathBuf,
    lake_target: LakeTargetConfig,
    aws: AwsSettings,
    /// `[kinesis]` of the configuration file.
    pub kinesis: KinesisConfig,
    /// `[leases]` of the configuration file.
    pub leases: crate::config::leases::LeasesConfig,
    /// `[warehouse]` of the configuration file.
    pub warehouse: WarehouseConfig,
    /// `[dashboards]` of the configuration file (placeholders of `etl dashboards deploy`).
    pub dashboards: etl_dashboards::deploy::DeployConfig,
    /// AWS clients, loaded once when the lake is on S3.
    aws_clients: Option<AwsClients>,
    pub key_is_demo: bool,
    /// `[observability]` of the configuration file.
    pub observability: crate::observe::ObservabilityConfig,
    /// `[compaction]` of the configuration file.
    pub compaction: crate::config::compaction::CompactionConfig,
    /// `[athena]` of the configuration file.
    pub athena: crate::config::athena::AthenaConfig,
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
        let (text, origin) = match &global.config {
            Some(path) => (
                std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read config file {}", path.display()))?,
                path.display().to_string(),
            ),
            None => (String::new(), "(none)".to_string()),
        };
        let config = ConfigFile::parse(
            &text,
            &origin,
            std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))),
        )?;
        let options = config.pipeline;
        options.validate()?;
        let lake_target = config.lake.resolve(&global.dir)?;
        config.observability.address(None)?;
        config.athena.validate()?;
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
            kinesis: config.kinesis,
            leases: config.leases,
            warehouse: config.warehouse,
            dashboards: config.dashboards,
            aws_clients,
            key_is_demo,
            observability: config.observability,
            compaction: config.compaction,
            athena: config.athena,
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

    /// `lake.glue_database`, when the lake is on S3 with Glue.
    pub fn glue_database(&self) -> Option<&str> {
        match &self.lake_target {
            LakeTargetConfig::S3 { glue_database, .. } => glue_database.as_deref(),
            LakeTargetConfig::Local(_) => None,
        }
    }

    /// The lake for the local query engine: the directory, or the S3 location with the lake's
    /// endpoint and credentials.
    pub fn local_query_lake(&self) -> etl_query::local::LocalLake {
        match &self.lake_target {
            LakeTargetConfig::Local(dir) => etl_query::local::LocalLake::Dir(dir.clone()),
            LakeTargetConfig::S3 {
                location,
                encryption,
                ..
            } => etl_query::local::LocalLake::S3 {
                location: location.clone(),
                options: match &self.aws_clients {
                    Some(clients) => {
                        etl_glue::s3_options_for(clients, &self.aws, encryption.clone())
                    }
                    None => etl_glue::s3_options(&self.aws, encryption.clone()),
                },
            },
        }
    }

    /// AWS clients: the ones loaded for the S3 lake, or loaded now from `[aws]`.
    pub async fn aws_clients(&self) -> Result<AwsClients> {
        match &self.aws_clients {
            Some(c) => Ok(c.clone()),
            None => AwsClients::load(&self.aws)
                .await
                .context("the [aws] settings of the configuration file"),
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
            ) => {
                let glue = GlueCatalog::new(clients.glue(), database, location);
                match self.athena.projection() {
                    Some(projection) => Arc::new(glue.with_projection(projection)),
                    None => Arc::new(glue),
                }
            }
            _ => Arc::new(FileCatalog::new(lake.clone())),
        }
    }

    /// The Glue catalog when `lake.glue_database` is set (what `etl compact` switches partition
    /// locations in).
    pub fn glue_catalog(&self) -> Option<GlueCatalog> {
        match (&self.lake_target, &self.aws_clients) {
            (
                LakeTargetConfig::S3 {
                    location,
                    glue_database: Some(database),
                    ..
                },
                Some(clients),
            ) => Some(GlueCatalog::new(clients.glue(), database, location)),
            _ => None,
        }
    }

    pub fn pipeline(&self) -> Result<Pipeline> {
        self.pipeline_with(self.options.clone())
    }

    /// A pipeline with other batching or parallelism than the configuration's.
    pub fn pipeline_with(&self, options: PipelineOptions) -> Result<Pipeline> {
        if self.schemas.is_empty() {
            bail!("no stream schemas loaded");
        }
        let lake = self.lake()?;
        let catalog = self.catalog(&lake);
        let transformer =
            Transformer::new(&self.schemas, self.transform_sql.clone(), self.key.clone())?;
        Ok(Pipeline::new(
            options,
            self.schemas.clone(),
            transformer,
            lake,
            catalog,
        )?)
    }
}

impl Setup {
    /// The schema of stream `name`; the error lists the known streams (`flag` names the option).
    pub fn stream_schema(&self, flag: &str, name: &str) -> Result<&StreamSchema> {
        self.schemas
            .iter()
            .find(|s| s.stream == name)
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "{flag} {name}: no such stream; known: {}",
                    self.schemas
                        .iter()
                        .map(|s| s.stream.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })
    }

    /// What a batch's output depends on besides its input, for `stream`: the schema, the
    /// transform SQL and the masking key (as the HMAC of a fixed text, which names the key
    /// without revealing it). `etl backfill` derives its revisions from it.
    pub fn transform_fingerprint(&self, stream: &str) -> String {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        for schema in self.schemas.iter().filter(|s| s.stream == stream) {
            h.update(format!("{schema:?}").as_bytes());
        }
        for sql in self.transform_sql.iter().filter(|s| s.stream == stream) {
            h.update(sql.sql.as_bytes());
        }
        h.update(self.key.mask("etl backfill fingerprint").as_bytes());
        hex::encode(h.finalize())
    }
}
