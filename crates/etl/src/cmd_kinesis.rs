//! `etl produce` (generated events → Kinesis) and `etl run` (Kinesis → pipeline → lake).

use crate::setup::Setup;
use anyhow::{bail, Context, Result};
use clap::Args;
use etl_kinesis::{LakeTarget, ProduceOptions, SourceOptions, StartPosition};
use etl_pipeline::BatchWriter;
use std::sync::Arc;
use tracing::Instrument;

/// How to reach Kinesis: the `[aws]` settings of the configuration file, with these overrides.
#[derive(Debug, Args)]
pub struct KinesisEndpoint {
    /// AWS region of the streams (default: `aws.region` of the configuration file).
    #[arg(long, env = "AWS_REGION")]
    pub aws_region: Option<String>,
    /// Endpoint override for Kinesis only (a local stand-in such as kinesalite); default:
    /// `aws.endpoint_url` of the configuration file, else the regional AWS endpoint.
    #[arg(long)]
    pub aws_endpoint_url: Option<String>,
}

impl KinesisEndpoint {
    pub(crate) async fn client(&self, setup: &Setup) -> Result<etl_aws::kinesis::Client> {
        let mut settings = setup.aws_settings().clone();
        if let Some(region) = &self.aws_region {
            settings.region = region.clone();
        }
        if let Some(url) = &self.aws_endpoint_url {
            settings.endpoint_url = Some(url.clone());
        }
        Ok(etl_aws::AwsClients::load(&settings).await?.kinesis())
    }
}

/// Which pipeline stream goes with which Kinesis stream: `[kinesis] streams` of the
/// configuration file, with these added or replacing entries.
#[derive(Debug, Args)]
pub struct StreamArgs {
    /// `NAME=KINESIS_STREAM`: pipeline stream NAME (a schema in --schemas with its transform
    /// SQL) goes with Kinesis stream KINESIS_STREAM. Repeatable.
    #[arg(long = "stream", value_name = "NAME=KINESIS_STREAM")]
    pub streams: Vec<String>,
    /// Shorthand for `--stream app_events=KINESIS_STREAM`.
    #[arg(long, value_name = "KINESIS_STREAM")]
    pub app_stream: Option<String>,
    /// Shorthand for `--stream call_events=KINESIS_STREAM`.
    #[arg(long, value_name = "KINESIS_STREAM")]
    pub call_stream: Option<String>,
}

impl StreamArgs {
    /// `(pipeline stream, Kinesis stream)` pairs, sorted by pipeline stream; every pipeline
    /// stream must have a schema.
    fn resolve(&self, setup: &Setup) -> Result<Vec<(String, String)>> {
        let mut out = setup.kinesis.streams.clone();
        for pair in &self.streams {
            let Some((name, kinesis)) = pair
                .split_once('=')
                .filter(|(n, k)| !n.is_empty() && !k.is_empty())
            else {
                bail!("--stream {pair:?}: write NAME=KINESIS_STREAM, e.g. --stream app_events=app-events-prod");
            };
            out.insert(name.to_string(), kinesis.to_string());
        }
        for (name, kinesis) in [
            ("app_events", &self.app_stream),
            ("call_events", &self.call_stream),
        ] {
            if let Some(k) = kinesis {
                out.insert(name.to_string(), k.clone());
            }
        }
        if out.is_empty() {
            bail!("name at least one Kinesis stream: --stream NAME=KINESIS_STREAM (or --app-stream / --call-stream), or `streams` in the [kinesis] section of the configuration file");
        }
        let known: Vec<&str> = setup.schemas.iter().map(|s| s.stream.as_str()).collect();
        if let Some(name) = out.keys().find(|n| !known.contains(&n.as_str())) {
            bail!(
                "stream {name:?} has no schema (known: {}): add schemas/{name}.toml and queries/transform/{name}.sql and point --schemas / --transform-sql at them",
                known.join(", ")
            );
        }
        Ok(out.into_iter().collect())
    }
}

/// `etl produce`.
#[derive(Debug, Args)]
pub struct ProduceArgs {
    /// Where the generated events go (streams without a Kinesis stream are not sent).
    #[command(flatten)]
    pub streams: StreamArgs,
    #[command(flatten)]
    pub generator: crate::cli::GeneratorArgs,
    /// Pack events into KPL aggregated records.
    #[arg(long)]
    pub aggregate: bool,
    /// Target events per second (default: as fast as Kinesis takes them).
    #[arg(long)]
    pub rate: Option<f64>,
    #[command(flatten)]
    pub endpoint: KinesisEndpoint,
}

/// `etl run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The streams to consume.
    #[command(flatten)]
    pub streams: StreamArgs,
    /// Start of shards without a committed position: `trim-horizon`, `latest` or `at:<epoch ms>`
    /// (default: `kinesis.start` of the configuration file, else trim-horizon).
    #[arg(long)]
    pub start: Option<String>,
    /// Stop once every shard is at its tip instead of running until SIGTERM / Ctrl-C.
    #[arg(long)]
    pub until_caught_up: bool,
    /// Do not archive the raw records (by default each batch's records are also written, with
    /// their positions and arrival times, as gzip NDJSON under `raw/<table>/dt=…/hour=…/` in
    /// the same commit: the source for backfills).
    #[arg(long)]
    pub no_raw_archive: bool,
    /// A batch is committed at the latest this many milliseconds after its first record
    /// (default: `kinesis.batch_max_ms` of the configuration file, else 1000).
    #[arg(long)]
    pub batch_max_ms: Option<u64>,
    /// `IP:port` of the /metrics, /healthz and /readyz listener, or `off`; overrides
    /// `observability.listen` of the configuration file (default 0.0.0.0:9464).
    #[arg(long, env = "ETL_METRICS_LISTEN")]
    pub metrics_listen: Option<String>,
    /// Also load the committed batches into Redshift in this process (what `etl warehouse load
    /// --follow` does, with `[warehouse.redshift]` of the configuration file): one service for
    /// a small deployment. Needs an `s3://` lake. With --until-caught-up a last pass loads
    /// everything committed before the process exits.
    #[arg(long)]
    pub load: bool,
    /// With --load: endpoint override of the Redshift Data API (e.g. a local stand-in).
    #[arg(long, requires = "load")]
    pub redshift_endpoint_url: Option<String>,
    #[command(flatten)]
    pub endpoint: KinesisEndpoint,
}

pub async fn produce(setup: &Setup, args: ProduceArgs) -> Result<()> {
    let client = args.endpoint.client(setup).await?;
    let options = ProduceOptions {
        targets: args.streams.resolve(setup)?,
        aggregate: args.aggregate,
        rate: args.rate,
    };
    let config = args.generator.config();
    config.validate()?;
    let records = etl_generate::records(config)?;
    let summary = etl_kinesis::produce(&client, records, &options).await?;
    let mut per_stream: Vec<_> = summary.events.iter().collect();
    per_stream.sort();
    for (stream, n) in per_stream {
        println!("{stream}: {n} events");
    }
    println!(
        "{} Kinesis records in {} PutRecords calls ({} entries re-sent), {} events of streams without a Kinesis stream skipped, {} records over the 1 MiB Kinesis limit not sent, {:.1}s",
        summary.kinesis_records,
        summary.calls,
        summary.retried_entries,
        summary.skipped,
        summary.oversize,
        summary.elapsed.as_secs_f64()
    );
    Ok(())
}

fn start_position(text: &str) -> Result<StartPosition> {
    Ok(match text {
        "trim-horizon" => StartPosition::TrimHorizon,
        "latest" => StartPosition::Latest,
        other => match other.strip_prefix("at:").map(str::parse::<i64>) {
            Some(Ok(ms)) => StartPosition::AtTimestamp(ms),
            _ => bail!("--start (kinesis.start) must be trim-horizon, latest or at:<epoch ms>, got `{other}`"),
        },
    })
}

pub async fn run(setup: &Setup, args: RunArgs) -> Result<()> {
    let observe = crate::observe::start(setup, true, args.metrics_listen.as_deref()).await?;
    let client = args.endpoint.client(setup).await?;
    let pipeline = Arc::new(setup.pipeline()?);
    pipeline.sync_catalog().await?;
    let lake = setup.lake()?;
    let streams = args.streams.resolve(setup)?;
    let start = args.start.as_deref().unwrap_or(&setup.kinesis.start);
    let leases = crate::cmd_leases::leasing(setup).await?;
    let handover = crate::cmd_leases::deadline(setup, &leases);
    let options = SourceOptions {
        start: start_position(start)?,
        batch_max_ms: args.batch_max_ms.unwrap_or(setup.kinesis.batch_max_ms),
        stop_when_caught_up: args.until_caught_up,
        leases: leases.clone(),
        ..SourceOptions::default()
    };
    let raw_archive = setup.kinesis.raw_archive && !args.no_raw_archive;
    let loader = match args.load {
        true => Some(
            crate::cmd_warehouse::run_loader(
                setup,
                streams.iter().map(|(name, _)| name.clone()).collect(),
                args.redshift_endpoint_url.clone(),
            )
            .await?,
        ),
        false => None,
    };
    let wake = loader.as_ref().map(|l| l.waker());
    let mut runs = Vec::new();
    let mut stops = Vec::new();
    for (stream, kinesis_stream) in streams {
        // Every batch is committed with its shard position through the exactly-once protocol
        // of docs/delivery.md; a crash at any point neither loses nor duplicates an event.
        let mut target = LakeTarget::new(lake.clone(), &stream, Some(pipeline.catalog().clone()));
        target.raw_archive = raw_archive;
        let (source, committer, stop) = etl_kinesis::open_source(
            client.clone(),
            &kinesis_stream,
            target,
            per_stream(&options),
        )
        .await
        .with_context(|| format!("opening Kinesis stream {kinesis_stream}"))?;
        stops.push(stop);
        let pipeline = pipeline.clone();
        let wake = wake.clone();
        let span = tracing::info_span!(
            "stream",
            stream = stream.as_str(),
            kinesis_stream = kinesis_stream.as_str()
        );
        runs.push(tokio::spawn(async move {
            let _gauges = crate::observe::kinesis_gauges(stream.as_str(), &committer);
            let mut writer: Arc<dyn BatchWriter> = Arc::new(committer.clone());
            if let Some(wake) = wake {
                writer = Arc::new(crate::cmd_warehouse::WakeLoader {
                    inner: writer,
                    wake,
                });
            }
            let summary = pipeline
                .ingest_with_writer(&stream, Box::new(source), None, writer)
                .instrument(span)
                .await?;
            committer.flush().await?;
            anyhow::Ok((summary, committer.lag()))
        }));
    }
    let (loader_stop, loader_task) = match loader {
        Some(mut loader) => {
            let (tx, rx) = tokio::sync::oneshot::channel::<()>();
            let task = tokio::spawn(
                async move {
                    let summary = loader
                        .follow(async {
                            let _ = rx.await;
                        })
                        .await;
                    (loader, summary)
                }
                .instrument(tracing::info_span!("loader")),
            );
            (Some(tx), Some(task))
        }
        None => (None, None),
    };
    observe.ready();
    let signalled = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let signal_flag = signalled.clone();
    let signals = tokio::spawn(async move {
        crate::shutdown::requested().await;
        signal_flag.store(true, std::sync::atomic::Ordering::SeqCst);
        tracing::warn!("stop requested: finishing the batches in flight and committing positions");
        for stop in &stops {
            stop.stop();
        }
        crate::cmd_leases::handover_deadline(handover).await;
    });
    let mut failed = None;
    for run in runs {
        match run.await.context("stream task")? {
            Ok((summary, lag)) => {
                println!("{summary}");
                let mut lag: Vec<_> = lag.into_iter().collect();
                lag.sort();
                for (shard, ms) in lag {
                    println!("  {shard}: {ms} ms behind latest");
                }
            }
            Err(e) => failed = Some(e),
        }
    }
    signals.abort();
    if let (Some(stop), Some(task)) = (loader_stop, loader_task) {
        // The consumer stopped: the loader finishes the load in flight; after a normal end
        // (--until-caught-up) a last pass loads every batch the consumer committed.
        let _ = stop.send(());
        let (mut loader, summary) = task.await.context("loader task")?;
        let mut summary = summary?;
        if failed.is_none() && !signalled.load(std::sync::atomic::Ordering::SeqCst) {
            summary += loader.load_pending().await?;
        }
        if let Err(e) = crate::cmd_warehouse::report(&loader, &summary) {
            failed.get_or_insert(e);
        }
    }
    observe.finish().await;
    match failed {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// The options of one stream's source: its own metrics (shard ids repeat across streams, so a
/// shared metrics object would mix their lag entries).
fn per_stream(options: &SourceOptions) -> SourceOptions {
    let mut options = options.clone();
    options.reader.metrics = Arc::default();
    options
}
