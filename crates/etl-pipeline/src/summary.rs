//! The run summary: every record read is accounted for.

use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

/// Counts of one stream's run. `read == written + duplicates + filtered + dead_lettered` holds
/// for every committed batch and so for a finished run ([`StreamSummary::reconciles`]); each
/// count is taken where its outcome happens (decoder, dedup steps, transform SQL, encoded files).
#[derive(Debug, Clone, Default, Serialize)]
pub struct StreamSummary {
    /// Stream name.
    pub stream: String,
    /// Sources read.
    pub sources: Vec<String>,
    /// Records read.
    pub read: u64,
    /// Bytes of records read.
    pub bytes_read: u64,
    /// Rows written to the lake.
    pub written: u64,
    /// Records dropped by the dedup steps: an earlier record of the batch or of the dedup
    /// window had the same `event_id`.
    pub duplicates: u64,
    /// Records the transform SQL dropped (its `WHERE`).
    pub filtered: u64,
    /// Records sent to dead letters.
    pub dead_lettered: u64,
    /// Dead letters by reason code.
    pub dead_letter_reasons: BTreeMap<String, u64>,
    /// Micro-batches committed.
    pub batches: u64,
    /// Parquet files written.
    pub files: u64,
    /// Bytes of Parquet written.
    pub parquet_bytes: u64,
    /// Partitions (`dt=…/hour=…`) touched.
    pub partitions: BTreeSet<String>,
    /// Wall time of the run.
    #[serde(serialize_with = "secs")]
    pub elapsed: Duration,
}

fn secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

impl StreamSummary {
    /// Whether every record read is written, a duplicate, filtered, or a dead letter.
    pub fn reconciles(&self) -> bool {
        self.read == self.written + self.duplicates + self.filtered + self.dead_lettered
    }

    /// Adds another run's counts (several sources of one stream).
    pub fn merge(&mut self, other: &StreamSummary) {
        self.sources.extend(other.sources.iter().cloned());
        self.read += other.read;
        self.bytes_read += other.bytes_read;
        self.written += other.written;
        self.duplicates += other.duplicates;
        self.filtered += other.filtered;
        self.dead_lettered += other.dead_lettered;
        for (k, v) in &other.dead_letter_reasons {
            *self.dead_letter_reasons.entry(k.clone()).or_default() += v;
        }
        self.batches += other.batches;
        self.files += other.files;
        self.parquet_bytes += other.parquet_bytes;
        self.partitions.extend(other.partitions.iter().cloned());
        self.elapsed += other.elapsed;
    }

    /// Records per second over the run.
    pub fn records_per_sec(&self) -> f64 {
        self.read as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Input megabytes (10^6) per second over the run.
    pub fn mb_per_sec(&self) -> f64 {
        self.bytes_read as f64 / 1e6 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

impl fmt::Display for StreamSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let check = if self.reconciles() { "ok" } else { "MISMATCH" };
        writeln!(
            f,
            "{}: read {} = written {} + duplicates {} + filtered {} + dead-lettered {} [{check}]",
            self.stream,
            self.read,
            self.written,
            self.duplicates,
            self.filtered,
            self.dead_lettered
        )?;
        if !self.dead_letter_reasons.is_empty() {
            let reasons: Vec<String> = self
                .dead_letter_reasons
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect();
            writeln!(f, "  dead letters by reason: {}", reasons.join(", "))?;
        }
        write!(
            f,
            "  {} batches, {} Parquet files ({:.1} MB) in {} partitions; {:.0} records/s, {:.1} MB/s in {:.2}s",
            self.batches,
            self.files,
            self.parquet_bytes as f64 / 1e6,
            self.partitions.len(),
            self.records_per_sec(),
            self.mb_per_sec(),
            self.elapsed.as_secs_f64()
        )
    }
}
