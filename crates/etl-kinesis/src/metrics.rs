//! Counters and lag of the shard readers: what the metrics issue exports. The names below are the
//! metric names documented in `docs/kinesis.md` ("Metrics").
//!
//! - `kinesis_get_records_calls_total`, `kinesis_records_total` (Kinesis records),
//!   `kinesis_user_records_total` (after de-aggregation), `kinesis_throttled_calls_total`
//!   (`GetRecords` still throttled after the SDK's attempts), `kinesis_failed_calls_total` (other
//!   calls the SDK gave up on and the reader retried), `kinesis_iterators_expired_total`;
//! - per shard: `kinesis_millis_behind_latest{shard}` (the last `MillisBehindLatest`) and
//!   `kinesis_event_time_lag_ms{shard}` (now − the newest `occurred_at` of records at or before
//!   the shard's committed position).
//!
//! One [`ReaderMetrics`] is shared (through [`crate::ReaderOptions::metrics`]) by every reader
//! started with the same options, i.e. by all shards of a source.

use crate::positions::{RecordPosition, ShardPosition};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

/// Checkpoints kept per shard for the event-time lag (the oldest go first).
const MAX_CHECKPOINTS: usize = 4096;

/// Counters and per-shard lag of the readers (see the module doc).
#[derive(Debug, Default)]
pub struct ReaderMetrics {
    get_records_calls: AtomicU64,
    kinesis_records: AtomicU64,
    user_records: AtomicU64,
    throttled_calls: AtomicU64,
    failed_calls: AtomicU64,
    iterators_expired: AtomicU64,
    shards: Mutex<HashMap<String, ShardTrack>>,
}

#[derive(Debug, Default)]
struct ShardTrack {
    millis_behind_latest: Option<i64>,
    /// (last position of a `GetRecords` call, newest event time up to and including it).
    checkpoints: VecDeque<(RecordPosition, i64)>,
}

/// The counters at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReaderCounts {
    /// `kinesis_get_records_calls_total`: `GetRecords` calls that returned.
    pub get_records_calls: u64,
    /// `kinesis_records_total`: Kinesis records received.
    pub kinesis_records: u64,
    /// `kinesis_user_records_total`: user records after de-aggregation (skipped ones included).
    pub user_records: u64,
    /// `kinesis_throttled_calls_total`: calls still throttled after the SDK's attempts.
    pub throttled_calls: u64,
    /// `kinesis_failed_calls_total`: other retryable failures after the SDK's attempts.
    pub failed_calls: u64,
    /// `kinesis_iterators_expired_total`: `ExpiredIteratorException`s recovered from.
    pub iterators_expired: u64,
}

/// Lag of one shard.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ShardLag {
    /// `kinesis_millis_behind_latest`: the last `MillisBehindLatest` Kinesis reported.
    pub millis_behind_latest: Option<i64>,
    /// `kinesis_event_time_lag_ms`: now − the newest `occurred_at` committed (`None` before
    /// anything with an event time was committed).
    pub event_time_lag_ms: Option<i64>,
}

impl ReaderMetrics {
    fn shards(&self) -> MutexGuard<'_, HashMap<String, ShardTrack>> {
        self.shards.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The counters now.
    pub fn counts(&self) -> ReaderCounts {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        ReaderCounts {
            get_records_calls: get(&self.get_records_calls),
            kinesis_records: get(&self.kinesis_records),
            user_records: get(&self.user_records),
            throttled_calls: get(&self.throttled_calls),
            failed_calls: get(&self.failed_calls),
            iterators_expired: get(&self.iterators_expired),
        }
    }

    /// Lag of every shard read so far, given the committed positions (e.g.
    /// `PositionCommitter::committed()`) and the time now in epoch milliseconds.
    pub fn lag(
        &self,
        committed: &HashMap<String, ShardPosition>,
        now_ms: i64,
    ) -> BTreeMap<String, ShardLag> {
        let shards = self.shards();
        shards
            .iter()
            .map(|(shard, track)| {
                let reached = committed.get(shard).and_then(|p| p.last.as_ref());
                let newest = reached.and_then(|r| {
                    track
                        .checkpoints
                        .iter()
                        .take_while(|(p, _)| p <= r)
                        .map(|(_, t)| *t)
                        .max()
                });
                let lag = ShardLag {
                    millis_behind_latest: track.millis_behind_latest,
                    event_time_lag_ms: newest.map(|t| (now_ms - t).max(0)),
                };
                (shard.clone(), lag)
            })
            .collect()
    }

    /// Logs the counters and the lag of every shard (`tracing` info, target `etl_kinesis::metrics`).
    pub fn log(&self, stream: &str, committed: &HashMap<String, ShardPosition>, now_ms: i64) {
        let c = self.counts();
        tracing::info!(
            stream,
            get_records_calls = c.get_records_calls,
            kinesis_records = c.kinesis_records,
            user_records = c.user_records,
            throttled_calls = c.throttled_calls,
            failed_calls = c.failed_calls,
            iterators_expired = c.iterators_expired,
            "kinesis reader counters"
        );
        for (shard, lag) in self.lag(committed, now_ms) {
            tracing::info!(
                stream,
                shard,
                millis_behind_latest = lag.millis_behind_latest,
                event_time_lag_ms = lag.event_time_lag_ms,
                "kinesis shard lag"
            );
        }
    }

    pub(crate) fn call_returned(&self, kinesis_records: usize, user_records: usize) {
        self.get_records_calls.fetch_add(1, Ordering::Relaxed);
        self.kinesis_records
            .fetch_add(kinesis_records as u64, Ordering::Relaxed);
        self.user_records
            .fetch_add(user_records as u64, Ordering::Relaxed);
    }

    pub(crate) fn throttled(&self) {
        self.throttled_calls.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn failed(&self) {
        self.failed_calls.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn iterator_expired(&self) {
        self.iterators_expired.fetch_add(1, Ordering::Relaxed);
    }

    /// Records what one `GetRecords` call of `shard` returned: `MillisBehindLatest`, and the
    /// newest event time among its records up to `last` (its last position).
    pub(crate) fn shard_read(
        &self,
        shard: &str,
        millis_behind: Option<i64>,
        last: Option<(RecordPosition, Option<i64>)>,
    ) {
        let mut shards = self.shards();
        let track = shards.entry(shard.to_string()).or_default();
        if millis_behind.is_some() {
            track.millis_behind_latest = millis_behind;
        }
        if let Some((position, Some(event_ms))) = last {
            let newest = track
                .checkpoints
                .back()
                .map_or(event_ms, |(_, t)| (*t).max(event_ms));
            track.checkpoints.push_back((position, newest));
            // Times are cumulative maxima, so only positions older than the oldest kept are
            // forgotten; committed positions only move forward.
            if track.checkpoints.len() > MAX_CHECKPOINTS {
                track.checkpoints.pop_front();
            }
        }
    }
}

/// The `occurred_at` of a JSON event as epoch milliseconds, found by a scan for the key (no full
/// parse): RFC 3339 text (`2026-11-01T00:00:01.250Z`, offsets allowed) or a number of
/// milliseconds. `None` when absent or not of that shape.
pub fn event_time_ms(record: &[u8]) -> Option<i64> {
    const KEY: &[u8] = b"\"occurred_at\"";
    let at = record.windows(KEY.len()).position(|w| w == KEY)?;
    let rest = &record[at + KEY.len()..];
    let rest = skip_ws(rest).strip_prefix(b":")?;
    let rest = skip_ws(rest);
    match rest.first()? {
        b'"' => {
            let text = &rest[1..];
            let end = text.iter().position(|&c| c == b'"')?;
            etl_decode::parse_rfc3339_ms(&text[..end])
        }
        b'0'..=b'9' => {
            let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
            std::str::from_utf8(&rest[..digits]).ok()?.parse().ok()
        }
        _ => None,
    }
}

fn skip_ws(b: &[u8]) -> &[u8] {
    let n = b.iter().take_while(|c| c.is_ascii_whitespace()).count();
    &b[n..]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::positions::SequenceNumber;

    #[test]
    fn event_times() {
        let t = |s: &str| event_time_ms(s.as_bytes());
        assert_eq!(
            t(r#"{"occurred_at":"1970-01-01T00:00:01.250Z"}"#),
            Some(1250)
        );
        assert_eq!(
            t(r#"{"a":1, "occurred_at" : "2026-11-01T00:00:01Z"}"#),
            Some(1_793_491_201_000)
        );
        assert_eq!(
            t(r#"{"occurred_at":"2026-11-01T02:00:01.5+02:00"}"#),
            Some(1_793_491_201_500)
        );
        assert_eq!(
            t(r#"{"occurred_at":1793491201000}"#),
            Some(1_793_491_201_000)
        );
        assert_eq!(t(r#"{"occurred_at":"yesterday"}"#), None);
        assert_eq!(t(r#"{"other":1}"#), None);
    }

    #[test]
    fn event_time_lag_follows_the_committed_position() {
        let m = ReaderMetrics::default();
        let pos = |n: &str| RecordPosition {
            sequence_number: SequenceNumber::parse(n).expect("number"),
            sub_sequence: 0,
        };
        m.shard_read("s", Some(500), Some((pos("10"), Some(1_000))));
        m.shard_read("s", Some(0), Some((pos("20"), Some(3_000))));
        let committed = |n: &str| {
            HashMap::from([(
                "s".to_string(),
                ShardPosition {
                    shard_id: "s".into(),
                    last: Some(pos(n)),
                    finished: false,
                },
            )])
        };
        let lag = m.lag(&committed("15"), 10_000);
        assert_eq!(lag["s"].event_time_lag_ms, Some(9_000));
        assert_eq!(lag["s"].millis_behind_latest, Some(0));
        assert_eq!(
            m.lag(&committed("20"), 10_000)["s"].event_time_lag_ms,
            Some(7_000)
        );
        assert_eq!(m.lag(&HashMap::new(), 10_000)["s"].event_time_lag_ms, None);
    }
}
