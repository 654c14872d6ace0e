//! One reader task per shard: `GetShardIterator` + `GetRecords`, paced and backing off when idle,
//! re-acquiring an expired iterator, de-aggregating KPL records.
//!
//! Retry rule (see also the `etl-aws` crate doc, "Retries"): throttling
//! (`ProvisionedThroughputExceededException`), 5xx and transport errors are first retried by the
//! SDK's standard retry mode configured in `etl-aws` (exponential backoff with full jitter) — the
//! project's one retry layer *for a call*. When the SDK gives up on a `GetRecords` or
//! `GetShardIterator` call, this reader does not retry the call at once: it **pauses the shard**
//! (exponential, full jitter: [`ReaderOptions::failure_backoff`] doubling up to
//! [`ReaderOptions::failure_backoff_max`]) and then makes the next call of its loop with the same
//! iterator — a failed call returns no data, so nothing is lost or read twice. That pause is
//! pacing of a long-running loop, not a second retry layer: the SDK's attempts are never
//! multiplied inside one call, and the SDK's retry quota still applies to each call. Throttling
//! pauses the shard for as long as it lasts (other readers share the shard's read limit, and that
//! can last); other failures end the shard's task with [`ShardEvent::Failed`] after
//! [`ReaderOptions::max_failures`] in a row. Errors that are not retryable (validation, access,
//! a missing stream) end it at once.
//!
//! Pacing: at most one `GetRecords` per `min_interval` per shard (5 calls/s/shard → 200 ms), and
//! when a call returns nothing the next waits longer, doubling up to `idle_max`.
//!
//! `ExpiredIteratorException` is not an error to retry but a state to recover: a new iterator is
//! taken `AFTER_SEQUENCE_NUMBER` the last Kinesis record read; if nothing was read yet, at the start
//! position again (for `LATEST`: `AT_TIMESTAMP` of when the first iterator was taken, so records
//! put in between are not skipped).

use crate::kpl::deaggregate;
use crate::metrics::{event_time_ms, ReaderMetrics};
use crate::positions::{RecordPosition, SequenceNumber};
use crate::KinesisError;
use etl_aws::kinesis::error::{ProvideErrorMetadata, SdkError};
use etl_aws::kinesis::primitives::DateTime;
use etl_aws::kinesis::types::ShardIteratorType;
use etl_aws::kinesis::Client;
use std::sync::Arc;
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
    /// First pause of the shard after a call the SDK gave up on (see the module doc).
    pub failure_backoff: Duration,
    /// Longest such pause.
    pub failure_backoff_max: Duration,
    /// Failures in a row (not throttling) after which the shard's reader stops.
    pub max_failures: u32,
    /// Counters and lag, shared by every reader started with these options.
    pub metrics: Arc<ReaderMetrics>,
}

impl Default for ReaderOptions {
    fn default() -> Self {
        ReaderOptions {
            limit: 10_000,
            min_interval: Duration::from_millis(200),
            idle_max: Duration::from_secs(1),
            failure_backoff: Duration::from_secs(1),
            failure_backoff_max: Duration::from_secs(30),
            max_failures: 10,
            metrics: Arc::default(),
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
    /// `ApproximateArrivalTimestamp` of its Kinesis record in epoch milliseconds (a user record
    /// de-aggregated from a KPL aggregate gets the aggregate's); `None` if Kinesis gave none.
    pub arrival_ms: Option<i64>,
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

/// How a call the SDK gave up on is handled (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    /// Throttled: pause the shard, however long it lasts.
    Throttled,
    /// 5xx, timeout, transport: pause the shard, up to `max_failures` in a row.
    Transient,
    /// Anything else: stop.
    Fatal,
}

fn classify<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>) -> Failure {
    match err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            Failure::Transient
        }
        SdkError::ServiceError(e) => match e.err().code() {
            Some(
                "ProvisionedThroughputExceededException"
                | "KMSThrottlingException"
                | "LimitExceededException"
                | "ThrottlingException",
            ) => Failure::Throttled,
            Some("InternalFailure" | "InternalFailureException" | "ServiceUnavailable") => {
                Failure::Transient
            }
            _ => Failure::Fatal,
        },
        _ => Failure::Fatal,
    }
}

/// Consecutive failures of one shard and the pause they call for (the project's one backoff
/// rule, `etl_aws::backoff`).
struct Backoff<'a> {
    options: &'a ReaderOptions,
    delays: etl_aws::backoff::Backoff,
}

impl<'a> Backoff<'a> {
    fn new(options: &'a ReaderOptions) -> Self {
        Backoff {
            options,
            delays: etl_aws::backoff::Backoff::new(
                options.failure_backoff,
                options.failure_backoff_max,
            ),
        }
    }

    /// Counts a failure; the pause to take, or `None` when the reader must stop.
    fn failed(&mut self, kind: Failure) -> Option<Duration> {
        match kind {
            Failure::Fatal => return None,
            Failure::Throttled => self.options.metrics.throttled(),
            Failure::Transient => {
                self.options.metrics.failed();
                if self.delays.failures() + 1 >= self.options.max_failures.max(1) {
                    return None;
                }
            }
        }
        // At least the pacing interval.
        Some(self.delays.next_delay().max(self.options.min_interval))
    }

    /// [`Self::failed`] for a failed `call`, logging the pause; `error` back when the reader
    /// must stop.
    fn pause_after(
        &mut self,
        call: &str,
        kind: Failure,
        error: KinesisError,
        stream: &str,
        shard_id: &str,
    ) -> Result<Duration, KinesisError> {
        let Some(pause) = self.failed(kind) else {
            return Err(error);
        };
        tracing::warn!(
            stream,
            shard_id,
            %error,
            pause_ms = pause.as_millis() as u64,
            failures_in_a_row = self.delays.failures(),
            "{call} failed after the SDK's retries; pausing the shard"
        );
        Ok(pause)
    }

    fn succeeded(&mut self) {
        self.delays.reset();
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
    // LATEST is a moment, not a place: if its iterator expires before a record was read, the
    // new one starts at that moment (AT_TIMESTAMP) so records put in between are not skipped.
    let start = match start {
        StartPosition::Latest => {
            let taken_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64);
            let iterator = get_iterator_paced(
                client,
                stream,
                shard_id,
                &StartPosition::Latest,
                None,
                options,
            )
            .await?;
            return read_from(
                client,
                stream,
                shard_id,
                StartPosition::AtTimestamp(taken_ms),
                iterator,
                None,
                options,
                tx,
            )
            .await;
        }
        other => other,
    };
    let iterator = get_iterator_paced(client, stream, shard_id, &start, None, options).await?;
    read_from(
        client,
        stream,
        shard_id,
        start,
        iterator,
        skip_through,
        options,
        tx,
    )
    .await
}

#[allow(clippy::too_many_arguments)]
async fn read_from(
    client: &Client,
    stream: &str,
    shard_id: &str,
    start: StartPosition,
    mut iterator: String,
    skip_through: Option<RecordPosition>,
    options: &ReaderOptions,
    tx: &mpsc::Sender<ShardEvent>,
) -> Result<(), KinesisError> {
    let mut last_read: Option<SequenceNumber> = None;
    let mut next_call = Instant::now();
    let mut idle = options.min_interval;
    let mut backoff = Backoff::new(options);
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
                options.metrics.iterator_expired();
                tracing::info!(
                    stream,
                    shard_id,
                    after = last_read.as_ref().map(SequenceNumber::as_str),
                    "shard iterator expired; taking a new one after the last record read"
                );
                iterator = get_iterator_paced(
                    client,
                    stream,
                    shard_id,
                    &start,
                    last_read.as_ref(),
                    options,
                )
                .await?;
                continue;
            }
            Err(e) => {
                let kind = classify(&e);
                let error = KinesisError::call("GetRecords", stream, &e);
                let pause = backoff.pause_after("GetRecords", kind, error, stream, shard_id)?;
                next_call = Instant::now() + pause;
                continue;
            }
        };
        backoff.succeeded();
        let millis_behind = out.millis_behind_latest();
        let mut records = Vec::new();
        let mut newest_event: Option<i64> = None;
        let mut user_count = 0;
        for r in out.records() {
            let sequence_number = SequenceNumber::parse(r.sequence_number()).ok_or_else(|| {
                KinesisError::Protocol(format!(
                    "shard {shard_id}: sequence number `{}` is not a decimal number",
                    r.sequence_number()
                ))
            })?;
            let arrival_ms = r
                .approximate_arrival_timestamp()
                .and_then(|t| t.to_millis().ok());
            for user in deaggregate(r.data().as_ref(), r.partition_key()) {
                user_count += 1;
                let position = RecordPosition {
                    sequence_number: sequence_number.clone(),
                    sub_sequence: user.sub_sequence,
                };
                if skip_through.as_ref().is_some_and(|s| position <= *s) {
                    continue;
                }
                if let Some(t) = event_time_ms(&user.data) {
                    newest_event = Some(newest_event.map_or(t, |n| n.max(t)));
                }
                records.push(ReadRecord {
                    position,
                    data: user.data,
                    arrival_ms,
                });
            }
            last_read = Some(sequence_number);
        }
        options
            .metrics
            .call_returned(out.records().len(), user_count);
        options.metrics.shard_read(
            shard_id,
            millis_behind,
            records.last().map(|r| (r.position.clone(), newest_event)),
        );
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

/// [`get_iterator`], pausing the shard after failures the SDK gave up on (same rule as
/// `GetRecords`).
async fn get_iterator_paced(
    client: &Client,
    stream: &str,
    shard_id: &str,
    start: &StartPosition,
    after: Option<&SequenceNumber>,
    options: &ReaderOptions,
) -> Result<String, KinesisError> {
    let mut backoff = Backoff::new(options);
    loop {
        match get_iterator(client, stream, shard_id, start, after).await {
            Ok(iterator) => return Ok(iterator),
            Err((error, kind)) => {
                let pause =
                    backoff.pause_after("GetShardIterator", kind, error, stream, shard_id)?;
                tokio::time::sleep(pause).await;
            }
        }
    }
}

async fn get_iterator(
    client: &Client,
    stream: &str,
    shard_id: &str,
    start: &StartPosition,
    after: Option<&SequenceNumber>,
) -> Result<String, (KinesisError, Failure)> {
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
            (
                KinesisError::StreamNotFound(format!("{stream} (shard {shard_id})")),
                Failure::Fatal,
            )
        } else {
            (
                KinesisError::call("GetShardIterator", stream, &e),
                classify(&e),
            )
        }
    })?;
    out.shard_iterator().map(str::to_string).ok_or_else(|| {
        (
            KinesisError::Protocol(format!(
                "GetShardIterator returned no iterator for {stream}/{shard_id}"
            )),
            Failure::Fatal,
        )
    })
}
