//! `etl warehouse migrate` (tables, ledger and curated views on Redshift through the Data API),
//! `etl warehouse load` (every committed lake batch not yet in the load ledger, once or
//! continuously with `--follow`) and `etl warehouse status` (per table: loaded up to, pending
//! batches, why a table stopped).

use crate::setup::Setup;
use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use etl_lake::{Lake, S3Encryption};
use etl_redshift::{
    DataApiTarget, Loader, LoaderSettings, PollSettings, RedshiftDataWarehouse, RedshiftSettings,
};
use std::sync::Arc;
use std::time::Duration;

/// `etl warehouse …`.
#[derive(Debug, Subcommand)]
pub enum WarehouseCommand {
    /// Create or extend the Redshift tables and the load ledger from the schemas (additive
    /// only), then (re)create the curated views in dependency order. Idempotent.
    Migrate(MigrateArgs),
    /// Load every committed lake batch (`_commits/`) that is not yet in the load ledger.
    Load(LoadArgs),
    /// Per table: batches loaded and the last one, batches pending, and the error that stopped
    /// the table's loading, if any (docs/redshift.md, "A table stopped loading").
    Status(StatusArgs),
}

/// `etl warehouse status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub redshift: RedshiftArgs,
    /// The lake: `s3://bucket/prefix`. Default: `lake.location` of the configuration file.
    #[arg(long, env = "ETL_LAKE_URL")]
    pub lake: Option<String>,
    /// Tables to show; default: every schema.
    #[arg(long = "stream")]
    pub streams: Vec<String>,
    /// Print JSON (one object per table) instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Where the Data API runs statements: `[warehouse.redshift]` of the configuration file, with
/// these overrides.
#[derive(Debug, Args)]
pub struct RedshiftArgs {
    /// Provisioned cluster id (with --db-user or --secret-arn).
    #[arg(long, env = "ETL_REDSHIFT_CLUSTER_ID")]
    pub cluster_id: Option<String>,
    /// Serverless workgroup name (instead of --cluster-id).
    #[arg(long, env = "ETL_REDSHIFT_WORKGROUP")]
    pub workgroup: Option<String>,
    /// Database user for temporary credentials (clusters only).
    #[arg(long, env = "ETL_REDSHIFT_DB_USER")]
    pub db_user: Option<String>,
    /// Secrets Manager secret with the database credentials.
    #[arg(long, env = "ETL_REDSHIFT_SECRET_ARN")]
    pub secret_arn: Option<String>,
    /// Database name (default: `warehouse.redshift.database`, else dev).
    #[arg(long, env = "ETL_REDSHIFT_DATABASE")]
    pub database: Option<String>,
    /// Schema of the lake tables, the load ledger and the views (default:
    /// `warehouse.redshift.schema`, else analytics).
    #[arg(long, env = "ETL_REDSHIFT_SCHEMA")]
    pub schema: Option<String>,
    /// AWS region (default: `aws.region` of the configuration file).
    #[arg(long, env = "AWS_REGION")]
    pub aws_region: Option<String>,
    /// Endpoint override of the Redshift Data API (e.g. a local stand-in).
    #[arg(long)]
    pub redshift_endpoint_url: Option<String>,
    /// Endpoint override of S3 (e.g. a local stand-in; path-style addressing is used then).
    #[arg(long)]
    pub s3_endpoint_url: Option<String>,
    /// Seconds a single statement may run before it counts as failed (default:
    /// `warehouse.redshift.statement_timeout_secs`, else 3600).
    #[arg(long)]
    pub statement_timeout_secs: Option<u64>,
}

/// `etl warehouse migrate`.
#[derive(Debug, Args)]
pub struct MigrateArgs {
    #[command(flatten)]
    pub redshift: RedshiftArgs,
}

/// `etl warehouse load`.
#[derive(Debug, Args)]
pub struct LoadArgs {
    #[command(flatten)]
    pub redshift: RedshiftArgs,
    /// The lake: `s3://bucket/prefix` (Redshift COPY reads S3 only). Default: `lake.location`
    /// of the configuration file.
    #[arg(long, env = "ETL_LAKE_URL")]
    pub lake: Option<String>,
    /// IAM role Redshift assumes to read the lake (COPY … IAM_ROLE); default:
    /// `warehouse.redshift.iam_role_arn`.
    #[arg(long, env = "ETL_REDSHIFT_IAM_ROLE_ARN")]
    pub iam_role_arn: Option<String>,
    /// Where load manifests are written (default: `<lake>/_load_manifests`).
    #[arg(long)]
    pub manifest_prefix: Option<String>,
    /// Streams (tables) to load; default: every schema.
    #[arg(long = "stream")]
    pub streams: Vec<String>,
    /// Keep loading new batches until SIGTERM / Ctrl-C.
    #[arg(long)]
    pub follow: bool,
    /// Seconds between passes with --follow (default: `warehouse.redshift.load_interval_secs`).
    #[arg(long)]
    pub interval_secs: Option<u64>,
    /// Most pending batches of a table per load transaction (default:
    /// `warehouse.redshift.load_group_max_batches`, else 50; 1 loads batch by batch).
    #[arg(long)]
    pub group_max_batches: Option<usize>,
    /// Without --follow: attempts per step while the warehouse is unavailable before giving up
    /// (with --follow the loader retries forever). A batch is never skipped.
    #[arg(long, default_value_t = 10)]
    pub attempts: u32,
    /// `IP:port` of the /metrics, /healthz and /readyz listener of --follow, or `off`; overrides
    /// `observability.listen` of the configuration file (default 0.0.0.0:9464). Without
    /// --follow nothing listens.
    #[arg(long, env = "ETL_METRICS_LISTEN")]
    pub metrics_listen: Option<String>,
}

/// An IAM role ARN that migrate never uses (it runs no COPY) but the settings require.
pub(crate) const MIGRATE_ONLY_ROLE: &str =
    "arn:aws:iam::000000000000:role/etl-migrate-runs-no-copy";

impl RedshiftArgs {
    /// The schema: `--schema`, else `warehouse.redshift.schema`.
    fn schema(&self, setup: &Setup) -> String {
        self.schema
            .clone()
            .unwrap_or_else(|| setup.warehouse.redshift.schema.clone())
    }

    fn settings(
        &self,
        setup: &Setup,
        iam_role_arn: &str,
        manifest_prefix: &str,
    ) -> RedshiftSettings {
        let config = &setup.warehouse.redshift;
        let pick =
            |flag: &Option<String>, field: &Option<String>| flag.clone().or_else(|| field.clone());
        RedshiftSettings {
            target: DataApiTarget {
                cluster_identifier: pick(&self.cluster_id, &config.cluster_id),
                workgroup_name: pick(&self.workgroup, &config.workgroup),
                db_user: pick(&self.db_user, &config.db_user),
                secret_arn: pick(&self.secret_arn, &config.secret_arn),
                database: self
                    .database
                    .clone()
                    .unwrap_or_else(|| config.database.clone()),
            },
            schema: self.schema(setup),
            iam_role_arn: iam_role_arn.to_string(),
            manifest_prefix: manifest_prefix.to_string(),
            poll: PollSettings {
                timeout_ms: self
                    .statement_timeout_secs
                    .unwrap_or(config.statement_timeout_secs)
                    .saturating_mul(1000),
                ..PollSettings::default()
            },
            // The loader retries failed loads itself (with backoff, forever with --follow).
            load_attempts: 1,
            load_retry_initial_ms: 1_000,
        }
    }

    /// The `[aws]` settings of the configuration file with this command's overrides.
    fn aws(&self, setup: &Setup, endpoint: &Option<String>) -> etl_aws::AwsSettings {
        let mut settings = setup.aws_settings().clone();
        if let Some(region) = &self.aws_region {
            settings.region = region.clone();
        }
        if let Some(url) = endpoint {
            settings.endpoint_url = Some(url.clone());
            settings.force_path_style = true;
        }
        settings
    }

    pub(crate) async fn warehouse(
        &self,
        setup: &Setup,
        iam_role_arn: &str,
        manifest_prefix: &str,
    ) -> Result<RedshiftDataWarehouse> {
        let redshift =
            etl_aws::AwsClients::load(&self.aws(setup, &self.redshift_endpoint_url)).await?;
        let s3 = etl_aws::AwsClients::load(&self.aws(setup, &self.s3_endpoint_url)).await?;
        Ok(RedshiftDataWarehouse::with_clients(
            self.settings(setup, iam_role_arn, manifest_prefix),
            redshift.redshift_data(),
            s3.s3(),
            &setup.schemas,
        )?)
    }
}

/// Runs `etl warehouse <command>`.
pub async fn run(
    setup: &Setup,
    views: Option<&std::path::Path>,
    command: WarehouseCommand,
) -> Result<()> {
    match command {
        WarehouseCommand::Migrate(args) => migrate(setup, views, args).await,
        WarehouseCommand::Load(args) => load(setup, args).await,
        WarehouseCommand::Status(args) => status(setup, args).await,
    }
}

/// The S3 lake to load: `--lake`, else `lake.location` of the configuration file.
fn lake_url(setup: &Setup, lake: &Option<String>) -> Result<String> {
    let lake_url = match lake {
        Some(url) => url.clone(),
        None if !setup.lake_is_local() => setup.lake_location(),
        None => bail!(
            "name the S3 lake to load: --lake s3://bucket/prefix, or lake.location in the configuration file"
        ),
    };
    if !lake_url.starts_with("s3://") {
        bail!("--lake must be an s3:// URL: Redshift COPY reads S3 only");
    }
    Ok(lake_url.trim_end_matches('/').to_string())
}

/// The lake store, signing with the same credential chain as the SDK clients.
async fn open_lake(setup: &Setup, redshift: &RedshiftArgs, lake_url: &str) -> Result<Lake> {
    let aws = redshift.aws(setup, &redshift.s3_endpoint_url);
    let clients = etl_aws::AwsClients::load(&aws).await?;
    Ok(Lake::open_s3(
        lake_url,
        &etl_glue::s3_options_for(&clients, &aws, S3Encryption::default()),
    )?)
}

fn streams_or_all(setup: &Setup, streams: &[String]) -> Vec<String> {
    if streams.is_empty() {
        setup.schemas.iter().map(|s| s.stream.clone()).collect()
    } else {
        streams.to_vec()
    }
}

async fn status(setup: &Setup, args: StatusArgs) -> Result<()> {
    let lake_url = lake_url(setup, &args.lake)?;
    // Status runs no COPY: the role and the manifest prefix are never used.
    let warehouse = args
        .redshift
        .warehouse(
            setup,
            MIGRATE_ONLY_ROLE,
            &format!("{lake_url}/_load_manifests"),
        )
        .await?;
    let lake = open_lake(setup, &args.redshift, &lake_url).await?;
    let tables = streams_or_all(setup, &args.streams);
    let statuses = etl_redshift::warehouse_status(&warehouse, &lake, &tables)
        .await
        .context("warehouse status failed")?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&statuses)?);
        return Ok(());
    }
    for s in &statuses {
        println!(
            "{}: {} batches loaded (up to {}), {} pending ({} rows){}",
            s.table,
            s.loaded_batches,
            s.loaded_up_to.as_deref().unwrap_or("-"),
            s.pending_batches,
            s.pending_rows,
            s.next_batch
                .as_ref()
                .map(|b| format!(", next {b}"))
                .unwrap_or_default()
        );
        if let Some(f) = &s.failure {
            println!(
                "  STOPPED at batch {} since {}: {}\n  fix the table or the schema (docs/redshift.md, \"A table stopped loading\"), then run `etl warehouse load`",
                f.batch_id, f.failed_at, f.message
            );
        }
    }
    Ok(())
}

async fn migrate(setup: &Setup, views: Option<&std::path::Path>, args: MigrateArgs) -> Result<()> {
    let views = match views {
        Some(dir) => etl_warehouse::load_views(dir)?,
        None => etl_warehouse::embedded_views()?,
    };
    let warehouse = args
        .redshift
        .warehouse(setup, MIGRATE_ONLY_ROLE, "s3://unused/migrate")
        .await?;
    warehouse
        .migrate_tables(&setup.schemas, &views)
        .await
        .context("warehouse migrate failed")?;
    println!(
        "schema {}: {} tables, ledger and {} views are up to date",
        args.redshift.schema(setup),
        setup.schemas.len(),
        views.len()
    );
    Ok(())
}

/// The loader `args` describe (the lake, the warehouse and the loader settings).
pub(crate) async fn loader(setup: &Setup, args: &LoadArgs) -> Result<Loader> {
    let lake_url = lake_url(setup, &args.lake)?;
    let manifest_prefix = args
        .manifest_prefix
        .clone()
        .unwrap_or_else(|| format!("{lake_url}/_load_manifests"));
    let Some(iam_role_arn) = args
        .iam_role_arn
        .clone()
        .or_else(|| setup.warehouse.redshift.iam_role_arn.clone())
    else {
        bail!("name the IAM role Redshift's COPY reads the lake with: --iam-role-arn, ETL_REDSHIFT_IAM_ROLE_ARN or warehouse.redshift.iam_role_arn in the configuration file");
    };
    let warehouse = args
        .redshift
        .warehouse(setup, &iam_role_arn, &manifest_prefix)
        .await?;
    let lake = open_lake(setup, &args.redshift, &lake_url).await?;
    let streams = streams_or_all(setup, &args.streams);
    let settings = LoaderSettings {
        interval: Duration::from_secs(
            args.interval_secs
                .unwrap_or(setup.warehouse.redshift.load_interval_secs)
                .max(1),
        ),
        max_attempts: (!args.follow).then_some(args.attempts.max(1)),
        group: etl_redshift::loader::GroupLimits {
            max_batches: args
                .group_max_batches
                .unwrap_or(setup.warehouse.redshift.load_group_max_batches)
                .max(1),
            max_rows: setup.warehouse.redshift.load_group_max_rows,
            max_bytes: setup.warehouse.redshift.load_group_max_bytes,
        },
        ..LoaderSettings::default()
    };
    Ok(
        Loader::new(Arc::new(warehouse), lake, &lake_url, streams, settings)?
            .with_schema_versions(setup.schemas.iter().map(|s| (s.stream.clone(), s.version))),
    )
}

/// The loader of `etl run --load`: the configuration file's `[warehouse.redshift]` and lake,
/// following, for `streams`.
pub(crate) async fn run_loader(
    setup: &Setup,
    streams: Vec<String>,
    redshift_endpoint_url: Option<String>,
) -> Result<Loader> {
    let args = LoadArgs {
        redshift: RedshiftArgs {
            cluster_id: None,
            workgroup: None,
            db_user: None,
            secret_arn: None,
            database: None,
            schema: None,
            aws_region: None,
            redshift_endpoint_url,
            s3_endpoint_url: None,
            statement_timeout_secs: None,
        },
        lake: None,
        iam_role_arn: None,
        manifest_prefix: None,
        streams,
        follow: true,
        interval_secs: None,
        group_max_batches: None,
        attempts: 1,
        metrics_listen: None,
    };
    loader(setup, &args).await.context(
        "--load: setting up the warehouse loader ([warehouse.redshift] and an s3:// lake.location)",
    )
}

/// A batch writer that wakes the loader of the same process after each commit (`etl run
/// --load`), so a committed batch is loaded at once rather than at the next interval.
pub(crate) struct WakeLoader {
    pub inner: Arc<dyn etl_pipeline::BatchWriter>,
    pub wake: Arc<tokio::sync::Notify>,
}

#[async_trait::async_trait]
impl etl_pipeline::BatchWriter for WakeLoader {
    async fn write(
        &self,
        stream: &str,
        batch: etl_pipeline::ProcessedBatch,
    ) -> Result<etl_lake::BatchCommit, etl_pipeline::CommitError> {
        let commit = self.inner.write(stream, batch).await?;
        self.wake.notify_one();
        Ok(commit)
    }
}

/// Prints what the loader did and fails naming the tables a data failure stopped.
pub(crate) fn report(loader: &Loader, summary: &etl_redshift::LoadSummary) -> Result<()> {
    println!(
        "{} batches loaded ({} rows), {} already loaded, {} without data files, {} retries",
        summary.loaded, summary.rows, summary.already_loaded, summary.empty, summary.retries
    );
    let stopped = loader.stopped_tables();
    if !stopped.is_empty() {
        let lines: Vec<String> = stopped
            .iter()
            .map(|f| {
                format!(
                    "  {} stopped at batch {}: {}",
                    f.table, f.batch_id, f.message
                )
            })
            .collect();
        bail!(
            "{} table(s) stopped loading because a batch's data cannot load (the other tables were loaded):\n{}\n\
             fix the table or the schema (docs/redshift.md, \"A table stopped loading\"), then run `etl warehouse load` again; \
             `etl warehouse status` shows the state",
            stopped.len(),
            lines.join("\n")
        );
    }
    Ok(())
}

async fn load(setup: &Setup, args: LoadArgs) -> Result<()> {
    let observe = crate::observe::start(setup, args.follow, args.metrics_listen.as_deref()).await?;
    let mut loader = loader(setup, &args).await?;
    observe.ready();
    let summary = if args.follow {
        loader.follow(crate::shutdown::requested()).await?
    } else {
        loader.load_pending().await?
    };
    observe.finish().await;
    report(&loader, &summary)
}
