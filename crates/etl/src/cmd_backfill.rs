//! `etl backfill`: re-processes a range of history through the current schema and transform
//! (docs/backfill.md).

use crate::setup::Setup;
use anyhow::{bail, Context, Result};
use clap::Args;
use etl_backfill::{parse_instant, plan, Backfill, Plan, SourceSpec};
use etl_lake::Lake;
use etl_pipeline::Progress;
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// Records per batch when ingesting historical files: fixed (not `pipeline.batch_max_records`),
/// so the same file always gives the same batch ids whatever the configuration says.
pub const FILE_BATCH_RECORDS: usize = 65_536;

/// `etl backfill`.
#[derive(Debug, Args)]
pub struct BackfillArgs {
    /// The stream (table) to re-process.
    #[arg(long)]
    pub stream: String,
    /// Start of the range (inclusive), UTC: `2026-11-01`, `2026-11-01T13:00Z` or RFC 3339. Raw
    /// batches are selected by the arrival time of their first record.
    #[arg(long)]
    pub from: Option<String>,
    /// End of the range (exclusive), UTC.
    #[arg(long)]
    pub to: Option<String>,
    /// Where the records come from: `raw` (the raw archive `etl run` writes; default),
    /// `kinesis` (the stream again, from `--from` with AT_TIMESTAMP, within its retention), or
    /// historical NDJSON files (gzip or not): a local folder or file, or an `s3://bucket/prefix/`.
    #[arg(long, default_value = "raw")]
    pub source: String,
    /// Print the plan (units, objects, bytes, records expected, partitions) and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Batches processed at once; default `pipeline.parallelism` (the number of cores).
    #[arg(long)]
    pub parallelism: Option<usize>,
    /// Run slice `i` (0-based) of `--task-count` (e.g. `JOB_COMPLETION_INDEX` of a Kubernetes
    /// indexed Job). Two slices never write the same object.
    #[arg(long, default_value_t = 0)]
    pub task_index: usize,
    /// Number of slices the plan is split into.
    #[arg(long, default_value_t = 1)]
    pub task_count: usize,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
    /// With `--source kinesis`: the Kinesis stream `etl run` consumed for `--stream`; default:
    /// `[kinesis] streams` of the configuration file.
    #[arg(long)]
    pub kinesis_stream: Option<String>,
    /// With `--source kinesis`: how to reach Kinesis.
    #[command(flatten)]
    pub endpoint: crate::cmd_kinesis::KinesisEndpoint,
}

/// Runs `etl backfill`.
pub async fn run(setup: &Setup, args: BackfillArgs) -> Result<()> {
    setup.stream_schema("--stream", &args.stream)?;
    let instant = |flag: &str, v: &Option<String>| -> Result<Option<i64>> {
        v.as_deref()
            .map(|t| parse_instant(t).map_err(|e| anyhow::anyhow!("{flag}: {e}")))
            .transpose()
    };
    let (from, to) = (instant("--from", &args.from)?, instant("--to", &args.to)?);
    let spec = match args.source.as_str() {
        "raw" => SourceSpec::Raw,
        "kinesis" => SourceSpec::Kinesis,
        other => SourceSpec::Files(other.to_string()),
    };
    let lake = setup.lake()?;
    let mut kinesis = None;
    let (plan, range) = match &spec {
        SourceSpec::Raw => {
            let (from, to) = arrival_range(&args, from, to)?;
            let plan = plan::plan_raw(&lake, &args.stream, from, to)
                .await
                .context("planning the backfill from the raw archive")?;
            (plan, (from, to))
        }
        SourceSpec::Kinesis => {
            let (from, to) = arrival_range(&args, from, to)?;
            let Some(kinesis_stream) = args
                .kinesis_stream
                .clone()
                .or_else(|| setup.kinesis.streams.get(&args.stream).cloned())
            else {
                bail!("--source kinesis: name the Kinesis stream with --kinesis-stream (or `streams` in the [kinesis] section of the configuration file)");
            };
            let plan = plan::plan_kinesis(&lake, &args.stream, &kinesis_stream)
                .await
                .context("planning the backfill from Kinesis")?;
            kinesis = Some((args.endpoint.client(setup).await?, kinesis_stream));
            (plan, (from, to))
        }
        SourceSpec::Files(location) => {
            if from.is_some() || to.is_some() {
                bail!("--from/--to select raw batches by arrival time; historical files carry none: every record of the files under {location} is processed (choose the files by the folder or prefix)");
            }
            let (store, prefix) = files_store(setup, location)?;
            let plan = plan::plan_files(&store, &args.stream, &prefix)
                .await
                .with_context(|| format!("listing {location}"))?;
            (plan, (i64::MIN, i64::MAX))
        }
    };
    let plan = plan.slice(args.task_index, args.task_count)?;
    if plan.units.is_empty() {
        eprintln!(
            "backfill: nothing to re-process for {} in this range (task {} of {}){}",
            args.stream,
            args.task_index,
            args.task_count,
            if plan.newest_skipped.is_empty() {
                String::new()
            } else {
                format!(
                    "; left alone as the newest batch of its shard: {}",
                    plan.newest_skipped.join(", ")
                )
            }
        );
    }
    if args.dry_run {
        println!(
            "{} (dry run, nothing changed; task {} of {})",
            args.stream, args.task_index, args.task_count
        );
        print!("{plan}");
        return Ok(());
    }
    let mut options = setup.options.clone();
    if let Some(p) = args.parallelism {
        if p == 0 {
            bail!("--parallelism must be at least 1");
        }
        options.parallelism = p;
    }
    if matches!(spec, SourceSpec::Files(_)) {
        options.batch_max_records = FILE_BATCH_RECORDS;
        options.batch_max_bytes = usize::MAX / 2;
    }
    let pipeline = setup.pipeline_with(options)?;
    let fingerprint = setup.transform_fingerprint(&args.stream);
    let mut backfill = Backfill::new(&pipeline, &args.stream, &fingerprint, range);
    if let Some((client, name)) = kinesis {
        backfill = backfill.with_kinesis(client, &name);
    }
    let (progress, bar) = progress(&plan);
    let summary = backfill.run(&plan, Some(progress)).await;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let summary = summary.with_context(|| format!("backfilling {}", args.stream))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        print!("{summary}");
        println!("lake: {}", pipeline.lake().location());
    }
    Ok(())
}

/// The arrival range of a `raw` or `kinesis` backfill: both ends given, the end not in the future
/// (a backfill re-processes batches the consumer has already written).
fn arrival_range(args: &BackfillArgs, from: Option<i64>, to: Option<i64>) -> Result<(i64, i64)> {
    let (Some(from), Some(to)) = (from, to) else {
        bail!("--from and --to are required with --source {}: the range of arrival times to re-process, e.g. --from 2026-11-01 --to 2026-11-08", args.source);
    };
    if to > chrono::Utc::now().timestamp_millis() {
        bail!("--to {} is in the future: a backfill re-processes batches the consumer has already written; end the range at or before now", args.to.as_deref().unwrap_or_default());
    }
    Ok((from, to))
}

/// The store and prefix of a files source: an `s3://bucket/prefix` (with the lake's S3 options)
/// or a local folder or file.
fn files_store(setup: &Setup, location: &str) -> Result<(Lake, String)> {
    if let Some(rest) = location.strip_prefix("s3://") {
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            bail!("--source {location}: name a bucket, e.g. s3://bucket/history/");
        }
        let store = Lake::open_s3(
            &format!("s3://{bucket}"),
            &etl_glue::s3_options(setup.aws_settings(), Default::default()),
        )?;
        return Ok((store, prefix.trim_end_matches('/').to_string()));
    }
    let path = std::path::Path::new(location);
    if path.is_file() {
        let parent = path.parent().unwrap_or(std::path::Path::new("."));
        let parent = if parent.as_os_str().is_empty() {
            std::path::Path::new(".")
        } else {
            parent
        };
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .context("--source: the file name must be valid UTF-8")?;
        let dir = parent
            .to_str()
            .context("--source: the path must be valid UTF-8")?;
        return Ok((Lake::open(dir)?, name.to_string()));
    }
    if !path.is_dir() {
        bail!("--source {location}: no such folder or file (give `raw`, a local folder or file, or an s3://bucket/prefix/)");
    }
    Ok((Lake::open(location)?, String::new()))
}

/// A progress bar on a terminal (records against the plan's expectation, rate and ETA), else a
/// line on stderr every 10 seconds.
fn progress(plan: &Plan) -> (Progress, Option<ProgressBar>) {
    let files = plan.batches() == 0;
    let total = if files {
        plan.bytes()
    } else {
        plan.records_expected()
    };
    if std::io::stderr().is_terminal() {
        let bar = ProgressBar::new(total);
        let template = if files {
            "{spinner} backfill [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}"
        } else {
            "{spinner} backfill [{bar:40}] {human_pos}/{human_len} records {per_sec} eta {eta}"
        };
        bar.set_style(
            ProgressStyle::with_template(template)
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        let b = bar.clone();
        let p: Progress = Arc::new(move |records: u64, bytes: u64| {
            b.set_position(if files { bytes } else { records });
        });
        return (p, Some(bar));
    }
    let started = Instant::now();
    let last = AtomicU64::new(0);
    let p: Progress = Arc::new(move |records: u64, bytes: u64| {
        let secs = started.elapsed().as_secs();
        let before = last.load(Ordering::Relaxed);
        if secs >= before + 10
            && last
                .compare_exchange(before, secs, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            let done = if files { bytes } else { records };
            let rate = records as f64 / started.elapsed().as_secs_f64().max(0.001);
            let eta = if done > 0 && total > done {
                format!(
                    "{:.0}s",
                    started.elapsed().as_secs_f64() * (total - done) as f64 / done as f64
                )
            } else {
                "-".into()
            };
            eprintln!("backfill: {records} records read ({bytes} bytes), {rate:.0} records/s, {done}/{total}, eta {eta}");
        }
    });
    (p, None)
}
