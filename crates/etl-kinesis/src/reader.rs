//! One reader task per shard: `GetShardIterator` + `GetRecords`, paced and backing off when idle,
//! re-acquiring an expired iterator, de-aggregating KPL records.
//!
//! Retry rule: throttling (`ProvisionedThroughputExceededException`) and 5xx are retried by the
//! SDK's standard retry mode configured in `etl-aws` (exponential backoff with full jitter) — the
//! project's one retry layer. This reader adds none: an error the SDK gives up on ends the shard's
//! task with [`ShardEvent::Failed`]. What it does add is pacing, which is not a retry: at most
//! one `GetRecords` per `min_interval` per shard (5 calls/s/shard → 200 ms), and when a call
//! returns nothing the next waits longer, doubling up to `idle_max`. `ExpiredIteratorException`
//! is not an error to retry but a state to recover: a new iterator is taken after the last
//! record read.

use crate::kpl::deaggregate;
use crate::positions::{RecordPosition, SequenceNumber};
use crate::KinesisError;
use etl_aws::kinesis::error::ProvideErrorMetadata;
use etl_aws::kinesis::primitives::DateTime;
use etl_aws::kinesis::types::ShardIteratorType;
use etl_aws::kinesis::Client;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Where a shard starts when no position was committed for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartPosition {
    /// The oldest record kept.
    TrimHorizon,
    /// Only records put after the iterator was taken.
    Latest,
    /// The first record at or after this time (epoch milliseconds).
    AtTimestamp(i64),
    /// After a committed user record: re-read its Kinesis record and skip what was committed.
    After(RecordPosition),
}

/// Pacing of the `GetRecords` loop.
#[derive(Debug, Clone)]
pub struct ReaderOptions {
    /// Records per `GetRecords` call (1..=10,000).
    pub limit: i32,
    /// Minimum time between two calls on one shard (200 ms = the 5 calls/s/shard limit).
    pub min_interval: Duration,
    /// Longest wait after calls that returned nothing.
    pub idle_max: Duration,
}

impl Default for ReaderOptions {
    fn default() -> Self {
        ReaderOptions {
            limit: 10_000,
            min_interval: Duration::from_millis(200),
            idle_max: Duration::from_secs(1),
        }
    }
}

/// One user record read from a shard.
#[derive(Debug, Clone)]
pub struct ReadRecord {
    /// Its position in the shard.
    pub position: RecordPosition,
    /// Its bytes (de-aggregated, decompressed).
    pub data: Vec<u8>,
}

/// What a shard reader reports.
#[derive(Debug)]
pub enum ShardEvent {
    /// Records of one `GetRecords` call, in shard order.
    Records {
        shard_id: String,
        records: Vec<ReadRecord>,
        millis_behind: Option<i64>,
    },
    /// A call returned nothing and the shard is at its tip (`MillisBehindLatest` = 0).
    CaughtUp { shard_id: String },
    /// The shard is closed and was read to its end (`NextShardIterator` null).
    Finished { shard_id: String },
    /// The reader stopped on an error.
    Failed {
        shard_id: String,
        error: KinesisError,
    },
}

/// Reads `shard_id` of `stream` from `start` until the shard ends, an error, or `tx` closes.
pub async fn read_shard(
    client: Client,
    stream: String,
    shard_id: String,
    start: StartPosition,
    options: ReaderOptions,
    tx: mpsc::Sender<ShardEvent>,
) {
    let result = read_loop(&client, &stream, &shard_id, start, &options, &tx).await;
    if let Err(error) = result {
        tracing::error!(stream, shard_id, %error, "shard reader stopped");
        let _ = tx.send(ShardEvent::Failed { shard_id, error }).await;
    }
}

async fn read_loop(
    client: &Client,
    stream: &str,
    shard_id: &str,
    start: StartPosition,
    options: &ReaderOptions,
    tx: &mpsc::Sender<ShardEvent>,
) -> Result<(), KinesisError> {
    let skip_through = match &start {
        StartPosition::After(p) => Some(p.clone()),
        _ => None,
    };
    let mut last_read: Option<SequenceNumber> = None;
    let mut iterator = get_iterator(client, stream, shard_id, &start, None).await?;
    let mut next_call = Instant::now();
    let mut idle = options.min_interval;
    loop {
        tokio::time::sleep_until(next_call).await;
        let call = client
            .get_records()
            .shard_iterator(&iterator)
            .limit(options.limit.clamp(1, 10_000))
            .send()
            .await;
        let out = match call {
            Ok(out) => out,
            Err(e)
                if e.as_service_error().and_then(|s| s.code())
                    == Some("ExpiredIteratorException") =>
            {
                tracing::info!(
                    stream,
                    shard_id,
                    "shard iterator expired; taking a new one after the last record read"
                );
                iterator =
                    get_iterator(client, stream, shard_id, &start, last_read.as_ref()).await?;
                continue;
            }
            Err(e) => return Err(KinesisError::call("GetRecords", stream, &e)),
        };
        let millis_behind = out.millis_behind_latest();
        let mut records = Vec::new();
        for r in out.records() {
            let sequence_number = SequenceNumber::parse(r.sequence_number()).ok_or_else(|| {
                KinesisError::Protocol(format!(
                    "shard {shard_id}: sequence number `{}` is not a decimal number",
                    r.sequence_number()
                ))
            })?;
            for user in deaggregate(r.data().as_ref(), r.partition_key()) {
                let position = RecordPosition {
                    sequence_number: sequence_number.clone(),
                    sub_sequence: user.sub_sequence,
                };
                if skip_through.as_ref().is_some_and(|s| position <= *s) {
                    continue;
                }
                records.push(ReadRecord {
                    position,
                    data: user.data,
                });
            }
            last_read = Some(sequence_number);
        }
        let got_any = !out.records().is_empty();
        let event = if !records.is_empty() {
            Some(ShardEvent::Records {
                shard_id: shard_id.to_string(),
                records,
                millis_behind,
            })
        } else if !got_any && millis_behind.unwrap_or(0) == 0 && out.next_shard_iterator().is_some()
        {
            Some(ShardEvent::CaughtUp {
                shard_id: shard_id.to_string(),
            })
        } else {
            None
        };
        if let Some(event) = event {
            if tx.send(event).await.is_err() {
                return Ok(());
            }
        }
        let Some(next) = out.next_shard_iterator() else {
            tracing::info!(stream, shard_id, "shard read to its end");
            let _ = tx
                .send(ShardEvent::Finished {
                    shard_id: shard_id.to_string(),
                })
                .await;
            return Ok(());
        };
        iterator = next.to_string();
        idle = if got_any {
            options.min_interval
        } else {
            (idle * 2).min(options.idle_max.max(options.min_interval))
        };
        next_call = Instant::now() + if got_any { options.min_interval } else { idle };
    }
}

async fn get_iterator(
    client: &Client,
    stream: &str,
    shard_id: &str,
    start: &StartPosition,
    after: Option<&SequenceNumber>,
) -> Result<String, KinesisError> {
    let request = client
        .get_shard_iterator()
        .stream_name(stream)
        .shard_id(shard_id);
    let request = match (after, start) {
        (Some(seq), _) => request
            .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
            .starting_sequence_number(seq.as_str()),
        (None, StartPosition::TrimHorizon) => {
            request.shard_iterator_type(ShardIteratorType::TrimHorizon)
        }
        (None, StartPosition::Latest) => request.shard_iterator_type(ShardIteratorType::Latest),
        (None, StartPosition::AtTimestamp(ms)) => request
            .shard_iterator_type(ShardIteratorType::AtTimestamp)
            .timestamp(DateTime::from_millis(*ms)),
        // AT, not AFTER: the rest of a partly committed aggregate is in that record.
        (None, StartPosition::After(p)) => request
            .shard_iterator_type(ShardIteratorType::AtSequenceNumber)
            .starting_sequence_number(p.sequence_number.as_str()),
    };
    let out = request.send().await.map_err(|e| {
        if e.as_service_error().and_then(|s| s.code()) == Some("ResourceNotFoundException") {
            KinesisError::StreamNotFound(format!("{stream} (shard {shard_id})"))
        } else {
            KinesisError::call("GetShardIterator", stream, &e)
        }
    })?;
    out.shard_iterator().map(str::to_string).ok_or_else(|| {
        KinesisError::Protocol(format!(
            "GetShardIterator returned no iterator for {stream}/{shard_id}"
        ))
    })
}
