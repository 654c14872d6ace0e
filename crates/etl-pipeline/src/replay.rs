//! Replaying dead letters (`etl dead-letters replay`): the original bytes of every dead-lettered
//! record go through the pipeline again, e.g. after a schema or option fix.
//!
//! **Exactly once.** Each dead-letter file is replayed as its own source whose tag is
//! `replay-<file stem>` (the stem is the batch id of the batch that rejected the records) and
//! whose positions are the file's line numbers. Batch ids, and so every file name, derive from
//! them: replaying again rewrites the same objects with the same rows instead of adding copies,
//! and the warehouse loader's ledger already knows those batch ids.
//!
//! Records that fail again become dead letters of the replay batch
//! (`dead-letters/<stream>/dt=…/replay-….ndjson`); files whose name starts with `replay-` are
//! never replayed themselves, so repeated replays do not cascade. Replaying again re-reads the
//! originals, which is idempotent.

use crate::source::{Lines, RawBatch, RecordSource, SourceBatch, SourceError};
use crate::PipelineError;
use async_trait::async_trait;
use etl_lake::{DeadLetter, Lake};

/// File-name prefix of everything a replay writes.
pub const REPLAY_PREFIX: &str = "replay-";

/// The dead-letter files of `stream` that a replay reads (not those written by a replay), sorted.
pub async fn dead_letter_files(lake: &Lake, stream: &str) -> Result<Vec<String>, PipelineError> {
    let mut files: Vec<String> = lake
        .list(&format!("dead-letters/{stream}/"))
        .await?
        .into_iter()
        .filter(|path| {
            let name = path.rsplit('/').next().unwrap_or_default();
            name.ends_with(".ndjson") && !name.starts_with(REPLAY_PREFIX)
        })
        .collect();
    files.sort();
    Ok(files)
}

/// The records of one dead-letter file as a source.
#[derive(Debug)]
pub struct ReplaySource {
    name: String,
    tag: String,
    time_ms: i64,
    records: Vec<(u64, Vec<u8>)>,
    next: usize,
}

impl ReplaySource {
    /// Reads dead-letter file `path` of `lake`. A line that is not a dead letter is an error
    /// naming the file and line (the file is not ours, or it was damaged).
    pub async fn open(lake: &Lake, path: &str) -> Result<Self, PipelineError> {
        let bytes = lake.get(path).await?.ok_or_else(|| PipelineError::Replay {
            path: path.to_string(),
            message: "it disappeared while replaying".into(),
        })?;
        let mut records = Vec::new();
        for (i, line) in bytes.split(|&b| b == b'\n').enumerate() {
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let letter: DeadLetter =
                serde_json::from_slice(line).map_err(|e| PipelineError::Replay {
                    path: path.to_string(),
                    message: format!("line {} is not a dead letter: {e}", i + 1),
                })?;
            records.push((i as u64 + 1, letter.original_bytes()));
        }
        let name = path.rsplit('/').next().unwrap_or(path);
        let stem = name.strip_suffix(".ndjson").unwrap_or(name);
        Ok(ReplaySource {
            name: path.to_string(),
            tag: format!("{REPLAY_PREFIX}{stem}"),
            time_ms: dt_millis(path),
            records,
            next: 0,
        })
    }

    /// Records in the file.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether the file holds no record.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }
}

/// Midnight UTC of the `dt=YYYY-MM-DD` segment of `path` in epoch ms (0 without one), so the
/// replay's own dead letters land in the same day as the originals, on every replay.
fn dt_millis(path: &str) -> i64 {
    let Some(dt) = path
        .split('/')
        .find_map(|segment| segment.strip_prefix("dt="))
    else {
        return 0;
    };
    let mut parts = dt.splitn(3, '-').map(str::parse::<u32>);
    match (parts.next(), parts.next(), parts.next()) {
        (Some(Ok(y)), Some(Ok(m)), Some(Ok(d))) => {
            etl_schema::calendar::days_from_civil(i64::from(y), m, d) * 86_400_000
        }
        _ => 0,
    }
}

#[async_trait]
impl RecordSource for ReplaySource {
    fn name(&self) -> &str {
        &self.name
    }
    fn tag(&self) -> &str {
        &self.tag
    }
    fn batch_time_ms(&self) -> i64 {
        self.time_ms
    }
    async fn next_batch(
        &mut self,
        max_records: usize,
        max_bytes: usize,
    ) -> Result<Option<SourceBatch>, SourceError> {
        let mut batch = RawBatch::default();
        let mut lines = Vec::new();
        while let Some((position, bytes)) = self.records.get(self.next) {
            if batch.len() >= max_records || batch.data.len() >= max_bytes {
                break;
            }
            let start = batch.data.len();
            batch.data.extend_from_slice(bytes);
            batch.ranges.push((start, batch.data.len()));
            lines.push(*position);
            self.next += 1;
        }
        Ok((!batch.is_empty()).then(|| SourceBatch {
            records: batch,
            checkpoint: Box::new(Lines(lines)),
        }))
    }
}
