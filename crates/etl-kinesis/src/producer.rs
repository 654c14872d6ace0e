//! Records onto Kinesis with `PutRecords` (what `etl produce` sends the synthetic events with).
//! The records come from the caller as `(pipeline stream, bytes)`; this module knows no
//! generator.
//!
//! Requests hold at most 500 entries and 5 MiB. `PutRecords` can succeed as a call while some
//! entries fail (`ProvisionedThroughputExceededException`, `InternalFailure` per entry); the SDK
//! cannot see those, so this module re-sends exactly the failed entries, waiting with exponential
//! backoff and full jitter between rounds (100 ms doubling to 5 s, at most
//! [`MAX_ENTRY_ROUNDS`] rounds). Failures of the call itself are the SDK's to retry (etl-aws).

use crate::kpl::Aggregator;
use crate::KinesisError;
use etl_aws::kinesis::primitives::Blob;
use etl_aws::kinesis::types::PutRecordsRequestEntry;
use etl_aws::kinesis::Client;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Entries per `PutRecords` call (the API's limit).
pub const MAX_ENTRIES: usize = 500;
/// Bytes per `PutRecords` call (data + partition keys); the API allows more, this stays safe.
pub const MAX_REQUEST_BYTES: usize = 5 << 20;
/// Rounds of re-sending failed entries before giving up.
pub const MAX_ENTRY_ROUNDS: u32 = 12;
/// Largest record Kinesis accepts: 1 MiB, data and partition key together.
pub const MAX_RECORD_BYTES: usize = 1 << 20;

/// Largest aggregated record built (Kinesis takes 1 MiB per record by default, key included).
pub const MAX_AGGREGATE_BYTES: usize = 1_000_000;

/// What to produce and where.
#[derive(Debug, Clone)]
pub struct ProduceOptions {
    /// `(pipeline stream, Kinesis stream)`: where the records of each pipeline stream go;
    /// records of a stream not listed are not sent.
    pub targets: Vec<(String, String)>,
    /// Pack user records into KPL aggregates.
    pub aggregate: bool,
    /// Target events per second (`None` = as fast as possible).
    pub rate: Option<f64>,
}

/// What was sent.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct ProduceSummary {
    /// Records sent, by Kinesis stream.
    pub events: HashMap<String, u64>,
    /// Records of streams without a target.
    pub skipped: u64,
    /// Records larger than a Kinesis record may be ([`MAX_RECORD_BYTES`], partition
    /// key included), not sent: Kinesis would refuse the whole `PutRecords` call.
    pub oversize: u64,
    /// Kinesis records put (fewer than events when aggregating).
    pub kinesis_records: u64,
    /// `PutRecords` calls.
    pub calls: u64,
    /// Entries that failed once and were sent again.
    pub retried_entries: u64,
    /// Time taken.
    #[serde(skip)]
    pub elapsed: Duration,
}

struct Target {
    name: String,
    entries: Vec<PutRecordsRequestEntry>,
    bytes: usize,
    aggregator: Option<Aggregator>,
}

/// Puts `records` (`(pipeline stream, record bytes)`, in order) onto their target streams.
pub async fn produce<S: AsRef<str>>(
    client: &Client,
    records: impl IntoIterator<Item = (S, Vec<u8>)>,
    options: &ProduceOptions,
) -> Result<ProduceSummary, KinesisError> {
    if let Some(rate) = options.rate {
        if !(rate > 0.0 && rate.is_finite()) {
            return Err(KinesisError::Option(format!(
                "rate must be a positive number of events per second, got {rate}"
            )));
        }
    }
    let mut targets: HashMap<String, Target> = options
        .targets
        .iter()
        .map(|(s, name)| {
            let aggregator = options
                .aggregate
                .then(|| Aggregator::new(MAX_AGGREGATE_BYTES));
            (
                s.clone(),
                Target {
                    name: name.clone(),
                    entries: Vec::new(),
                    bytes: 0,
                    aggregator,
                },
            )
        })
        .collect();
    let started = Instant::now();
    let mut summary = ProduceSummary::default();
    let mut produced: u64 = 0;
    for (stream, line) in records {
        let Some(target) = targets.get_mut(stream.as_ref()) else {
            summary.skipped += 1;
            continue;
        };
        produced += 1;
        let key = format!("pk-{produced}");
        if line.len() + key.len() > MAX_RECORD_BYTES {
            summary.oversize += 1;
            tracing::warn!(
                stream = %target.name,
                bytes = line.len(),
                "record is larger than a Kinesis record may be; not sent"
            );
            continue;
        }
        *summary.events.entry(target.name.clone()).or_default() += 1;
        let ready = match &mut target.aggregator {
            Some(agg) => {
                if agg.add(&key, &line) {
                    None
                } else {
                    // Full: send the aggregate, start the next one with this record.
                    let full = agg.finish();
                    if let Some((k, bytes)) = full {
                        push(client, target, k, bytes, &mut summary).await?;
                    }
                    let Some(agg) = target.aggregator.as_mut() else {
                        continue;
                    };
                    if agg.add(&key, &line) {
                        None
                    } else {
                        // Too large for any aggregate: it goes as a plain record.
                        Some((key, line))
                    }
                }
            }
            None => Some((key, line)),
        };
        if let Some((k, bytes)) = ready {
            push(client, target, k, bytes, &mut summary).await?;
        }
        if let Some(rate) = options.rate {
            let due = started + Duration::from_secs_f64(produced as f64 / rate);
            tokio::time::sleep_until(due.into()).await;
        }
    }
    for target in targets.values_mut() {
        if let Some((k, bytes)) = target.aggregator.as_mut().and_then(Aggregator::finish) {
            push(client, target, k, bytes, &mut summary).await?;
        }
        flush(client, target, &mut summary).await?;
    }
    summary.elapsed = started.elapsed();
    Ok(summary)
}

/// Adds an entry to `target`'s request, sending the request first if the entry would not fit.
async fn push(
    client: &Client,
    target: &mut Target,
    key: String,
    data: Vec<u8>,
    summary: &mut ProduceSummary,
) -> Result<(), KinesisError> {
    let size = key.len() + data.len();
    if target.entries.len() >= MAX_ENTRIES || target.bytes + size > MAX_REQUEST_BYTES {
        flush(client, target, summary).await?;
    }
    let entry = PutRecordsRequestEntry::builder()
        .partition_key(key)
        .data(Blob::new(data))
        .build()
        .map_err(|e| KinesisError::Protocol(format!("building a PutRecords entry: {e}")))?;
    target.entries.push(entry);
    target.bytes += size;
    if target.entries.len() >= MAX_ENTRIES {
        flush(client, target, summary).await?;
    }
    Ok(())
}

/// Sends the target's entries, re-sending failed ones until none is left.
async fn flush(
    client: &Client,
    target: &mut Target,
    summary: &mut ProduceSummary,
) -> Result<(), KinesisError> {
    let mut entries = std::mem::take(&mut target.entries);
    target.bytes = 0;
    let mut round = 0;
    let mut backoff =
        etl_aws::backoff::Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
    while !entries.is_empty() {
        let out = client
            .put_records()
            .stream_name(&target.name)
            .set_records(Some(entries.clone()))
            .send()
            .await
            .map_err(|e| {
                use etl_aws::kinesis::error::ProvideErrorMetadata;
                if e.as_service_error().and_then(|s| s.code()) == Some("ResourceNotFoundException")
                {
                    KinesisError::StreamNotFound(target.name.clone())
                } else {
                    KinesisError::call("PutRecords", &target.name, &e)
                }
            })?;
        summary.calls += 1;
        let results = out.records();
        if results.len() != entries.len() {
            return Err(KinesisError::Protocol(format!(
                "PutRecords answered {} results for {} entries",
                results.len(),
                entries.len()
            )));
        }
        let failed: Vec<PutRecordsRequestEntry> = entries
            .iter()
            .zip(results)
            .filter(|(_, r)| r.error_code().is_some())
            .map(|(e, _)| e.clone())
            .collect();
        summary.kinesis_records += (entries.len() - failed.len()) as u64;
        if failed.is_empty() {
            break;
        }
        round += 1;
        let first_error = results.iter().find_map(|r| {
            r.error_code()
                .map(|c| format!("{c}: {}", r.error_message().unwrap_or("")))
        });
        if round >= MAX_ENTRY_ROUNDS {
            return Err(KinesisError::Call {
                operation: "PutRecords",
                stream: target.name.clone(),
                message: format!(
                    "{} entries still failing after {round} rounds; last error {}",
                    failed.len(),
                    first_error.unwrap_or_default()
                ),
            });
        }
        summary.retried_entries += failed.len() as u64;
        let wait = backoff.next_delay();
        tracing::warn!(
            stream = target.name,
            failed = failed.len(),
            round,
            ?wait,
            error = first_error.as_deref().unwrap_or(""),
            "PutRecords entries failed; sending them again"
        );
        tokio::time::sleep(wait).await;
        entries = failed;
    }
    Ok(())
}
