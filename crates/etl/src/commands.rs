//! The commands.

use crate::cli::{
    CatalogCommand, Cli, Command, DeadLettersCommand, DemoArgs, GenerateArgs, GeneratorArgs,
};
use crate::setup::Setup;
use anyhow::{bail, Context, Result};
use arrow::util::pretty::pretty_format_batches;
use etl_generate::GeneratorStats;
use etl_lake::catalog::{Catalog, FileCatalog};
use etl_pipeline::source::LineSource;
use etl_pipeline::{Pipeline, Progress, StreamSummary};
use etl_warehouse::LocalWarehouse;
use indicatif::{ProgressBar, ProgressStyle};
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

pub async fn run(cli: Cli) -> Result<()> {
    let setup = Setup::load(&cli.global).await?;
    match cli.command {
        Command::Demo(args) => demo(&cli.global, &setup, args).await,
        Command::Generate(args) => generate(args).map(|_| ()),
        Command::Ingest(args) => crate::cmd_ingest::run(&setup, args).await,
        Command::Catalog { command } => catalog(&setup, command).await,
        Command::DeadLetters {
            command: DeadLettersCommand::Replay { streams, json },
        } => replay_dead_letters(&setup, streams, json).await,
        Command::Query(args) => crate::cmd_query::run(&cli.global, &setup, args).await,
        Command::Views(args) => views(&cli.global, &setup, args.rows).await,
        Command::Produce(args) => crate::cmd_kinesis::produce(&setup, args).await,
        Command::Run(args) => crate::cmd_kinesis::run(&setup, args).await,
        Command::Warehouse { command } => {
            crate::cmd_warehouse::run(&setup, cli.global.views.as_deref(), command).await
        }
        Command::Leases { command } => crate::cmd_leases::run(&setup, command).await,
        Command::Backfill(args) => crate::cmd_backfill::run(&setup, args).await,
        Command::Compact(args) => crate::cmd_compact::run(&setup, args).await,
        Command::Dashboards { command } => {
            crate::cmd_dashboards::run(&cli.global, &setup, command).await
        }
    }
}

fn generate(args: GenerateArgs) -> Result<GeneratorStats> {
    let cfg = args.generator.config();
    cfg.validate()?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let open = |name: &str| -> Result<BufWriter<std::fs::File>> {
        let path = args.out.join(name);
        let file = std::fs::File::create(&path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        Ok(BufWriter::with_capacity(1 << 20, file))
    };
    let (mut app, mut call) = (open("app_events.ndjson")?, open("call_events.ndjson")?);
    let stats = etl_generate::write_ndjson(cfg, &mut app, &mut call)?;
    app.flush().context("writing app_events.ndjson")?;
    call.flush().context("writing call_events.ndjson")?;
    eprintln!(
        "generated {} events ({} app, {} call; {} duplicates, {} malformed) into {}",
        stats.events(),
        stats.app_events.lines(),
        stats.call_events.lines(),
        stats.total().duplicates,
        stats.total().malformed,
        args.out.display()
    );
    Ok(stats)
}

fn progress_bar(total_bytes: u64) -> ProgressBar {
    let bar = ProgressBar::new(total_bytes);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} ingest [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar
}

/// Ingests `files` into `stream` and returns the merged summary.
pub(crate) async fn ingest_files(
    pipeline: &Pipeline,
    stream: &str,
    files: &[String],
    bar: Option<ProgressBar>,
) -> Result<StreamSummary> {
    let mut total = StreamSummary {
        stream: stream.to_string(),
        ..Default::default()
    };
    for file in files {
        let source = LineSource::open(file).with_context(|| format!("cannot open input {file}"))?;
        let progress: Option<Progress> = bar.clone().map(|bar| {
            let last = Arc::new(std::sync::atomic::AtomicU64::new(0));
            Arc::new(move |_records: u64, bytes: u64| {
                let before = last.swap(bytes, std::sync::atomic::Ordering::Relaxed);
                bar.inc(bytes.saturating_sub(before));
            }) as Progress
        });
        let summary = pipeline
            .ingest(stream, Box::new(source), progress)
            .await
            .with_context(|| format!("ingesting {file} into {stream}"))?;
        total.merge(&summary);
    }
    Ok(total)
}

const DEMO_MARKER: &str = ".etl-demo";

/// Empties a directory the demo made before; refuses one it did not make.
fn prepare_demo_dir(dir: &Path) -> Result<()> {
    if dir.exists() {
        let empty = std::fs::read_dir(dir)
            .with_context(|| format!("cannot read {}", dir.display()))?
            .next()
            .is_none();
        if !empty && !dir.join(DEMO_MARKER).exists() {
            bail!("{} is not empty and was not made by `etl demo`; pass another --dir (the demo replaces its directory's lake)", dir.display());
        }
        for sub in ["lake", "input"] {
            let path = dir.join(sub);
            if path.exists() {
                std::fs::remove_dir_all(&path)
                    .with_context(|| format!("cannot clear {}", path.display()))?;
            }
        }
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    std::fs::write(
        dir.join(DEMO_MARKER),
        "made by `etl demo`; the demo clears lake/ and input/ here on each run\n",
    )
    .with_context(|| format!("cannot write {}", dir.join(DEMO_MARKER).display()))?;
    Ok(())
}

async fn demo(global: &crate::cli::Global, setup: &Setup, args: DemoArgs) -> Result<()> {
    let started = Instant::now();
    prepare_demo_dir(&global.dir)?;
    let input = global.dir.join("input");
    println!(
        "etl demo: {} events (seed {}) into {}",
        args.events,
        args.seed,
        global.dir.display()
    );
    let gen_args = GenerateArgs {
        generator: GeneratorArgs {
            events: args.events,
            seed: args.seed,
            duplicate_rate: None,
            malformed_rate: None,
            late_rate: None,
            call_share: None,
        },
        out: input.clone(),
    };
    let t = Instant::now();
    let generated = tokio::task::spawn_blocking(move || generate(gen_args)).await??;
    println!(
        "1/3 generated {} records in {:.1}s",
        generated.events(),
        t.elapsed().as_secs_f64()
    );

    let pipeline = setup.pipeline()?;
    pipeline.sync_catalog().await?;
    let app_files = vec![input
        .join("app_events.ndjson")
        .to_string_lossy()
        .into_owned()];
    let call_files = vec![input
        .join("call_events.ndjson")
        .to_string_lossy()
        .into_owned()];
    let total_bytes: u64 = ["app_events.ndjson", "call_events.ndjson"]
        .iter()
        .filter_map(|f| std::fs::metadata(input.join(f)).ok())
        .map(|m| m.len())
        .sum();
    let bar = progress_bar(total_bytes);
    let t = Instant::now();
    let (app, call) = tokio::join!(
        ingest_files(&pipeline, "app_events", &app_files, Some(bar.clone())),
        ingest_files(&pipeline, "call_events", &call_files, Some(bar.clone())),
    );
    bar.finish_and_clear();
    let (app, call) = (app?, call?);
    let secs = t.elapsed().as_secs_f64();
    let read = app.read + call.read;
    println!(
        "2/3 ingested {read} records in {secs:.1}s ({:.0} records/s, {:.1} MB/s)",
        read as f64 / secs,
        (app.bytes_read + call.bytes_read) as f64 / 1e6 / secs
    );
    for s in [&app, &call] {
        println!("  {}", s.to_string().replace('\n', "\n  "));
    }
    if setup.key_is_demo {
        println!(
            "  phone numbers masked with the built-in demo key (use --mask-key-file for real data)"
        );
    }
    println!("  lake:         {}", pipeline.lake().location());
    println!(
        "  dead letters: {}/dead-letters/",
        pipeline.lake().location()
    );
    println!(
        "  catalog:      {}/_catalog/catalog.json",
        pipeline.lake().location()
    );
    // The pipeline's dedup windows and pooled decoders are not needed for the views.
    drop(pipeline);
    println!("3/3 curated views (first {} rows each):", args.rows);
    views(global, setup, args.rows).await?;
    crate::cmd_dashboards::render_for_demo(global, setup).await?;
    let peak = peak_rss_mib().map_or(String::new(), |mib| format!(", peak memory {mib} MiB"));
    println!(
        "done in {:.1}s{peak}. Try: etl --dir {} query \"SELECT * FROM calls_per_hour LIMIT 5\"",
        started.elapsed().as_secs_f64(),
        global.dir.display()
    );
    Ok(())
}

/// The process's peak resident memory so far (Linux `VmHWM`); `None` where unknown.
fn peak_rss_mib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024)
}

async fn replay_dead_letters(setup: &Setup, streams: Vec<String>, json: bool) -> Result<()> {
    use etl_pipeline::replay::{dead_letter_files, ReplaySource};
    let pipeline = setup.pipeline()?;
    let streams = if streams.is_empty() {
        setup.schemas.iter().map(|s| s.stream.clone()).collect()
    } else {
        streams
    };
    let mut summaries = Vec::new();
    for stream in streams {
        let lake = pipeline.lake();
        let files = dead_letter_files(lake, &stream).await?;
        let mut total: Option<StreamSummary> = None;
        for path in &files {
            let source = ReplaySource::open(lake, path).await?;
            let summary = pipeline.ingest(&stream, Box::new(source), None).await?;
            match &mut total {
                Some(t) => t.merge(&summary),
                None => total = Some(summary),
            }
        }
        match total {
            Some(summary) => {
                if !json {
                    println!("{stream}: replayed {} dead-letter files", files.len());
                    println!("{summary}");
                }
                summaries.push(summary);
            }
            None if !json => println!("{stream}: no dead letters to replay"),
            None => {}
        }
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&summaries)?);
    }
    Ok(())
}

async fn catalog(setup: &Setup, command: CatalogCommand) -> Result<()> {
    match command {
        CatalogCommand::Sync => {
            let pipeline = setup.pipeline()?;
            for (table, change) in pipeline.sync_catalog().await? {
                println!("{table}: {change:?}");
            }
        }
        CatalogCommand::Show if !setup.lake_is_local() => {
            let catalog = setup.catalog(&setup.lake()?);
            for schema in &setup.schemas {
                let partitions = catalog.partitions(&schema.stream).await?;
                println!(
                    "{} at {}/{}/ ({} partitions)",
                    schema.stream,
                    setup.lake_location(),
                    schema.stream,
                    partitions.len()
                );
                for p in partitions {
                    println!("  {}", p.path());
                }
            }
        }
        CatalogCommand::Show => {
            let catalog = FileCatalog::new(setup.lake()?);
            for schema in &setup.schemas {
                match catalog.table(&schema.stream).await? {
                    Some(t) => {
                        println!(
                            "{} (schema v{}, {} columns) at {}",
                            schema.stream,
                            t.schema_version,
                            t.columns.len(),
                            t.location
                        );
                        for p in catalog.partitions(&schema.stream).await? {
                            println!("  {}", p.path());
                        }
                    }
                    None => println!(
                        "{}: not in the catalog (run `etl catalog sync`)",
                        schema.stream
                    ),
                }
            }
        }
    }
    Ok(())
}

pub(crate) async fn open_warehouse(
    global: &crate::cli::Global,
    setup: &Setup,
) -> Result<LocalWarehouse> {
    if !setup.lake_is_local() {
        bail!(
            "the local warehouse reads local lakes only, and the configured lake is {}: query it with Athena, or load it into Redshift with `etl warehouse load`",
            setup.lake_location()
        );
    }
    let views = match &global.views {
        Some(dir) => etl_warehouse::load_views(dir)?,
        None => etl_warehouse::embedded_views()?,
    };
    Ok(LocalWarehouse::open(setup.lake_dir.as_path(), &setup.schemas, &views).await?)
}

async fn views(global: &crate::cli::Global, setup: &Setup, rows: usize) -> Result<()> {
    let warehouse = open_warehouse(global, setup).await?;
    for view in warehouse.views() {
        let batches = warehouse.view_rows(&view, Some(rows)).await?;
        println!("\n{view}");
        println!("{}", pretty_format_batches(&batches)?);
    }
    Ok(())
}
