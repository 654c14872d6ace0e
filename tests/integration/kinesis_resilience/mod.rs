//! Kinesis source under stress, against kinesalite: 100,000 events over 4 shards; split and merge
//! while producing and consuming (per-key order kept); stop mid-stream and resume; throttling,
//! 5xx and dropped connections injected by the test bed's fault proxy; iterators expired by
//! moving a kinesalite's clock (libfaketime). Every test reads the Parquet back and compares
//! `event_id` sets with what was produced; every run also asserts the pipeline's own dedup window
//! dropped nothing (so a record read twice by the source cannot hide behind it).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use etl_aws::kinesis::Client;
use etl_kinesis::{
    open_source, LakeTarget, PositionCommitter, ReaderMetrics, ReaderOptions, SourceOptions,
    StartPosition, StopHandle,
};
use etl_lake::catalog::{Catalog, FileCatalog};
use etl_lake::Lake;
use etl_pipeline::{BatchWriter, StreamSummary};
use etl_testbed::{unique_name, FaultPlan, FaultProxy, Kinesalite};

use crate::{Context, Failure, TestResult};

mod support;
use support::{
    assert_exactly_once, assert_per_key_order, create_stream, ids, keyed_events, lake_rows, now_ms,
    pipeline, put_in_order, wait_active,
};

pub(crate) const STREAM: &str = "app_events";
/// Partition keys of the keyed producer: few enough that every shard gets many events per key.
pub(crate) const KEYS: usize = 64;

/// When a consumer run ends.
enum Until {
    /// Every shard at its tip and everything read committed.
    CaughtUp,
    /// `StopHandle::stop` (what SIGTERM does in `etl run`) once this many records are committed.
    Committed(u64),
}

struct Run {
    summary: StreamSummary,
    committer: PositionCommitter,
    metrics: Arc<ReaderMetrics>,
}

/// Runs a `KinesisSource` of `name` into the lake's `app_events` through the real pipeline and
/// the source's own batch writer (the exactly-once delivery).
async fn consume(
    client: &Client,
    name: &str,
    lake: &Lake,
    batch_max_records: usize,
    reader: ReaderOptions,
    until: Until,
) -> Result<Run, Failure> {
    let metrics = reader.metrics.clone();
    let options = SourceOptions {
        stop_when_caught_up: matches!(until, Until::CaughtUp),
        batch_max_ms: 300,
        discovery_interval: Duration::from_millis(500),
        start: StartPosition::TrimHorizon,
        reader,
        ..SourceOptions::default()
    };
    let catalog: Arc<dyn Catalog> = Arc::new(FileCatalog::new(lake.clone()));
    let target = LakeTarget::new(lake.clone(), STREAM, Some(catalog));
    let (source, committer, stop) = open_source(client.clone(), name, target, options)
        .await
        .context("open_source")?;
    let progress: Option<etl_pipeline::Progress> = match until {
        Until::CaughtUp => None,
        Until::Committed(n) => Some(Arc::new(move |read: u64, _: u64| {
            if read >= n {
                stop.stop();
            }
        })),
    };
    let writer: Arc<dyn BatchWriter> = Arc::new(committer.clone());
    let summary = pipeline(lake, batch_max_records)?
        .ingest_with_writer(STREAM, Box::new(source), progress, writer)
        .await
        .context("ingest")?;
    committer.flush().await.context("flush")?;
    assert_eq!(
        summary.duplicates, 0,
        "the source handed on a record twice in one run: {summary:?}"
    );
    Ok(Run {
        summary,
        committer,
        metrics,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kinesis_100k_events_over_4_shards_exactly_once() -> TestResult {
    let client = etl_testbed::kinesis().await?.client().await?;
    let name = unique_name("kinesis-100k");
    create_stream(&client, &name, 4).await?;
    let events = keyed_events(21, 100_000)?;
    put_in_order(&client, &name, &events).await?;

    let dir = tempfile::tempdir().context("tempdir")?;
    let lake = Lake::open(&dir.path().to_string_lossy()).context("lake")?;
    let run = consume(
        &client,
        &name,
        &lake,
        10_000,
        ReaderOptions::default(),
        Until::CaughtUp,
    )
    .await?;
    assert_eq!(run.summary.read, 100_000, "{:?}", run.summary);
    assert_eq!(run.summary.written, 100_000, "{:?}", run.summary);
    assert_exactly_once(&lake_rows(dir.path(), STREAM)?, &ids(&events))?;

    // Lag: every shard reported MillisBehindLatest, and the newest committed event time is the
    // last event's (2026-11-01T00:01:39.999Z).
    let lag = run.committer.shard_lag();
    assert_eq!(lag.len(), 4, "{lag:?}");
    let newest = 1_793_491_200_000 + 99_999;
    let min_lag = lag.values().filter_map(|l| l.event_time_lag_ms).min();
    assert!(
        min_lag.is_some_and(|l| (l - (now_ms() - newest)).abs() < 60_000),
        "{lag:?}"
    );
    assert!(
        lag.values().all(|l| l.millis_behind_latest.is_some()),
        "{lag:?}"
    );
    run.metrics.log(&name, &run.committer.committed(), now_ms());
    Ok(())
}

/// Reshards `name`: splits `shardId-000000000000` in the middle of its hash range, then merges
/// `shardId-000000000002` with `shardId-000000000003` (adjacent in a 4-shard stream).
async fn split(client: &Client, name: &str) -> TestResult {
    let shards = client
        .list_shards()
        .stream_name(name)
        .send()
        .await
        .context("ListShards")?;
    let shard = shards
        .shards()
        .iter()
        .find(|s| s.shard_id() == "shardId-000000000000")
        .context("shard 0")?;
    let range = shard.hash_key_range().context("hash key range")?;
    let lo: u128 = range
        .starting_hash_key()
        .parse()
        .map_err(|e| Failure(format!("{e}")))?;
    let hi: u128 = range
        .ending_hash_key()
        .parse()
        .map_err(|e| Failure(format!("{e}")))?;
    client
        .split_shard()
        .stream_name(name)
        .shard_to_split("shardId-000000000000")
        .new_starting_hash_key((lo + (hi - lo) / 2).to_string())
        .send()
        .await
        .context("SplitShard")?;
    Ok(wait_active(client, name).await?)
}

async fn merge(client: &Client, name: &str) -> TestResult {
    client
        .merge_shards()
        .stream_name(name)
        .shard_to_merge("shardId-000000000002")
        .adjacent_shard_to_merge("shardId-000000000003")
        .send()
        .await
        .context("MergeShards")?;
    Ok(wait_active(client, name).await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kinesis_split_and_merge_while_consuming_keeps_every_event_once_and_in_key_order(
) -> TestResult {
    let client = etl_testbed::kinesis().await?.client().await?;
    let name = unique_name("kinesis-reshard");
    create_stream(&client, &name, 4).await?;
    let n = 30_000u64;
    let events = keyed_events(22, n)?;
    let dir = tempfile::tempdir().context("tempdir")?;
    let lake = Lake::open(&dir.path().to_string_lossy()).context("lake")?;

    // Slow reads (100 records per call, 5 calls/s per shard) so that the parents still have a
    // backlog when their children appear: a child read too early lands in the lake first.
    let reader = ReaderOptions {
        limit: 100,
        ..ReaderOptions::default()
    };
    let consumer = {
        let (client, name, lake) = (client.clone(), name.clone(), lake.clone());
        tokio::spawn(async move {
            consume(&client, &name, &lake, 2_000, reader, Until::Committed(n)).await
        })
    };
    // Produce in thirds: split right after the first, merge right after the second, both while
    // the consumer reads.
    let third = events.len() / 3;
    let mut shard_of = put_in_order(&client, &name, &events[..third]).await?;
    split(&client, &name).await?;
    shard_of.extend(put_in_order(&client, &name, &events[third..2 * third]).await?);
    merge(&client, &name).await?;
    shard_of.extend(put_in_order(&client, &name, &events[2 * third..]).await?);

    let run = tokio::time::timeout(Duration::from_secs(240), consumer)
        .await
        .map_err(|_| Failure("the consumer did not commit every event within 240 s".into()))?
        .context("consumer task")??;
    assert_eq!(run.summary.read, n, "{:?}", run.summary);
    let rows = lake_rows(dir.path(), STREAM)?;
    assert_exactly_once(&rows, &ids(&events))?;
    let steps = assert_per_key_order(&rows, &events, &shard_of)?;
    assert!(
        steps >= KEYS / 2,
        "keys moved from a parent to a child shard: {steps}"
    );

    let committed = run.committer.committed();
    for parent in [
        "shardId-000000000000",
        "shardId-000000000002",
        "shardId-000000000003",
    ] {
        assert!(
            committed.get(parent).is_some_and(|p| p.finished),
            "closed parent {parent} read to its end and committed: {committed:?}"
        );
    }
    let children = committed
        .keys()
        .filter(|s| s.as_str() > "shardId-000000000003")
        .count();
    assert_eq!(
        children, 3,
        "two split children and one merge child read: {committed:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kinesis_stop_mid_stream_then_resume_loses_and_repeats_nothing() -> TestResult {
    let client = etl_testbed::kinesis().await?.client().await?;
    let name = unique_name("kinesis-stop");
    create_stream(&client, &name, 4).await?;
    let n = 20_000u64;
    let events = keyed_events(23, n)?;
    let dir = tempfile::tempdir().context("tempdir")?;
    let lake = Lake::open(&dir.path().to_string_lossy()).context("lake")?;

    // The producer keeps putting while the first consumer is stopped after ~4,000 records.
    let producer = {
        let (client, name, events) = (client.clone(), name.clone(), events.clone());
        tokio::spawn(async move {
            for chunk in events.chunks(1_000) {
                put_in_order(&client, &name, chunk).await?;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            TestResult::Ok(())
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let first = consume(
        &client,
        &name,
        &lake,
        1_000,
        ReaderOptions::default(),
        Until::Committed(4_000),
    )
    .await?;
    assert!(
        first.summary.read >= 4_000 && first.summary.read < n,
        "first run stopped mid-stream: {:?}",
        first.summary
    );
    producer.await.context("producer task")??;
    let second = consume(
        &client,
        &name,
        &lake,
        5_000,
        ReaderOptions::default(),
        Until::CaughtUp,
    )
    .await?;
    assert_eq!(
        first.summary.read + second.summary.read,
        n,
        "first {} + second {}",
        first.summary.read,
        second.summary.read
    );
    assert_exactly_once(&lake_rows(dir.path(), STREAM)?, &ids(&events))?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kinesis_throttling_5xx_and_dropped_connections_are_recovered_from() -> TestResult {
    let kinesalite = etl_testbed::kinesis().await?;
    let client = kinesalite.client().await?;
    let name = unique_name("kinesis-faults");
    create_stream(&client, &name, 4).await?;
    let n = 8_000u64;
    let events = keyed_events(24, n)?;
    put_in_order(&client, &name, &events).await?;

    let plan = FaultPlan {
        operation: Some("GetRecords".into()),
        throttle_first: 12,
        throttle_fraction: 0.25,
        server_error_fraction: 0.1,
        drop_fraction: 0.1,
        seed: 7,
    };
    let proxy = FaultProxy::start(kinesalite.port(), plan).await?;
    // Two attempts per call: some faults are absorbed by the SDK's retries, the rest reach the
    // reader, which pauses the shard and calls again.
    let settings = etl_aws::AwsSettings {
        max_attempts: 2,
        ..etl_testbed::settings_for(proxy.endpoint())
    };
    let faulty = etl_aws::AwsClients::load(&settings)
        .await
        .context("clients")?
        .kinesis();
    // Small reads: ~100 GetRecords calls, so every kind of fault occurs.
    let reader = ReaderOptions {
        limit: 100,
        failure_backoff: Duration::from_millis(50),
        failure_backoff_max: Duration::from_millis(400),
        max_failures: 20,
        ..ReaderOptions::default()
    };
    let dir = tempfile::tempdir().context("tempdir")?;
    let lake = Lake::open(&dir.path().to_string_lossy()).context("lake")?;
    let run = consume(&faulty, &name, &lake, 2_000, reader, Until::CaughtUp).await?;
    assert_eq!(run.summary.read, n, "{:?}", run.summary);
    assert_exactly_once(&lake_rows(dir.path(), STREAM)?, &ids(&events))?;

    let stats = proxy.stats();
    assert!(stats.throttled >= 12, "{stats:?}");
    assert!(stats.server_errors > 0 && stats.dropped > 0, "{stats:?}");
    let counts = run.metrics.counts();
    // The first 12 GetRecords requests are throttled: with 2 attempts per call, at least 6 calls
    // reach the reader as throttled.
    assert!(counts.throttled_calls >= 6, "{counts:?} {stats:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kinesis_expired_iterators_are_recovered_from() -> TestResult {
    let (kinesalite, clock) = Kinesalite::start_with_fake_clock().await?;
    let client = kinesalite.client().await?;
    let name = unique_name("kinesis-expiry");
    create_stream(&client, &name, 2).await?;
    let n = 6_000u64;
    let events = keyed_events(25, n)?;
    put_in_order(&client, &name, &events).await?;

    // The consumer goes through a fault-free proxy that counts kinesalite's own error answers.
    let proxy = FaultProxy::start(kinesalite.port(), FaultPlan::default()).await?;
    let observed = proxy.clients().await?.kinesis();
    let reader = ReaderOptions {
        limit: 200,
        ..ReaderOptions::default()
    };
    // Six minutes pass on kinesalite's clock every 300 ms of the run: every iterator held across
    // a jump is older than kinesalite's 5-minute limit.
    let jumps = Arc::new(AtomicU64::new(0));
    let stop_jumping = StopHandle::default();
    let jumper = {
        let (jumps, stop) = (jumps.clone(), stop_jumping.clone());
        let clock = Arc::new(clock);
        tokio::spawn(async move {
            while !stop.is_stopped() && jumps.load(Ordering::SeqCst) < 100 {
                tokio::time::sleep(Duration::from_millis(300)).await;
                clock.advance(Duration::from_secs(360))?;
                jumps.fetch_add(1, Ordering::SeqCst);
            }
            Result::<(), etl_testbed::TestbedError>::Ok(())
        })
    };
    let dir = tempfile::tempdir().context("tempdir")?;
    let lake = Lake::open(&dir.path().to_string_lossy()).context("lake")?;
    let run = consume(&observed, &name, &lake, 1_000, reader, Until::CaughtUp).await;
    stop_jumping.stop();
    jumper.await.context("clock task")??;
    let run = run?;
    assert_eq!(run.summary.read, n, "{:?}", run.summary);
    assert_exactly_once(&lake_rows(dir.path(), STREAM)?, &ids(&events))?;

    let expired = proxy
        .stats()
        .upstream_errors
        .get("ExpiredIteratorException")
        .copied()
        .unwrap_or(0);
    let counts = run.metrics.counts();
    assert!(
        expired > 0 && counts.iterators_expired == expired,
        "kinesalite expired {expired} iterators, the readers recovered {}; {} clock jumps",
        counts.iterators_expired,
        jumps.load(Ordering::SeqCst)
    );
    let by_shard: BTreeMap<_, _> = run.committer.committed().into_iter().collect();
    assert_eq!(by_shard.len(), 2, "{by_shard:?}");
    Ok(())
}
