//! Helpers of `kinesis_resilience/mod.rs`: streams, a keyed in-order producer, the pipeline, reading
//! the lake back and the exactly-once / per-key order checks.

use std::collections::HashMap;

use etl_aws::kinesis::primitives::Blob;
use etl_aws::kinesis::types::PutRecordsRequestEntry;
use etl_aws::kinesis::Client;
use etl_generate::Generator;

use super::KEYS;
use crate::{Context, Failure, TestResult};

pub(super) use etl_testbed::{create_stream, wait_active};

/// `n` valid, unique app events; the i-th has `occurred_at` = 2026-11-01T00:00:00Z + i ms, so
/// production order is event-time order. Returns (partition key, event_id, JSON line).
pub(super) fn keyed_events(seed: u64, n: u64) -> Result<Vec<(String, String, Vec<u8>)>, Failure> {
    let mut generator =
        Generator::new(crate::kinesis_source::events(seed, n)).context("generator")?;
    let mut out = Vec::new();
    while let Some((_, _, line)) = generator.next_record() {
        let i = out.len() as u64;
        let mut v: serde_json::Value = serde_json::from_slice(line).context("generated JSON")?;
        v["occurred_at"] = serde_json::Value::String(format!(
            "2026-11-01T00:{:02}:{:02}.{:03}Z",
            i / 60_000,
            (i / 1000) % 60,
            i % 1000
        ));
        let id = v["event_id"].as_str().context("event_id")?.to_string();
        let bytes = serde_json::to_vec(&v).context("JSON")?;
        out.push((format!("key-{}", i as usize % KEYS), id, bytes));
    }
    Ok(out)
}

/// Puts `events` in order with `PutRecords` (500 per call); returns the shard each went to, by
/// `event_id`. Fails on any failed entry: re-sending one would change the per-key order this file
/// checks (kinesalite never fails entries).
pub(super) async fn put_in_order(
    client: &Client,
    stream: &str,
    events: &[(String, String, Vec<u8>)],
) -> Result<HashMap<String, String>, Failure> {
    let mut shards = HashMap::new();
    for chunk in events.chunks(500) {
        let entries = chunk
            .iter()
            .map(|(key, _, data)| {
                PutRecordsRequestEntry::builder()
                    .partition_key(key)
                    .data(Blob::new(data.clone()))
                    .build()
                    .context("entry")
            })
            .collect::<Result<Vec<_>, _>>()?;
        let out = client
            .put_records()
            .stream_name(stream)
            .set_records(Some(entries))
            .send()
            .await
            .context("PutRecords")?;
        if out.failed_record_count().unwrap_or(0) != 0 {
            return Err(Failure(format!("PutRecords failed entries: {out:?}")));
        }
        for ((_, id, _), result) in chunk.iter().zip(out.records()) {
            let shard = result.shard_id().context("ShardId of a put record")?;
            shards.insert(id.clone(), shard.to_string());
        }
    }
    Ok(shards)
}

pub(super) use crate::{lake_rows, pipeline, LakeRow};

pub(super) fn assert_exactly_once(rows: &[LakeRow], expected: &[String]) -> TestResult {
    crate::assert_ids_exactly_once(rows.iter().map(|r| r.event_id.as_str()), expected)
}

/// Per partition key, production order survives resharding: whenever two consecutive events of
/// a key went to different shards (a parent, then its child), the later one's data file was
/// written no earlier than the earlier one's. (Within one shard the order is Kinesis's, and a
/// batch's rows are sorted by `occurred_at`, which here is production order.) A child read
/// before its parent was finished and committed would land in the lake first. Returns how many
/// such parent → child steps were checked.
pub(super) fn assert_per_key_order(
    rows: &[LakeRow],
    events: &[(String, String, Vec<u8>)],
    shard_of: &HashMap<String, String>,
) -> Result<usize, Failure> {
    let written: HashMap<&str, std::time::SystemTime> = rows
        .iter()
        .map(|r| (r.event_id.as_str(), r.written))
        .collect();
    let mut last: HashMap<&str, (&str, std::time::SystemTime, usize)> = HashMap::new();
    let mut steps = 0;
    let mut violations = Vec::new();
    for (i, (key, id, _)) in events.iter().enumerate() {
        let shard = shard_of.get(id).context("shard of a produced event")?;
        let time = *written.get(id.as_str()).context("event in the lake")?;
        if let Some((prev_shard, prev_time, prev)) = last.get(key.as_str()) {
            if *prev_shard != shard.as_str() {
                steps += 1;
                if time < *prev_time {
                    violations.push(format!(
                        "{key}: event #{i} ({shard}) written before #{prev} ({prev_shard})"
                    ));
                }
            }
        }
        last.insert(key, (shard, time, i));
    }
    assert!(
        violations.is_empty(),
        "{} per-key order violations, e.g. {:?}",
        violations.len(),
        &violations[..violations.len().min(5)]
    );
    Ok(steps)
}

pub(super) fn ids(events: &[(String, String, Vec<u8>)]) -> Vec<String> {
    events.iter().map(|(_, id, _)| id.clone()).collect()
}

pub(super) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
