//! `etl compact`: merges the small Parquet files of closed partition-hours (docs/compaction.md).

use crate::setup::Setup;
use anyhow::{Context, Result};
use clap::Args;
use etl_compact::{Action, CompactOptions, Compactor, GlueLocations, LoadGate, Report};

/// `etl compact`.
#[derive(Debug, Args)]
pub struct CompactArgs {
    /// Streams (tables) to compact; default: every schema.
    #[arg(long = "stream")]
    pub streams: Vec<String>,
    /// Compact partition-hours that ended at least this long ago (`90s`, `15m`, `2h`, `7d`);
    /// default: `compaction.older_than` of the configuration file (2h).
    #[arg(long)]
    pub older_than: Option<String>,
    /// Print the plan (per partition: files, bytes, what would happen) and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
    /// The warehouse whose load ledger decides when a replaced writer file may go
    /// (`compaction.wait_for_load`); default: `[warehouse.redshift]`.
    #[command(flatten)]
    pub redshift: crate::cmd_warehouse::RedshiftArgs,
}

/// Runs `etl compact`.
pub async fn run(setup: &Setup, args: CompactArgs) -> Result<()> {
    let config = &setup.compaction;
    config.validate()?;
    let older_than = args.older_than.as_deref().unwrap_or(&config.older_than);
    let older_than = etl_compact::parse_duration(older_than)
        .map_err(|e| anyhow::anyhow!("--older-than: {e}"))?;
    let grace_period = etl_compact::parse_duration(&config.grace_period)
        .map_err(|e| anyhow::anyhow!("compaction.grace_period: {e}"))?;
    let mut parquet = setup.options.parquet.clone();
    parquet.target_file_bytes = config.target_file_bytes;
    parquet.row_group_rows = config.row_group_rows;
    let options = CompactOptions {
        parquet,
        older_than,
        grace_period,
        dry_run: args.dry_run,
        now_ms: None,
        crash_at: None,
    };
    let schemas: Vec<_> = if args.streams.is_empty() {
        setup.schemas.iter().collect()
    } else {
        args.streams
            .iter()
            .map(|name| setup.stream_schema("--stream", name))
            .collect::<Result<Vec<_>>>()?
    };
    let lake = setup.lake()?;
    let glue = setup.glue_catalog().map(GlueLocations);
    let redshift = &setup.warehouse.redshift;
    let warehouse_configured = args.redshift.cluster_id.is_some()
        || args.redshift.workgroup.is_some()
        || redshift.cluster_id.is_some()
        || redshift.workgroup.is_some();
    let ledger = if config.wait_for_load && warehouse_configured && !args.dry_run {
        Some(
            args.redshift
                .warehouse(
                    setup,
                    crate::cmd_warehouse::MIGRATE_ONLY_ROLE,
                    "s3://unused/compact",
                )
                .await
                .context("the warehouse whose load ledger compaction waits for")?,
        )
    } else {
        if config.wait_for_load && !warehouse_configured {
            tracing::warn!("no Redshift warehouse configured: replaced files are deleted after the grace period without checking a load ledger");
        }
        None
    };
    let mut compactor = Compactor::new(&lake, options);
    if let Some(glue) = &glue {
        compactor = compactor.with_locations(glue);
    }
    if let Some(ledger) = &ledger {
        compactor = compactor.with_load_gate(ledger as &dyn LoadGate);
    }
    let mut json = Vec::new();
    for schema in schemas {
        let report = compactor
            .run(schema)
            .await
            .with_context(|| format!("compacting {}", schema.stream))?;
        if args.json {
            json.push(summary_json(&schema.stream, &report, args.dry_run));
        } else {
            print_report(&schema.stream, &report, args.dry_run);
        }
    }
    if args.json {
        println!("{}", serde_json::Value::Array(json));
    }
    Ok(())
}

fn print_report(table: &str, report: &Report, dry_run: bool) {
    if dry_run {
        println!("{table}: plan (dry run, nothing changed)");
        for plan in &report.plans {
            println!("  {plan}");
        }
        return;
    }
    let secs = report.compact_time.as_secs_f64();
    let rate = if secs > 0.0 {
        report.rows_in as f64 / secs
    } else {
        0.0
    };
    println!(
        "{table}: {} partition(s) compacted: {} file(s) / {} bytes -> {} file(s) / {} bytes; {} rows read, {} written, {} duplicate event_id(s) dropped; {:.1}s ({rate:.0} rows/s); {} replaced object(s) deleted, {} waiting for the grace period, {} waiting for the warehouse load",
        report.compacted,
        report.files_before,
        report.bytes_before,
        report.files_after,
        report.bytes_after,
        report.rows_in,
        report.rows_out,
        report.duplicates_dropped,
        secs,
        report.deleted,
        report.waiting_for_grace,
        report.waiting_for_load,
    );
}

fn summary_json(table: &str, report: &Report, dry_run: bool) -> serde_json::Value {
    let plans: Vec<serde_json::Value> = report
        .plans
        .iter()
        .map(|p| {
            serde_json::json!({
                "partition": p.partition.path(),
                "files": p.files_before,
                "bytes": p.bytes_before,
                "late_files": if p.state.is_some() { p.uncovered.len() } else { 0 },
                "action": match p.action {
                    Action::Compact { generation } => format!("compact:{generation}"),
                    Action::Skip(reason) => format!("skip:{reason:?}"),
                },
            })
        })
        .collect();
    serde_json::json!({
        "stream": table,
        "dry_run": dry_run,
        "compacted": report.compacted,
        "files_before": report.files_before,
        "bytes_before": report.bytes_before,
        "files_after": report.files_after,
        "bytes_after": report.bytes_after,
        "rows_in": report.rows_in,
        "rows_out": report.rows_out,
        "duplicates_dropped": report.duplicates_dropped,
        "deleted": report.deleted,
        "waiting_for_grace": report.waiting_for_grace,
        "waiting_for_load": report.waiting_for_load,
        "compact_secs": report.compact_time.as_secs_f64(),
        "plans": plans,
    })
}
