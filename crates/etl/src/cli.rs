//! Command-line arguments.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// Streaming analytics ETL: app and call events → validated, masked Parquet lake → warehouse views.
#[derive(Debug, Parser)]
#[command(name = "etl", version, about, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Options of every command.
#[derive(Debug, Args)]
pub struct Global {
    /// Data directory: the lake is `<dir>/lake`, generated input `<dir>/input`.
    #[arg(long, global = true, default_value = "etl-data", env = "ETL_DIR")]
    pub dir: PathBuf,
    /// Optional TOML file with pipeline options (see README, "Pipeline options").
    #[arg(long, global = true, env = "ETL_CONFIG")]
    pub config: Option<PathBuf>,
    /// Directory of stream schemas; default: the schemas built into the binary.
    #[arg(long, global = true)]
    pub schemas: Option<PathBuf>,
    /// Directory of transform SQL; default: the queries built into the binary.
    #[arg(long, global = true)]
    pub transform_sql: Option<PathBuf>,
    /// Directory of curated view SQL; default: the views built into the binary.
    #[arg(long, global = true)]
    pub views: Option<PathBuf>,
    /// File holding the secret key for masking phone numbers (HMAC-SHA256).
    #[arg(long, global = true, env = "ETL_MASK_KEY_FILE")]
    pub mask_key_file: Option<PathBuf>,
    /// Log format on stderr: `auto` is JSON lines unless stderr is a terminal.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Auto)]
    pub log_format: LogFormat,
    /// Log filter, e.g. `info` or `etl_pipeline=debug`.
    #[arg(long, global = true, default_value = "warn", env = "ETL_LOG")]
    pub log: String,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// JSON lines when stderr is not a terminal, else text.
    Auto,
    /// Text (colours only on a terminal).
    Text,
    /// JSON lines.
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Generate events, run them through the whole pipeline into `--dir`, and show the curated views.
    Demo(DemoArgs),
    /// Write synthetic events as NDJSON (one file per stream).
    Generate(GenerateArgs),
    /// Push NDJSON files (optionally gzip; `-` for stdin) through validate → transform → lake → catalog.
    Ingest(crate::cmd_ingest::IngestArgs),
    /// Manage the catalog of lake tables.
    Catalog {
        #[command(subcommand)]
        command: CatalogCommand,
    },
    /// Work with dead letters: `replay` re-feeds them through the pipeline (after a fix).
    DeadLetters {
        #[command(subcommand)]
        command: DeadLettersCommand,
    },
    /// Run SQL on the lake: locally (DataFusion: lake tables and curated views) or on Athena.
    Query(crate::cmd_query::QueryArgs),
    /// Show the first rows of every curated view.
    Views(ViewsArgs),
    /// Put generated events onto Kinesis streams (PutRecords, optionally KPL-aggregated).
    Produce(crate::cmd_kinesis::ProduceArgs),
    /// Consume Kinesis streams into the lake, committing shard positions after each batch.
    Run(crate::cmd_kinesis::RunArgs),
    /// Shard leases in DynamoDB shared by several `etl run` processes (docs/leases.md).
    Leases {
        #[command(subcommand)]
        command: crate::cmd_leases::LeasesCommand,
    },
    /// Redshift: migrate tables and views, load committed lake batches (Data API).
    Warehouse {
        #[command(subcommand)]
        command: crate::cmd_warehouse::WarehouseCommand,
    },
    /// Re-process a range of history through the current schema and transform, in place (docs/backfill.md).
    Backfill(crate::cmd_backfill::BackfillArgs),
    /// Merge the small Parquet files of closed partition-hours; readers never notice (docs/compaction.md).
    Compact(crate::cmd_compact::CompactArgs),
    /// QuickSight dashboards (dashboards/): validate against the views, render offline HTML, deploy.
    Dashboards {
        #[command(subcommand)]
        command: crate::cmd_dashboards::DashboardsCommand,
    },
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Number of events to generate.
    #[arg(long, default_value_t = 1_000_000)]
    pub events: u64,
    /// Random seed; the same seed gives the same events.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Rows shown per view.
    #[arg(long, default_value_t = 8)]
    pub rows: usize,
}

#[derive(Debug, Args)]
pub struct GenerateArgs {
    #[command(flatten)]
    pub generator: GeneratorArgs,
    /// Output directory; writes `app_events.ndjson` and `call_events.ndjson`.
    #[arg(long, default_value = "etl-data/input")]
    pub out: PathBuf,
}

/// What the synthetic producer generates (`etl generate`, `etl produce`).
#[derive(Debug, Clone, Args)]
pub struct GeneratorArgs {
    /// Number of events (both streams together).
    #[arg(long, default_value_t = 100_000)]
    pub events: u64,
    /// Random seed.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Fraction of exact duplicates.
    #[arg(long)]
    pub duplicate_rate: Option<f64>,
    /// Fraction of malformed records.
    #[arg(long)]
    pub malformed_rate: Option<f64>,
    /// Fraction of late events.
    #[arg(long)]
    pub late_rate: Option<f64>,
    /// Fraction of events on the call stream.
    #[arg(long)]
    pub call_share: Option<f64>,
}

impl GeneratorArgs {
    /// The generator configuration: the defaults with the given fractions.
    pub fn config(&self) -> etl_generate::GeneratorConfig {
        let mut cfg = etl_generate::GeneratorConfig {
            seed: self.seed,
            events: self.events,
            ..etl_generate::GeneratorConfig::default()
        };
        if let Some(v) = self.duplicate_rate {
            cfg.duplicate_rate = v;
        }
        if let Some(v) = self.malformed_rate {
            cfg.malformed_rate = v;
        }
        if let Some(v) = self.late_rate {
            cfg.late_rate = v;
        }
        if let Some(v) = self.call_share {
            cfg.call_share = v;
        }
        cfg
    }
}

#[derive(Debug, Subcommand)]
pub enum DeadLettersCommand {
    /// Re-feed every dead-lettered record (its original bytes) through validate → transform →
    /// lake, e.g. after a schema or option fix. Exactly once: replaying again rewrites the same
    /// files. Records that fail again stay dead letters (of the replay, which is not replayed).
    Replay {
        /// Streams to replay; default: every stream.
        #[arg(long = "stream")]
        streams: Vec<String>,
        /// Print the summary as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum CatalogCommand {
    /// Create or extend every stream's table from the schemas (additive changes only).
    Sync,
    /// List tables and partitions.
    Show,
}

#[derive(Debug, Args)]
pub struct ViewsArgs {
    /// Rows shown per view.
    #[arg(long, default_value_t = 10)]
    pub rows: usize,
}
