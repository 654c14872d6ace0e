//! Kinesis source against kinesalite: `produce` → 4 shards → `KinesisSource` → pipeline → lake,
//! every event exactly once; resume from committed positions, also in the middle of a KPL
//! aggregate.

use std::path::Path;
use std::sync::Arc;

use etl_generate::{Generator, GeneratorConfig, Stream};
use etl_kinesis::{open_source, produce, LakeTarget, ProduceOptions, SourceOptions};
use etl_lake::Lake;
use etl_pipeline::{BatchWriter, StreamSummary};
use etl_testbed::unique_name;

use crate::{pipeline, Context, Failure, TestResult};

const STREAM: &str = "app_events";

use etl_testbed::create_stream;

/// Only valid, unique app events: every event must reach the lake exactly once.
pub(crate) fn events(seed: u64, n: u64) -> GeneratorConfig {
    GeneratorConfig {
        seed,
        events: n,
        call_share: 0.0,
        duplicate_rate: 0.0,
        malformed_rate: 0.0,
        ..GeneratorConfig::default()
    }
}

fn expected_ids(cfg: GeneratorConfig) -> Result<Vec<String>, Failure> {
    let mut generator = Generator::new(cfg).context("generator")?;
    let mut ids = Vec::new();
    while let Some((stream, _, line)) = generator.next_record() {
        assert_eq!(stream, Stream::AppEvents);
        let v: serde_json::Value = serde_json::from_slice(line).context("generated JSON")?;
        ids.push(v["event_id"].as_str().context("event_id")?.to_string());
    }
    Ok(ids)
}

/// Runs the source until every shard is at its tip, or with `stop_early` asks it to stop once
/// the first batch is committed (what SIGTERM does in `etl run`).
async fn consume(
    client: &etl_aws::kinesis::Client,
    name: &str,
    lake: &Lake,
    batch_max_records: usize,
    stop_early: bool,
) -> Result<(StreamSummary, etl_kinesis::PositionCommitter), Failure> {
    let options = SourceOptions {
        stop_when_caught_up: true,
        batch_max_ms: 300,
        ..SourceOptions::default()
    };
    let pipeline = pipeline(lake, batch_max_records)?;
    let target = LakeTarget::new(lake.clone(), STREAM, Some(pipeline.catalog().clone()));
    let (source, committer, stop) = open_source(client.clone(), name, target, options)
        .await
        .context("open_source")?;
    let progress: Option<etl_pipeline::Progress> = stop_early
        .then(|| -> etl_pipeline::Progress { Arc::new(move |_: u64, _: u64| stop.stop()) });
    let writer: Arc<dyn BatchWriter> = Arc::new(committer.clone());
    let summary = pipeline
        .ingest_with_writer(STREAM, Box::new(source), progress, writer)
        .await
        .context("ingest")?;
    committer.flush().await.context("flush")?;
    Ok((summary, committer))
}

fn assert_exactly_once(lake_dir: &Path, expected: &[String]) -> TestResult {
    let rows = crate::lake_rows(lake_dir, STREAM)?;
    crate::assert_ids_exactly_once(rows.iter().map(|r| r.event_id.as_str()), expected)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kinesis_four_shards_every_event_exactly_once() -> TestResult {
    let client = etl_testbed::kinesis().await?.client().await?;
    let name = unique_name("kinesis-source");
    create_stream(&client, &name, 4).await?;
    let n = 20_000;
    let options = ProduceOptions {
        targets: vec![("app_events".to_string(), name.clone())],
        aggregate: false,
        rate: None,
    };
    let produced = produce(&client, etl_generate::records(events(7, n))?, &options)
        .await
        .context("produce")?;
    assert_eq!(produced.events.get(&name).copied(), Some(n));
    assert_eq!(produced.kinesis_records, n);
    assert!(produced.calls >= n / 500, "{produced:?}");

    let dir = tempfile::tempdir().context("tempdir")?;
    let lake = Lake::open(&dir.path().to_string_lossy()).context("lake")?;
    let (summary, committer) = consume(&client, &name, &lake, 1500, false).await?;
    assert_eq!(summary.read, n);
    assert_eq!(summary.written, n, "{summary:?}");
    assert_exactly_once(dir.path(), &expected_ids(events(7, n))?)?;

    let committed = committer.committed();
    assert_eq!(committed.len(), 4, "a position per shard: {committed:?}");
    assert!(committed.values().all(|p| p.last.is_some() && !p.finished));
    let lag = committer.lag();
    assert_eq!(lag.len(), 4, "lag per shard: {lag:?}");

    // A second run from the committed positions finds nothing new.
    let (again, _) = consume(&client, &name, &lake, 1500, false).await?;
    assert_eq!(again.read, 0, "{again:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kinesis_kpl_aggregates_resume_mid_aggregate() -> TestResult {
    let client = etl_testbed::kinesis().await?.client().await?;
    let name = unique_name("kinesis-kpl");
    create_stream(&client, &name, 4).await?;
    let n = 6_000;
    let options = ProduceOptions {
        targets: vec![("app_events".to_string(), name.clone())],
        aggregate: true,
        rate: None,
    };
    let produced = produce(&client, etl_generate::records(events(11, n))?, &options)
        .await
        .context("produce")?;
    assert!(
        produced.kinesis_records < n / 100,
        "aggregated into few records: {produced:?}"
    );

    let dir = tempfile::tempdir().context("tempdir")?;
    let lake = Lake::open(&dir.path().to_string_lossy()).context("lake")?;
    // Batches of 250 user records end inside aggregates of ~1,700; stop after the first batch.
    let (first, committer) = consume(&client, &name, &lake, 250, true).await?;
    assert!(
        first.read >= 250 && first.read < n,
        "first run read {}",
        first.read
    );
    let mid = committer
        .committed()
        .values()
        .filter_map(|p| p.last.as_ref())
        .any(|p| p.sub_sequence > 0);
    assert!(
        mid,
        "a committed position inside an aggregate: {:?}",
        committer.committed()
    );

    let (rest, _) = consume(&client, &name, &lake, 2000, false).await?;
    assert_eq!(
        first.read + rest.read,
        n,
        "first {} + rest {}",
        first.read,
        rest.read
    );
    assert_exactly_once(dir.path(), &expected_ids(events(11, n))?)?;
    Ok(())
}

#[tokio::test]
async fn kinesis_missing_stream_is_a_clear_error() -> TestResult {
    let client = etl_testbed::kinesis().await?.client().await?;
    let dir = tempfile::tempdir().context("tempdir")?;
    let lake = Lake::open(&dir.path().to_string_lossy()).context("lake")?;
    let name = unique_name("no-such-stream");
    let target = LakeTarget::new(lake, STREAM, None);
    match open_source(client, &name, target, SourceOptions::default()).await {
        Err(e @ etl_kinesis::KinesisError::StreamNotFound(_)) => {
            assert!(e.to_string().contains(&name), "{e}");
            Ok(())
        }
        Err(e) => Err(Failure(format!("expected StreamNotFound, got {e}"))),
        Ok(_) => Err(Failure("opened a stream that does not exist".into())),
    }
}
