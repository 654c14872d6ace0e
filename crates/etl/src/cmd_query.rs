//! `etl query`: ad-hoc SQL on Athena or on the local engine (DataFusion over the lake), and
//! `--save-named` for the queries of `queries/athena/`.

use crate::setup::Setup;
use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use etl_query::output::Format;
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct QueryArgs {
    /// The SQL statement (or use --file).
    #[arg(conflicts_with = "file", required_unless_present_any = ["file", "save_named"])]
    pub sql: Option<String>,
    /// Read the statement from a file, e.g. queries/athena/call_timeline.sql.
    #[arg(short = 'f', long)]
    pub file: Option<PathBuf>,
    /// A value for a `{{name}}` placeholder of the statement: --param call_id=c-42 (repeatable).
    #[arg(long = "param", value_name = "NAME=VALUE")]
    pub params: Vec<String>,
    /// Where the statement runs: `local` (DataFusion over the lake, with the curated views) or
    /// `athena` (the `[athena]` section of the configuration file).
    #[arg(long, value_enum, default_value_t = Engine::Local)]
    pub engine: Engine,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub format: OutputFormat,
    /// Register the queries of queries/athena/ (built into the binary, or --queries-dir) as
    /// Athena named queries of the workgroup, idempotently; runs nothing.
    #[arg(long, conflicts_with_all = ["sql", "file", "params"])]
    pub save_named: bool,
    /// The folder of query files for --save-named; default: the ones built into the binary.
    #[arg(long, requires = "save_named")]
    pub queries_dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Engine {
    Local,
    Athena,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Table,
    Csv,
    Json,
}

pub async fn run(global: &crate::cli::Global, setup: &Setup, args: QueryArgs) -> Result<()> {
    if args.save_named {
        return save_named(setup, &args).await;
    }
    let (origin, text) = match (&args.sql, &args.file) {
        (Some(sql), None) => ("<command line>".to_string(), sql.clone()),
        (None, Some(path)) => (
            path.display().to_string(),
            std::fs::read_to_string(path)
                .with_context(|| format!("cannot read query file {}", path.display()))?,
        ),
        _ => bail!("give the SQL as an argument or with --file (not both)"),
    };
    let mut params = BTreeMap::new();
    for p in &args.params {
        let (k, v) = etl_query::params::parse_param(p)?;
        params.insert(k, v);
    }
    let bound = etl_query::params::bind(&text, &params)?;
    let result = match args.engine {
        Engine::Local => {
            let views = match &global.views {
                Some(dir) => etl_warehouse::load_views(dir)?,
                None => etl_warehouse::embedded_views()?,
            };
            let warehouse =
                etl_query::local::open(setup.local_query_lake(), &setup.schemas, &views).await?;
            etl_query::local::run(&warehouse, &bound.inline).await?
        }
        Engine::Athena => {
            if args.file.is_some() {
                etl_query::dialect::check(&origin, &bound.positional)?;
            }
            let settings = setup.athena.settings(setup.glue_database())?;
            let clients = setup.aws_clients().await?;
            let engine = etl_query::athena::AthenaEngine::new(clients.athena(), settings)?;
            engine
                .run(
                    &bound.positional,
                    &bound.values,
                    crate::shutdown::requested(),
                )
                .await?
        }
    };
    let format = match args.format {
        OutputFormat::Table => Format::Table,
        OutputFormat::Csv => Format::Csv,
        OutputFormat::Json => Format::Json,
    };
    print!(
        "{}",
        etl_query::output::render(&result.schema, &result.batches, format)?
    );
    if format == Format::Table {
        println!();
    }
    if let Some(stats) = &result.athena {
        eprintln!("{stats}; {} rows", result.rows());
    }
    Ok(())
}

async fn save_named(setup: &Setup, args: &QueryArgs) -> Result<()> {
    let files = match &args.queries_dir {
        Some(dir) => etl_query::named::load_dir(dir)?,
        None => etl_query::named::embedded(),
    };
    let settings = setup.athena.settings(setup.glue_database())?;
    let clients = setup.aws_clients().await?;
    let saved = etl_query::named::save(
        &clients.athena(),
        &settings.workgroup,
        &settings.database,
        &files,
    )
    .await?;
    for (name, what) in saved {
        let line = match what {
            etl_query::named::Saved::Created(id) => format!("{name}: created ({id})"),
            etl_query::named::Saved::Updated(id) => format!("{name}: updated ({id})"),
            etl_query::named::Saved::Unchanged(id) => format!("{name}: unchanged ({id})"),
        };
        println!("{line}");
    }
    Ok(())
}
