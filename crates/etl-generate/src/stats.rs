//! Counters kept while generating, so tests can reconcile what the pipeline should have stored.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::{MalformedKind, Stream};

/// Malformed records by kind.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct MalformedCounts {
    pub invalid_json: u64,
    pub wrong_type: u64,
    pub missing_required: u64,
    pub unknown_event_type: u64,
    pub invalid_phone: u64,
    pub invalid_utf8: u64,
    pub oversize: u64,
}

impl MalformedCounts {
    /// The count for one kind.
    pub fn get(&self, kind: MalformedKind) -> u64 {
        match kind {
            MalformedKind::InvalidJson => self.invalid_json,
            MalformedKind::WrongType => self.wrong_type,
            MalformedKind::MissingRequired => self.missing_required,
            MalformedKind::UnknownEventType => self.unknown_event_type,
            MalformedKind::InvalidPhone => self.invalid_phone,
            MalformedKind::InvalidUtf8 => self.invalid_utf8,
            MalformedKind::Oversize => self.oversize,
        }
    }

    pub(crate) fn bump(&mut self, kind: MalformedKind) {
        let c = match kind {
            MalformedKind::InvalidJson => &mut self.invalid_json,
            MalformedKind::WrongType => &mut self.wrong_type,
            MalformedKind::MissingRequired => &mut self.missing_required,
            MalformedKind::UnknownEventType => &mut self.unknown_event_type,
            MalformedKind::InvalidPhone => &mut self.invalid_phone,
            MalformedKind::InvalidUtf8 => &mut self.invalid_utf8,
            MalformedKind::Oversize => &mut self.oversize,
        };
        *c += 1;
    }

    fn add(&mut self, o: &MalformedCounts) {
        self.invalid_json += o.invalid_json;
        self.wrong_type += o.wrong_type;
        self.missing_required += o.missing_required;
        self.unknown_event_type += o.unknown_event_type;
        self.invalid_phone += o.invalid_phone;
        self.invalid_utf8 += o.invalid_utf8;
        self.oversize += o.oversize;
    }

    /// Sum over all kinds.
    pub fn total(&self) -> u64 {
        MalformedKind::ALL.iter().map(|k| self.get(*k)).sum()
    }
}

/// Counters for one stream.
///
/// Every valid original has a fresh `event_id` and a duplicate is a byte copy of a valid
/// original, so after deduplication by `event_id` a correct pipeline stores exactly `valid`
/// rows for the stream ([`StreamStats::expected_unique_valid`]) and dead-letters `malformed`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct StreamStats {
    /// Valid original records (each with a distinct `event_id`).
    pub valid: u64,
    /// Exact byte copies of an earlier valid line of this stream.
    pub duplicates: u64,
    /// Valid originals whose `occurred_at` was moved back 5 min .. 3 h (a subset of `valid`).
    pub late: u64,
    /// Malformed records, all kinds (equals `malformed_by_kind.total()`).
    pub malformed: u64,
    /// Malformed records by kind.
    pub malformed_by_kind: MalformedCounts,
    /// Bytes of all lines of this stream, counting one newline per line (the NDJSON file size).
    pub bytes: u64,
    /// Valid originals by `event_type`. For `call_events`, `call_started` is the number of distinct
    /// `call_id`s; for `app_events`, `app_open` is the number of distinct `session_id`s.
    pub event_types: BTreeMap<&'static str, u64>,
    /// Sum of `duration_ms` over valid `call_ended` originals (0 for `app_events`).
    pub duration_ms_sum: u64,
    /// Earliest `occurred_at` (epoch ms, as written) among valid originals.
    pub min_occurred_ms: Option<i64>,
    /// Latest `occurred_at` (epoch ms, as written) among valid originals.
    pub max_occurred_ms: Option<i64>,
}

impl StreamStats {
    /// Lines produced for this stream: valid + duplicates + malformed.
    pub fn lines(&self) -> u64 {
        self.valid + self.duplicates + self.malformed
    }

    /// Distinct valid `event_id`s, i.e. rows expected after dedup.
    pub fn expected_unique_valid(&self) -> u64 {
        self.valid
    }

    pub(crate) fn record_valid(&mut self, event_type: &'static str, occurred_ms: i64, late: bool) {
        self.valid += 1;
        if late {
            self.late += 1;
        }
        *self.event_types.entry(event_type).or_insert(0) += 1;
        self.min_occurred_ms = Some(
            self.min_occurred_ms
                .map_or(occurred_ms, |m| m.min(occurred_ms)),
        );
        self.max_occurred_ms = Some(
            self.max_occurred_ms
                .map_or(occurred_ms, |m| m.max(occurred_ms)),
        );
    }

    fn add(&mut self, o: &StreamStats) {
        self.valid += o.valid;
        self.duplicates += o.duplicates;
        self.late += o.late;
        self.malformed += o.malformed;
        self.malformed_by_kind.add(&o.malformed_by_kind);
        self.bytes += o.bytes;
        for (k, v) in &o.event_types {
            *self.event_types.entry(k).or_insert(0) += v;
        }
        self.duration_ms_sum += o.duration_ms_sum;
        self.min_occurred_ms = match (self.min_occurred_ms, o.min_occurred_ms) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.max_occurred_ms = match (self.max_occurred_ms, o.max_occurred_ms) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
    }
}

/// Per-stream counters of one generator run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct GeneratorStats {
    pub app_events: StreamStats,
    pub call_events: StreamStats,
}

impl GeneratorStats {
    /// The counters of one stream.
    pub fn stream(&self, stream: Stream) -> &StreamStats {
        match stream {
            Stream::AppEvents => &self.app_events,
            Stream::CallEvents => &self.call_events,
        }
    }

    pub(crate) fn stream_mut(&mut self, stream: Stream) -> &mut StreamStats {
        match stream {
            Stream::AppEvents => &mut self.app_events,
            Stream::CallEvents => &mut self.call_events,
        }
    }

    /// Both streams added together.
    pub fn total(&self) -> StreamStats {
        let mut t = self.app_events.clone();
        t.add(&self.call_events);
        t
    }

    /// Records produced so far, all streams and kinds.
    pub fn events(&self) -> u64 {
        self.app_events.lines() + self.call_events.lines()
    }
}
