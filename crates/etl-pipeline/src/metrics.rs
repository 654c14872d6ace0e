//! The pipeline's metrics, recorded through the `metrics` facade (a no-op until a binary installs
//! a recorder; `etl-observe` does for the long-running commands). Names, types and labels are
//! listed in `docs/metrics.md`; the labels are the stream name (from the schemas), the stage
//! (a fixed list) and the dead-letter reason (the fixed codes of `etl-decode`, `other` for
//! anything else), so the number of series is bounded.
//!
//! Record counts are added when a batch is committed, so they match the run summary.

use std::time::Instant;

/// A stage of a batch's processing (the `stage` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Validate and decode the records into Arrow (and build the dead letters).
    Decode,
    /// The transform SQL.
    Transform,
    /// Parquet encoding.
    Encode,
    /// Lake write, catalog partitions, warehouse sink and commit hook.
    Commit,
}

impl Stage {
    /// The label value.
    pub const fn as_str(self) -> &'static str {
        match self {
            Stage::Decode => "decode",
            Stage::Transform => "transform",
            Stage::Encode => "encode",
            Stage::Commit => "commit",
        }
    }
}

/// Creates `stream`'s record counters at 0, so they are exported (and `rate()` works) before
/// its first batch.
pub fn register_stream(stream: &str) {
    for name in [
        "etl_records_read_total",
        "etl_records_written_total",
        "etl_records_duplicates_total",
        "etl_records_filtered_total",
        "etl_lake_commit_failures_total",
    ] {
        metrics::counter!(name, "stream" => stream.to_string()).increment(0);
    }
}

/// A reason code as a label value: one of `etl-decode`'s codes, else `other`.
fn reason_label(reason: &str) -> &'static str {
    etl_decode::RejectReason::from_code(reason).map_or("other", |r| r.as_str())
}

/// Counts one committed batch of `stream`: records read, rows written, duplicates, rows the SQL
/// filtered and the reason of each dead letter.
pub fn batch_committed(
    stream: &str,
    read: u64,
    written: u64,
    duplicates: u64,
    filtered: u64,
    dead_letter_reasons: &[String],
) {
    let s = || stream.to_string();
    metrics::counter!("etl_records_read_total", "stream" => s()).increment(read);
    metrics::counter!("etl_records_written_total", "stream" => s()).increment(written);
    metrics::counter!("etl_records_duplicates_total", "stream" => s()).increment(duplicates);
    metrics::counter!("etl_records_filtered_total", "stream" => s()).increment(filtered);
    metrics::histogram!("etl_batch_records", "stream" => s()).record(read as f64);
    let mut by_reason: Vec<(&'static str, u64)> = Vec::new();
    for reason in dead_letter_reasons.iter().map(|r| reason_label(r)) {
        match by_reason.iter_mut().find(|(r, _)| *r == reason) {
            Some((_, n)) => *n += 1,
            None => by_reason.push((reason, 1)),
        }
    }
    for (reason, n) in by_reason {
        metrics::counter!("etl_records_dead_lettered_total", "stream" => stream.to_string(), "reason" => reason)
            .increment(n);
    }
}

/// Times the stages of one batch: [`StageClock::lap`] records the time since the clock was
/// made or last lapped/[`StageClock::mark`]ed as that stage's duration.
#[derive(Debug)]
pub struct StageClock {
    stream: String,
    since: Instant,
}

impl StageClock {
    /// A clock for a batch of `stream`, started now.
    pub fn new(stream: &str) -> Self {
        StageClock {
            stream: stream.to_string(),
            since: Instant::now(),
        }
    }

    /// Records the time since the last lap or mark as `stage`'s duration and starts again.
    pub fn lap(&mut self, stage: Stage) {
        let now = Instant::now();
        metrics::histogram!("etl_stage_duration_seconds", "stream" => self.stream.clone(), "stage" => stage.as_str())
            .record(now.duration_since(self.since).as_secs_f64());
        self.since = now;
    }

    /// Starts again without recording (e.g. after waiting for the dedup turn, which is no stage).
    pub fn mark(&mut self) {
        self.since = Instant::now();
    }
}

/// Times one batch's commit: made before the lake write, told [`CommitTimer::written`] once the
/// lake has it (the lake commit duration); when dropped it records the whole commit stage (lake,
/// catalog, sink, hook), and a lake commit failure if `written` was never called.
#[derive(Debug)]
pub struct CommitTimer {
    stream: String,
    started: Instant,
    written: bool,
}

/// Starts timing a commit of `stream`.
pub fn commit_timer(stream: &str) -> CommitTimer {
    CommitTimer {
        stream: stream.to_string(),
        started: Instant::now(),
        written: false,
    }
}

impl CommitTimer {
    /// The batch is durable in the lake.
    pub fn written(&mut self) {
        self.written = true;
        metrics::histogram!("etl_lake_commit_duration_seconds", "stream" => self.stream.clone())
            .record(self.started.elapsed().as_secs_f64());
    }
}

impl Drop for CommitTimer {
    fn drop(&mut self) {
        if self.written {
            metrics::histogram!("etl_stage_duration_seconds", "stream" => self.stream.clone(), "stage" => Stage::Commit.as_str())
                .record(self.started.elapsed().as_secs_f64());
        } else {
            metrics::counter!("etl_lake_commit_failures_total", "stream" => self.stream.clone())
                .increment(1);
        }
    }
}
