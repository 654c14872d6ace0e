//! Benchmark (not a test): CPU cost of KPL de-aggregation per 1,000 user records, and, given a
//! running kinesalite, the shard readers' throughput (`GetRecords` + de-aggregation, no pipeline).
//!
//! ```sh
//! cargo run --release -p etl-kinesis --example deagg_bench
//! # with the consumer part: start a kinesalite first, e.g.
//! #   node tools/kinesalite/server.js --port 4567 &
//! cargo run --release -p etl-kinesis --example deagg_bench -- http://127.0.0.1:4567 [events] [--aggregate]
//! ```
//!
//! De-aggregation runs on one thread over aggregates of generated app events (~1 MB each, as
//! `etl produce --aggregate` builds them); the figure is wall time of a CPU-bound loop. The
//! consumer part creates a 4-shard stream, produces the events with `etl_kinesis::produce`, then
//! reads every shard with `reader::read_shard` from `TRIM_HORIZON` until each is at its tip.

use etl_generate::{Generator, GeneratorConfig};
use etl_kinesis::kpl::{deaggregate, Aggregator};
use etl_kinesis::reader::{read_shard, ShardEvent};
use etl_kinesis::{ProduceOptions, ReaderOptions, StartPosition};
use std::collections::HashSet;
use std::time::{Duration, Instant};

fn config(events: u64) -> GeneratorConfig {
    GeneratorConfig {
        seed: 3,
        events,
        call_share: 0.0,
        duplicate_rate: 0.0,
        malformed_rate: 0.0,
        ..GeneratorConfig::default()
    }
}

fn deagg_cost() -> Result<(), Box<dyn std::error::Error>> {
    let n = 200_000u64;
    let mut generator = Generator::new(config(n))?;
    let mut aggregator = Aggregator::new(1_000_000);
    let mut aggregates = Vec::new();
    let mut plain = Vec::new();
    let mut bytes = 0usize;
    let mut i = 0u64;
    while let Some((_, _, line)) = generator.next_record() {
        let key = format!("pk-{i}");
        i += 1;
        bytes += line.len();
        plain.push(line.to_vec());
        if !aggregator.add(&key, line) {
            aggregates.extend(aggregator.finish());
            aggregator.add(&key, line);
        }
    }
    aggregates.extend(aggregator.finish());
    let rounds = 5;
    let started = Instant::now();
    let mut users = 0usize;
    for _ in 0..rounds {
        for (key, data) in &aggregates {
            users += deaggregate(data, Some(key)).len();
        }
    }
    let agg = started.elapsed();
    let started = Instant::now();
    let mut passed = 0usize;
    for _ in 0..rounds {
        for data in &plain {
            passed += deaggregate(data, Some("k")).len();
        }
    }
    let pass = started.elapsed();
    let per_k = |d: Duration, n: usize| d.as_secs_f64() * 1e6 / (n as f64 / 1000.0);
    println!(
        "de-aggregation: {users} user records from {} aggregates ({:.1} MB of events, {:.0} B/event): \
         {:.1} µs CPU per 1,000 records, {:.0} MB/s, {:.2} M records/s (one core)",
        aggregates.len() * rounds,
        (bytes * rounds) as f64 / 1e6,
        bytes as f64 / n as f64,
        per_k(agg, users),
        (bytes * rounds) as f64 / 1e6 / agg.as_secs_f64(),
        users as f64 / agg.as_secs_f64() / 1e6
    );
    println!(
        "plain records (magic check + gzip check, copy): {:.1} µs per 1,000 records",
        per_k(pass, passed)
    );
    Ok(())
}

async fn consumer(
    endpoint: &str,
    events: u64,
    aggregate: bool,
) -> Result<(), Box<dyn std::error::Error>> {
    let settings = etl_aws::AwsSettings::local(endpoint, "us-east-1");
    let client = etl_aws::AwsClients::load(&settings).await?.kinesis();
    let stream = format!("bench-{}", std::process::id());
    client
        .create_stream()
        .stream_name(&stream)
        .shard_count(4)
        .send()
        .await?;
    loop {
        let d = client
            .describe_stream_summary()
            .stream_name(&stream)
            .send()
            .await?;
        if d.stream_description_summary()
            .map(|s| s.stream_status().as_str())
            == Some("ACTIVE")
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let options = ProduceOptions {
        targets: vec![("app_events".to_string(), stream.clone())],
        aggregate,
        rate: None,
    };
    let produced =
        etl_kinesis::produce(&client, etl_generate::records(config(events))?, &options).await?;
    println!(
        "produced {events} events as {} Kinesis records in {:.1} s",
        produced.kinesis_records,
        produced.elapsed.as_secs_f64()
    );
    let shards = etl_kinesis::shards::list_shards(&client, &stream).await?;
    let (tx, mut rx) = tokio::sync::mpsc::channel(64);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for s in &shards {
        tasks.push(tokio::spawn(read_shard(
            client.clone(),
            stream.clone(),
            s.shard_id.clone(),
            StartPosition::TrimHorizon,
            ReaderOptions::default(),
            tx.clone(),
        )));
    }
    drop(tx);
    let mut read = 0u64;
    let mut bytes = 0usize;
    let mut caught_up = HashSet::new();
    while caught_up.len() < shards.len() {
        match rx.recv().await {
            Some(ShardEvent::Records { records, .. }) => {
                read += records.len() as u64;
                bytes += records.iter().map(|r| r.data.len()).sum::<usize>();
            }
            Some(ShardEvent::CaughtUp { shard_id }) if read >= events => {
                caught_up.insert(shard_id);
            }
            Some(ShardEvent::Failed { shard_id, error }) => {
                return Err(format!("{shard_id}: {error}").into());
            }
            Some(_) => {}
            None => break,
        }
    }
    let took = started.elapsed();
    for t in tasks {
        t.abort();
    }
    println!(
        "consumer: {read} user records ({:.1} MB) from 4 shards in {:.2} s: {:.0} records/s, {:.1} MB/s \
         (includes up to one idle poll, <= 1 s, to see each shard at its tip)",
        bytes as f64 / 1e6,
        took.as_secs_f64(),
        read as f64 / took.as_secs_f64(),
        bytes as f64 / 1e6 / took.as_secs_f64()
    );
    let _ = client.delete_stream().stream_name(&stream).send().await;
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    deagg_cost()?;
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(endpoint) = args.first() {
        let events = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(100_000);
        let aggregate = args.iter().any(|a| a == "--aggregate");
        consumer(endpoint, events, aggregate).await?;
    }
    Ok(())
}
