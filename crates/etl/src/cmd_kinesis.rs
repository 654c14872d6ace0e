//! `etl produce` (generated events → Kinesis) and `etl run` (Kinesis → pipeline → lake).

use crate::setup::Setup;
use anyhow::{bail, Context, Result};
use clap::Args;
use etl_generate::{GeneratorConfig, Stream};
use etl_kinesis::{LakePositionStore, ProduceOptions, SourceOptions, StartPosition};
use etl_pipeline::CommitSink;
use std::sync::Arc;

/// How to reach Kinesis.
#[derive(Debug, Args)]
pub struct KinesisEndpoint {
    /// AWS region of the streams.
    #[arg(long, default_value = etl_aws::DEFAULT_REGION, env = "AWS_REGION")]
    pub aws_region: String,
    /// Endpoint override (a local stand-in such as kinesalite).
    #[arg(long)]
    pub aws_endpoint_url: Option<String>,
}

impl KinesisEndpoint {
    async fn client(&self) -> Result<etl_aws::kinesis::Client> {
        let settings = etl_aws::AwsSettings {
            region: self.aws_region.clone(),
            endpoint_url: self.aws_endpoint_url.clone(),
            ..etl_aws::AwsSettings::default()
        };
        Ok(etl_aws::AwsClients::load(&settings).await?.kinesis())
    }
}

/// `etl produce`.
#[derive(Debug, Args)]
pub struct ProduceArgs {
    /// Kinesis stream for app events (app events are not sent without it).
    #[arg(long)]
    pub app_stream: Option<String>,
    /// Kinesis stream for call events (call events are not sent without it).
    #[arg(long)]
    pub call_stream: Option<String>,
    /// Number of events generated (both streams together).
    #[arg(long, default_value_t = 100_000)]
    pub events: u64,
    /// Random seed of the generator.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
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
    /// Kinesis stream holding app events.
    #[arg(long)]
    pub app_stream: Option<String>,
    /// Kinesis stream holding call events.
    #[arg(long)]
    pub call_stream: Option<String>,
    /// Start of shards without a committed position: `trim-horizon`, `latest` or `at:<epoch ms>`.
    #[arg(long, default_value = "trim-horizon")]
    pub start: String,
    /// Stop once every shard is at its tip instead of running until SIGTERM / Ctrl-C.
    #[arg(long)]
    pub until_caught_up: bool,
    /// A batch is committed at the latest this many milliseconds after its first record.
    #[arg(long, default_value_t = 1_000)]
    pub batch_max_ms: u64,
    #[command(flatten)]
    pub endpoint: KinesisEndpoint,
}

fn targets(app: &Option<String>, call: &Option<String>) -> Result<Vec<(Stream, String)>> {
    let out: Vec<(Stream, String)> = [(Stream::AppEvents, app), (Stream::CallEvents, call)]
        .into_iter()
        .filter_map(|(s, name)| name.clone().map(|n| (s, n)))
        .collect();
    if out.is_empty() {
        bail!("name at least one Kinesis stream: --app-stream and/or --call-stream");
    }
    Ok(out)
}

pub async fn produce(args: ProduceArgs) -> Result<()> {
    let client = args.endpoint.client().await?;
    let options = ProduceOptions {
        targets: targets(&args.app_stream, &args.call_stream)?,
        aggregate: args.aggregate,
        rate: args.rate,
    };
    let config = GeneratorConfig {
        seed: args.seed,
        events: args.events,
        ..GeneratorConfig::default()
    };
    let summary = etl_kinesis::produce(&client, config, &options).await?;
    let mut per_stream: Vec<_> = summary.events.iter().collect();
    per_stream.sort();
    for (stream, n) in per_stream {
        println!("{stream}: {n} events");
    }
    println!(
        "{} Kinesis records in {} PutRecords calls ({} entries re-sent), {} events of unsent streams skipped, {:.1}s",
        summary.kinesis_records,
        summary.calls,
        summary.retried_entries,
        summary.skipped,
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
            _ => bail!("--start must be trim-horizon, latest or at:<epoch ms>, got `{other}`"),
        },
    })
}

pub async fn run(setup: &Setup, args: RunArgs) -> Result<()> {
    let client = args.endpoint.client().await?;
    let pipeline = Arc::new(setup.pipeline()?);
    pipeline.sync_catalog().await?;
    let store = Arc::new(LakePositionStore::new(setup.lake()?));
    let options = SourceOptions {
        start: start_position(&args.start)?,
        batch_max_ms: args.batch_max_ms,
        stop_when_caught_up: args.until_caught_up,
        ..SourceOptions::default()
    };
    let mut runs = Vec::new();
    let mut stops = Vec::new();
    for (stream, kinesis_stream) in targets(&args.app_stream, &args.call_stream)? {
        let (source, committer, stop) = etl_kinesis::open_source(
            client.clone(),
            &kinesis_stream,
            store.clone(),
            options.clone(),
        )
        .await
        .with_context(|| format!("opening Kinesis stream {kinesis_stream}"))?;
        stops.push(stop);
        let pipeline = pipeline.clone();
        runs.push(tokio::spawn(async move {
            let hook: Arc<dyn CommitSink> = Arc::new(committer.clone());
            let summary = pipeline
                .ingest_with_hook(stream.as_str(), Box::new(source), None, Some(hook))
                .await?;
            committer.flush().await?;
            anyhow::Ok((summary, committer.lag()))
        }));
    }
    let signals = tokio::spawn(async move {
        if wait_for_signal().await.is_ok() {
            tracing::warn!(
                "stop requested: finishing the batches in flight and committing positions"
            );
            for stop in &stops {
                stop.stop();
            }
        }
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
    match failed {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

async fn wait_for_signal() -> std::io::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r,
        _ = term.recv() => Ok(()),
    }
}
