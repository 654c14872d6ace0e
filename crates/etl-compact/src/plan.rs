//! What a run would do: the partitions of a table, which are closed, which are compact.

use crate::state::PartitionState;
use crate::CompactError;
use etl_lake::{Lake, LakeError, PartitionValues};
use etl_warehouse::partitions::PARTITION_STATE_PREFIX;
use futures::TryStreamExt;
use object_store::path::Path as ObjectPath;
use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

/// A writer's data file of a partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputFile {
    /// Object path below the lake root.
    pub path: String,
    /// Size in bytes.
    pub bytes: u64,
    /// When the object was written (ms since the epoch): its rows' arrival in the lake.
    pub written_ms: i64,
    /// The object's ETag, if the store gives one.
    pub e_tag: Option<String>,
}

/// Why a partition is left as it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    /// The hour closed less than `older_than` ago (or has not closed).
    Open,
    /// One file, or no more files than its bytes need, or a generation with nothing late.
    AlreadyCompact,
}

/// What the run does with a partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Writes generation `generation` from the current generation and the files not yet in it.
    Compact { generation: u64 },
    /// Nothing to write.
    Skip(SkipReason),
}

/// One partition's plan.
#[derive(Debug, Clone)]
pub struct PartitionPlan {
    /// Table (stream).
    pub table: String,
    /// The partition.
    pub partition: PartitionValues,
    /// Its state if it was compacted before.
    pub state: Option<PartitionState>,
    /// Writer files not folded into a generation yet, in arrival order (time, then name).
    pub uncovered: Vec<InputFile>,
    /// Writer files folded into the current generation and written again after it was
    /// committed (a backfill re-processing the hour): their rows replace the generation's.
    pub rewritten: Vec<InputFile>,
    /// What to do.
    pub action: Action,
    /// Files readers read now.
    pub files_before: usize,
    /// Bytes readers read now.
    pub bytes_before: u64,
}

impl PartitionPlan {
    /// Bytes the compaction reads (the current generation and the uncovered files).
    pub fn bytes_in(&self) -> u64 {
        let generation: u64 = self
            .state
            .as_ref()
            .map_or(0, |s| s.files.iter().map(|f| f.bytes).sum());
        generation + self.uncovered.iter().map(|f| f.bytes).sum::<u64>()
    }
}

impl fmt::Display for PartitionPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.action {
            Action::Compact { generation } => format!("compact -> generation {generation}"),
            Action::Skip(SkipReason::Open) => "skip (not closed long enough)".into(),
            Action::Skip(SkipReason::AlreadyCompact) => "skip (already compact)".into(),
        };
        let late = match &self.state {
            Some(s) if !self.uncovered.is_empty() => format!(
                ", generation {} + {} late file(s)",
                s.generation,
                self.uncovered.len()
            ),
            _ => String::new(),
        };
        let retired = self.state.as_ref().map_or(0, |s| s.retired.len());
        let late = if self.rewritten.is_empty() {
            late
        } else {
            format!("{late}, {} rewritten file(s)", self.rewritten.len())
        };
        write!(
            f,
            "{} {}: {} file(s), {} bytes{late}; {what}; {retired} retired object(s) waiting",
            self.table,
            self.partition.path(),
            self.files_before,
            self.bytes_before
        )
    }
}

/// Parses `90s`, `15m`, `2h`, `7d` (a number and one unit).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration; write e.g. 90s, 15m, 2h or 7d"))?;
    let seconds = match unit.trim() {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => {
            return Err(format!(
                "`{text}` has no known unit; write e.g. 90s, 15m, 2h or 7d"
            ))
        }
    };
    Ok(Duration::from_secs(n.saturating_mul(seconds)))
}

/// The end of a partition-hour (ms since the epoch), `None` if the values are not a date and
/// an hour.
pub(crate) fn hour_end_ms(p: &PartitionValues) -> Option<i64> {
    let date = chrono::NaiveDate::parse_from_str(&p.dt, "%Y-%m-%d").ok()?;
    let hour: i64 = p.hour.parse().ok().filter(|h| (0..24).contains(h))?;
    let midnight = date.and_hms_opt(0, 0, 0)?.and_utc().timestamp_millis();
    Some(midnight + (hour + 1) * 3_600_000)
}

/// `<table>/dt=X/hour=Y/<file>.parquet` → the partition.
fn writer_file_partition(table: &str, path: &str) -> Option<PartitionValues> {
    let mut parts = path.split('/');
    let (t, dt, hour, name) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if t != table || parts.next().is_some() || !name.ends_with(".parquet") {
        return None;
    }
    Some(PartitionValues {
        dt: dt.strip_prefix("dt=")?.to_string(),
        hour: hour.strip_prefix("hour=")?.to_string(),
    })
}

async fn list_meta(lake: &Lake, prefix: &str) -> Result<Vec<object_store::ObjectMeta>, LakeError> {
    lake.store()
        .list(Some(&ObjectPath::from(prefix)))
        .try_collect()
        .await
        .map_err(|source| LakeError::Read {
            path: lake.display(prefix),
            source,
        })
}

/// Plans every partition of `table`: the writer files under `<table>/` and the partitions that
/// have a state object.
pub(crate) async fn plan_table(
    lake: &Lake,
    table: &str,
    now_ms: i64,
    older_than: Duration,
    target_file_bytes: u64,
) -> Result<Vec<PartitionPlan>, CompactError> {
    let mut files: BTreeMap<PartitionValues, Vec<InputFile>> = BTreeMap::new();
    for meta in list_meta(lake, table).await? {
        let path = meta.location.to_string();
        if let Some(p) = writer_file_partition(table, &path) {
            files.entry(p).or_default().push(InputFile {
                path,
                bytes: meta.size,
                written_ms: meta.last_modified.timestamp_millis(),
                e_tag: meta.e_tag.clone(),
            });
        }
    }
    let state_prefix = format!("{PARTITION_STATE_PREFIX}/{table}");
    for meta in list_meta(lake, &state_prefix).await? {
        let path = meta.location.to_string();
        let rest = path.strip_prefix(&state_prefix).unwrap_or_default();
        let mut parts = rest.trim_start_matches('/').split('/');
        if let (Some(dt), Some(hour)) = (parts.next(), parts.next()) {
            if let (Some(dt), Some(hour)) = (
                dt.strip_prefix("dt="),
                hour.strip_prefix("hour=")
                    .and_then(|h| h.strip_suffix(".json")),
            ) {
                files
                    .entry(PartitionValues {
                        dt: dt.into(),
                        hour: hour.into(),
                    })
                    .or_default();
            }
        }
    }
    let older_ms = i64::try_from(older_than.as_millis()).unwrap_or(i64::MAX);
    let mut plans = Vec::with_capacity(files.len());
    for (partition, mut writer_files) in files {
        let Some(end) = hour_end_ms(&partition) else {
            tracing::warn!(table, partition = %partition.path(), "not a dt=YYYY-MM-DD/hour=HH partition; left alone");
            continue;
        };
        let state = PartitionState::read(lake, table, &partition).await?;
        // Arrival order: object time, then name (a shard's batches are named in position order).
        writer_files.sort_by(|a, b| (a.written_ms, &a.path).cmp(&(b.written_ms, &b.path)));
        let mut rewritten = Vec::new();
        let (uncovered, files_before, bytes_before): (Vec<InputFile>, usize, u64) = match &state {
            Some(s) => {
                let covered: std::collections::BTreeMap<&str, &crate::state::Covered> =
                    s.covers.iter().map(|c| (c.path.as_str(), c)).collect();
                let (old, uncovered): (Vec<InputFile>, Vec<InputFile>) = writer_files
                    .into_iter()
                    .partition(|f| covered.contains_key(f.path.as_str()));
                // Newest first: the latest re-processing wins.
                rewritten = old
                    .into_iter()
                    .filter(|f| covered.get(f.path.as_str()).is_some_and(|c| c.changed(f)))
                    .rev()
                    .collect();
                let bytes = s.files.iter().map(|f| f.bytes).sum();
                (uncovered, s.files.len(), bytes)
            }
            None => {
                let bytes = writer_files.iter().map(|f| f.bytes).sum();
                let n = writer_files.len();
                (writer_files, n, bytes)
            }
        };
        let closed = end.saturating_add(older_ms) <= now_ms;
        let needed = bytes_before.div_ceil(target_file_bytes.max(1)).max(1);
        let action = if !closed {
            Action::Skip(SkipReason::Open)
        } else {
            match &state {
                Some(s) if !uncovered.is_empty() || !rewritten.is_empty() => Action::Compact {
                    generation: s.generation + 1,
                },
                Some(_) => Action::Skip(SkipReason::AlreadyCompact),
                None if uncovered.len() as u64 > needed => Action::Compact { generation: 1 },
                None => Action::Skip(SkipReason::AlreadyCompact),
            }
        };
        plans.push(PartitionPlan {
            table: table.to_string(),
            partition,
            state,
            uncovered,
            rewritten,
            action,
            files_before,
            bytes_before,
        });
    }
    Ok(plans)
}
