//! Exactly-once delivery of the Kinesis consumer into an S3 lake (kinesalite + moto): the commit
//! protocol of `docs/delivery.md` wired into `KinesisSource` / `PositionCommitter`.
//!
//! - SIGKILL at random moments: a child test process (this binary re-executed with the ignored
//!   [`child_consumer`]) consumes the stream into the S3 lake and is killed 20 times; at the end
//!   every valid event is in the lake exactly once and every rejected record exactly once in the
//!   dead letters.
//! - Each named crash point of the protocol (test fail points), then recovery by a new consumer.
//! - Two consumers on one shard: one is fenced with a clear error, the table holds each event once.

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use etl_aws::kinesis::primitives::Blob;
use etl_aws::kinesis::types::PutRecordsRequestEntry;
use etl_generate::{Generator, GeneratorConfig, Stream};
use etl_kinesis::{open_source, LakeTarget, SourceOptions};
use etl_lake::catalog::{Catalog, FileCatalog};
use etl_lake::delivery::{CommitRecord, FailPoint};
use etl_lake::{DeadLetter, Lake, S3Encryption};
use etl_pipeline::{BatchWriter, StreamSummary};
use etl_testbed::{unique_name, StandIn};

use crate::{Context, Failure, TestResult};

const TABLE: &str = "app_events";
/// Events produced for the SIGKILL test (the acceptance figure is 200,000).
const CRASH_EVENTS: u64 = 200_000;
/// SIGKILLs in the crash test.
const KILLS: usize = 20;
const CHILD: &str = "lake_delivery::child_consumer";

pub(crate) use etl_testbed::create_stream;

/// Generated app events, about 1 % malformed (so dead letters exist); records over 1 MiB, which
/// Kinesis refuses, are left out.
pub(crate) fn lines(seed: u64, n: u64) -> Result<Vec<Vec<u8>>, Failure> {
    let cfg = GeneratorConfig {
        seed,
        events: n,
        call_share: 0.0,
        duplicate_rate: 0.0,
        malformed_rate: 0.01,
        ..GeneratorConfig::default()
    };
    let mut generator = Generator::new(cfg).context("generator")?;
    let mut out = Vec::new();
    while let Some((stream, _, line)) = generator.next_record() {
        assert_eq!(stream, Stream::AppEvents);
        if line.len() < 900_000 {
            out.push(line.to_vec());
        }
    }
    Ok(out)
}

/// PutRecords in calls of 500, sending failed entries again.
pub(crate) async fn put(
    client: &etl_aws::kinesis::Client,
    stream: &str,
    lines: &[Vec<u8>],
) -> TestResult {
    for (c, chunk) in lines.chunks(500).enumerate() {
        let mut entries: Vec<PutRecordsRequestEntry> = chunk
            .iter()
            .enumerate()
            .map(|(i, l)| {
                PutRecordsRequestEntry::builder()
                    .data(Blob::new(l.clone()))
                    .partition_key(format!("k{}", c * 500 + i))
                    .build()
                    .context("entry")
            })
            .collect::<Result<_, _>>()?;
        for _ in 0..20 {
            let out = client
                .put_records()
                .stream_name(stream)
                .set_records(Some(entries.clone()))
                .send()
                .await
                .context("PutRecords")?;
            entries = entries
                .into_iter()
                .zip(out.records())
                .filter(|(_, r)| r.error_code().is_some())
                .map(|(e, _)| e)
                .collect();
            if entries.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if !entries.is_empty() {
            return Err(Failure(format!("{} entries never accepted", entries.len())));
        }
    }
    Ok(())
}

pub(crate) fn s3_lake(s3_endpoint: &str, location: &str) -> Result<Lake, Failure> {
    let settings = etl_testbed::settings_for(s3_endpoint);
    let options = etl_glue::s3_options(&settings, S3Encryption::S3Managed);
    Lake::open_s3(location, &options).context("S3 lake")
}

pub(crate) async fn new_bucket_lake(moto: &etl_testbed::Moto) -> Result<(String, Lake), Failure> {
    let bucket = unique_name("delivery");
    moto.clients()
        .await?
        .s3()
        .create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .context("CreateBucket")?;
    let location = format!("s3://{bucket}/lake");
    let lake = s3_lake(moto.endpoint(), &location)?;
    Ok((location, lake))
}

/// One consumer run until every shard is at its tip; the error text if it stopped on one.
pub(crate) async fn consume(
    client: &etl_aws::kinesis::Client,
    stream: &str,
    lake: &Lake,
    batch_max_records: usize,
    writer: &str,
    fail_at: Option<(u64, FailPoint)>,
) -> Result<Result<StreamSummary, String>, Failure> {
    consume_into(
        client,
        stream,
        lake,
        TABLE,
        batch_max_records,
        writer,
        fail_at,
    )
    .await
}

/// [`consume`] into the lake table `table` (= pipeline stream).
pub(crate) async fn consume_into(
    client: &etl_aws::kinesis::Client,
    stream: &str,
    lake: &Lake,
    table: &str,
    batch_max_records: usize,
    writer: &str,
    fail_at: Option<(u64, FailPoint)>,
) -> Result<Result<StreamSummary, String>, Failure> {
    let pipeline = crate::pipeline(lake, batch_max_records)?;
    consume_with(client, stream, lake, &pipeline, table, writer, fail_at).await
}

/// [`consume_into`] with a pipeline of the caller's (e.g. with a Glue catalog).
pub(crate) async fn consume_with(
    client: &etl_aws::kinesis::Client,
    stream: &str,
    lake: &Lake,
    pipeline: &etl_pipeline::Pipeline,
    table: &str,
    writer: &str,
    fail_at: Option<(u64, FailPoint)>,
) -> Result<Result<StreamSummary, String>, Failure> {
    let mut target = LakeTarget::new(lake.clone(), table, Some(pipeline.catalog().clone()));
    target.writer = writer.to_string();
    target.fail_at = fail_at;
    let source_options = SourceOptions {
        stop_when_caught_up: true,
        batch_max_ms: 300,
        ..SourceOptions::default()
    };
    let (source, committer, _stop) =
        match open_source(client.clone(), stream, target, source_options).await {
            Ok(opened) => opened,
            Err(e) => return Ok(Err(e.to_string())),
        };
    let writer: Arc<dyn BatchWriter> = Arc::new(committer.clone());
    match pipeline
        .ingest_with_writer(table, Box::new(source), None, writer)
        .await
    {
        Ok(summary) => {
            committer.flush().await.context("flush")?;
            Ok(Ok(summary))
        }
        Err(e) => Ok(Err(etl_aws::describe_error(&e))),
    }
}

/// The lake read back: every `event_id` of the table's Parquet files (with repeats) and every
/// dead letter.
async fn read_lake(lake: &Lake) -> Result<(Vec<String>, Vec<DeadLetter>), Failure> {
    let mut ids = Vec::new();
    for path in lake.list(TABLE).await.context("list table")? {
        let bytes = lake.get(&path).await.context("get")?.context(&path)?;
        assert!(
            path.ends_with(".parquet"),
            "only Parquet under the table: {path}"
        );
        ids.extend(crate::parquet_event_ids(bytes)?);
    }
    let mut dead = Vec::new();
    for path in lake
        .list(&format!("dead-letters/{TABLE}"))
        .await
        .context("list dead letters")?
    {
        let bytes = lake.get(&path).await.context("get")?.context(&path)?;
        for line in bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            dead.push(serde_json::from_slice::<DeadLetter>(line).context("dead letter")?);
        }
    }
    Ok((ids, dead))
}

/// Every produced line is either a valid event in the table exactly once or a dead letter
/// exactly once; nothing else is there; staging is empty and the commit log is a gapless chain.
pub(crate) async fn assert_exactly_once(lake: &Lake, produced: &[Vec<u8>]) -> TestResult {
    let (ids, dead) = read_lake(lake).await?;
    let mut in_lake: HashMap<String, u32> = HashMap::new();
    for id in &ids {
        *in_lake.entry(id.clone()).or_default() += 1;
    }
    let repeated: Vec<_> = in_lake.iter().filter(|(_, n)| **n > 1).take(5).collect();
    assert!(
        repeated.is_empty(),
        "events in the lake twice: {repeated:?}"
    );
    let mut positions: HashMap<(String, String), u32> = HashMap::new();
    let mut dead_raw: HashMap<Vec<u8>, u32> = HashMap::new();
    for d in &dead {
        *positions
            .entry((d.source.name.clone(), d.source.position.clone()))
            .or_default() += 1;
        *dead_raw.entry(d.original_bytes()).or_default() += 1;
    }
    let twice: Vec<_> = positions.iter().filter(|(_, n)| **n > 1).take(5).collect();
    assert!(twice.is_empty(), "dead letters twice: {twice:?}");
    assert!(!dead.is_empty(), "the input has malformed records");
    let mut missing = Vec::new();
    for line in produced {
        if let Some(n) = dead_raw.get_mut(line).filter(|n| **n > 0) {
            *n -= 1;
            continue;
        }
        let id = serde_json::from_slice::<serde_json::Value>(line)
            .ok()
            .and_then(|v| v["event_id"].as_str().map(str::to_string));
        match id.and_then(|id| in_lake.remove(&id)) {
            Some(_) => {}
            None => missing.push(String::from_utf8_lossy(line).chars().take(80).collect()),
        }
    }
    let missing: Vec<String> = missing;
    assert!(
        missing.is_empty(),
        "{} produced records neither in the lake nor dead-lettered, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(3)]
    );
    assert!(
        in_lake.is_empty(),
        "unexpected events: {:?}",
        in_lake.keys().take(3).collect::<Vec<_>>()
    );
    assert!(
        dead_raw.values().all(|n| *n == 0),
        "unexpected dead letters"
    );
    assert_eq!(ids.len() + dead.len(), produced.len());
    assert_eq!(
        lake.list("_staging").await.context("list staging")?,
        Vec::<String>::new(),
        "staging cleaned"
    );
    // The commit log of each shard is a chain: record n starts after record n-1's last position.
    let mut logs: HashMap<String, Vec<CommitRecord>> = HashMap::new();
    for path in lake.list("_delivery").await.context("list log")? {
        let bytes = lake.get(&path).await.context("get")?.context(&path)?;
        let record: CommitRecord = serde_json::from_slice(&bytes).context("record")?;
        logs.entry(record.shard.clone()).or_default().push(record);
    }
    assert!(!logs.is_empty(), "a commit log exists");
    for (shard, records) in logs {
        for (i, r) in records.iter().enumerate() {
            assert_eq!(r.n, i as u64, "{shard}: gapless");
            let previous = i.checked_sub(1).map(|p| records[p].last.clone());
            assert_eq!(r.previous_last, previous, "{shard}: record {i} chains");
            for f in &r.files {
                let head = lake.get(&f.path).await.context("get")?;
                assert_eq!(head.map(|b| b.len() as u64), Some(f.bytes), "{}", f.path);
            }
        }
    }
    Ok(())
}

/// Run only as a child process by [`kill_the_consumer_20_times_every_event_once`]: consumes the
/// stream named in the environment into the S3 lake named there, then prints `DONE`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "helper: run as a child process by kill_the_consumer_20_times_every_event_once"]
async fn child_consumer() -> TestResult {
    let var = |k: &str| std::env::var(k).ok();
    let (Some(kinesis), Some(s3), Some(stream), Some(location)) = (
        var("ETL_DELIVERY_KINESIS"),
        var("ETL_DELIVERY_S3"),
        var("ETL_DELIVERY_STREAM"),
        var("ETL_DELIVERY_LAKE"),
    ) else {
        return Ok(()); // not started by the crash test: nothing to do
    };
    let client = etl_testbed::aws_clients_for(StandIn::Kinesalite, &kinesis)
        .await?
        .kinesis();
    let lake = s3_lake(&s3, &location)?;
    let writer = format!("child-{}", std::process::id());
    match consume(&client, &stream, &lake, 2_000, &writer, None).await? {
        Ok(summary) => {
            println!("DONE read={}", summary.read);
            Ok(())
        }
        Err(e) => Err(Failure(e)),
    }
}

/// xorshift64*: reproducible "random" kill moments.
fn next_random(state: &mut u64) -> u64 {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    state.wrapping_mul(0x2545_F491_4F6C_DD1D)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_the_consumer_20_times_every_event_once() -> TestResult {
    let started = Instant::now();
    let kinesalite = etl_testbed::kinesis().await?;
    let moto = etl_testbed::moto().await?;
    let client = kinesalite.client().await?;
    let stream = unique_name("delivery-crash");
    create_stream(&client, &stream, 2).await?;
    let produced = lines(2024, CRASH_EVENTS)?;
    put(&client, &stream, &produced).await?;
    let produced_in = started.elapsed();
    let (location, lake) = new_bucket_lake(moto).await?;
    let logs = tempfile::tempdir().context("tempdir")?;

    // This very binary; through /proc so that it still works when the file was replaced by a
    // rebuild meanwhile (the kernel keeps the running image reachable there).
    let exe = std::path::PathBuf::from("/proc/self/exe");
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    let mut finished_early = 0;
    for i in 0..KILLS {
        let log = std::fs::File::create(logs.path().join(format!("child-{i}.log")))?;
        let mut child = Command::new(&exe)
            .args([
                "--ignored",
                "--exact",
                CHILD,
                "--nocapture",
                "--test-threads=1",
            ])
            .env("ETL_DELIVERY_KINESIS", kinesalite.endpoint())
            .env("ETL_DELIVERY_S3", moto.endpoint())
            .env("ETL_DELIVERY_STREAM", &stream)
            .env("ETL_DELIVERY_LAKE", &location)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .context("starting the consumer")?;
        let after = Duration::from_millis(500 + next_random(&mut seed) % 4_000);
        tokio::time::sleep(after).await;
        if child.try_wait()?.is_some() {
            finished_early += 1;
        }
        child.kill()?; // SIGKILL
        child.wait()?;
    }
    let killed_in = started.elapsed();
    let records_before = lake.list("_delivery").await.context("list log")?.len();
    assert!(records_before > 0, "the killed consumers committed batches");
    let last = consume(&client, &stream, &lake, 2_000, "final", None)
        .await?
        .map_err(Failure)?;
    let consumed_in = started.elapsed();
    assert_exactly_once(&lake, &produced).await?;
    eprintln!(
        "crash test: {} records ({} events), {KILLS} SIGKILLs ({finished_early} runs had already ended), \
         {records_before} batches committed by them, final run read {}; produced in {:.1}s, kills done at {:.1}s, all consumed at {:.1}s, checked at {:.1}s",
        produced.len(),
        CRASH_EVENTS,
        last.read,
        produced_in.as_secs_f64(),
        killed_in.as_secs_f64(),
        consumed_in.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_at_each_named_point_is_recovered_exactly_once() -> TestResult {
    let kinesalite = etl_testbed::kinesis().await?;
    let moto = etl_testbed::moto().await?;
    let client = kinesalite.client().await?;
    let stream = unique_name("delivery-points");
    create_stream(&client, &stream, 2).await?;
    let produced = lines(77, 6_000)?;
    put(&client, &stream, &produced).await?;
    for point in FailPoint::ALL {
        let (_, lake) = new_bucket_lake(moto).await?;
        // Batches of 500 records: the crash hits the 3rd commit, with 2 records committed.
        let crashed = consume(&client, &stream, &lake, 500, "crashing", Some((2, point))).await?;
        let err = crashed
            .err()
            .context("the run must stop at the fail point")?;
        assert!(err.contains("fail point"), "{point:?}: {err}");
        let records = lake.list("_delivery").await.context("list")?.len();
        let expect = if point == FailPoint::AfterStage { 2 } else { 3 };
        assert_eq!(
            records, expect,
            "{point:?}: records in the log after the crash"
        );
        let rest = consume(&client, &stream, &lake, 700, "recovering", None)
            .await?
            .map_err(|e| Failure(format!("{point:?}: {e}")))?;
        assert!(
            rest.read > 0 && rest.read < produced.len() as u64,
            "{point:?}"
        );
        assert_exactly_once(&lake, &produced).await?;
        let partitions = FileCatalog::new(lake.clone())
            .partitions(TABLE)
            .await
            .context("partitions")?;
        let mut written: Vec<String> = Vec::new();
        for path in lake.list(TABLE).await.context("list")? {
            if let Some((_, rest)) = path.split_once('/') {
                if let Some((part, _)) = rest.rsplit_once('/') {
                    written.push(part.to_string());
                }
            }
        }
        written.sort();
        written.dedup();
        let registered: Vec<String> = partitions.iter().map(|p| p.path()).collect();
        assert_eq!(
            registered, written,
            "{point:?}: every partition written is registered"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_consumers_on_one_shard_one_is_fenced() -> TestResult {
    let kinesalite = etl_testbed::kinesis().await?;
    let moto = etl_testbed::moto().await?;
    let client = kinesalite.client().await?;
    let stream = unique_name("delivery-fence");
    create_stream(&client, &stream, 1).await?;
    let produced = lines(5, 5_000)?;
    put(&client, &stream, &produced).await?;
    let (_, lake) = new_bucket_lake(moto).await?;
    let (a, b) = tokio::join!(
        consume(&client, &stream, &lake, 400, "consumer-a", None),
        consume(&client, &stream, &lake, 600, "consumer-b", None)
    );
    let outcomes = [a?, b?];
    let fenced: Vec<&String> = outcomes.iter().filter_map(|r| r.as_ref().err()).collect();
    assert_eq!(fenced.len(), 1, "exactly one consumer loses: {outcomes:?}");
    let message = fenced[0];
    assert!(
        message.contains("fenced")
            && message.contains("committed by another writer")
            && message.contains("this one stops"),
        "a clear error: {message}"
    );
    assert_exactly_once(&lake, &produced).await?;
    Ok(())
}

/// The raw archive (`raw/<table>/dt=…/hour=…/<batch-id>.ndjson.gz`, on by default): every
/// record read is in it exactly once, with a unique position and its arrival time, each file is
/// a file of a commit record, and its bytes are what a re-encoding of its lines gives. A crash
/// after a commit record (before publishing) is part of the run, so one raw file is published
/// by recovery.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_archive_holds_every_record_once() -> TestResult {
    use etl_lake::raw::{decode_raw, encode_raw, partition_of};
    use std::collections::HashSet;
    let kinesalite = etl_testbed::kinesis().await?;
    let moto = etl_testbed::moto().await?;
    let client = kinesalite.client().await?;
    let stream = unique_name("delivery-raw");
    create_stream(&client, &stream, 2).await?;
    let mut produced = lines(31, 3_000)?;
    let not_utf8 = b"{\"event_id\":\"\xff\xfe\",\"bad\":\x80}".to_vec();
    produced.push(not_utf8.clone());
    let put_from = now_ms();
    put(&client, &stream, &produced).await?;
    let (_, lake) = new_bucket_lake(moto).await?;
    let crashed = consume(
        &client,
        &stream,
        &lake,
        500,
        "raw-crashing",
        Some((1, FailPoint::AfterRecord)),
    )
    .await?;
    assert!(crashed.is_err(), "the first run stops at the fail point");
    consume(&client, &stream, &lake, 700, "raw", None)
        .await?
        .map_err(Failure)?;
    assert_exactly_once(&lake, &produced).await?;

    let mut listed: HashSet<String> = HashSet::new();
    for path in lake.list("_delivery").await.context("list log")? {
        let bytes = lake.get(&path).await.context("get")?.context(&path)?;
        let record: CommitRecord = serde_json::from_slice(&bytes).context("record")?;
        let raw: Vec<&str> = record
            .files
            .iter()
            .map(|f| f.path.as_str())
            .filter(|p| p.starts_with("raw/"))
            .collect();
        assert_eq!(raw.len(), 1, "one raw file per commit record: {path}");
        listed.extend(raw.into_iter().map(str::to_string));
    }
    let mut in_archive: HashMap<Vec<u8>, u32> = HashMap::new();
    let mut positions = HashSet::new();
    let mut files = 0;
    let mut base64_lines = 0;
    for path in lake
        .list(&format!("raw/{TABLE}"))
        .await
        .context("list raw")?
    {
        files += 1;
        assert!(path.ends_with(".ndjson.gz"), "{path}");
        assert!(
            listed.contains(&path),
            "{path} is a file of a commit record"
        );
        let gz = lake.get(&path).await.context("get")?.context(&path)?;
        let raw_lines = decode_raw(&path, &gz).context("raw file")?;
        assert!(!raw_lines.is_empty(), "{path}");
        assert_eq!(
            encode_raw(&path, &raw_lines).context("encode")?.as_ref(),
            gz.as_ref(),
            "{path}: deterministic bytes"
        );
        let first = raw_lines[0].arrival_ms.context("arrival_ms")?;
        assert!(
            path.contains(&format!("/{}/", partition_of(first).path())),
            "{path}: partition of the first record's arrival"
        );
        for line in raw_lines {
            let arrival = line.arrival_ms.context("arrival_ms")?;
            assert!(
                arrival >= put_from - 60_000 && arrival <= now_ms() + 60_000,
                "arrival {arrival} is the put time"
            );
            assert!(
                positions.insert((line.shard.clone(), line.sequence.clone(), line.sub_sequence)),
                "position {}/{}.{} archived twice",
                line.shard,
                line.sequence,
                line.sub_sequence
            );
            base64_lines += usize::from(line.data_base64.is_some());
            *in_archive
                .entry(line.bytes().context("base64")?)
                .or_default() += 1;
        }
    }
    assert_eq!(files, listed.len(), "every listed raw file is published");
    let not_text = produced
        .iter()
        .filter(|l| std::str::from_utf8(l).is_err())
        .count();
    assert!(not_text >= 1);
    assert_eq!(
        base64_lines, not_text,
        "exactly the non-UTF-8 records are base64"
    );
    assert_eq!(in_archive.get(&not_utf8), Some(&1));
    let mut expected: HashMap<Vec<u8>, u32> = HashMap::new();
    for line in &produced {
        *expected.entry(line.clone()).or_default() += 1;
    }
    assert_eq!(positions.len(), produced.len(), "every record once");
    assert!(
        in_archive == expected,
        "the archive holds the produced records exactly"
    );
    Ok(())
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
