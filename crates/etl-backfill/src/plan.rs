//! What a backfill will do: the units of work (one shard's batches of one arrival hour, or one
//! historical file), their size, and the slice a task runs.

use crate::BackfillError;
use etl_lake::delivery::{compare_positions, Delivery};
use etl_lake::raw::partition_of;
use etl_lake::{BatchCommit, BatchId, Lake};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

/// Where the records of a backfill come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceSpec {
    /// The raw archive that `etl run` writes beside the lake.
    Raw,
    /// Historical NDJSON files (gzip or not): a local folder or file, or an `s3://` prefix.
    Files(String),
    /// The Kinesis stream again (`AT_TIMESTAMP`), cut into the committed batches.
    Kinesis,
}

/// One committed batch of the raw archive, as its manifest describes it.
#[derive(Debug, Clone)]
pub struct RawBatchRef {
    /// The batch.
    pub batch_id: BatchId,
    /// Its shard's commit log (`<kinesis stream>/<shard id>`).
    pub shard: String,
    /// The source its manifest names.
    pub source: String,
    /// First and last position (`<sequence>.<sub-sequence>`).
    pub first: String,
    pub last: String,
    /// Its raw archive file and size.
    pub raw_path: String,
    pub raw_bytes: u64,
    /// Its manifests now (normally one: `<batch>.json`, or `<batch>@<revision>.json`).
    pub manifests: Vec<String>,
    /// Rows and dead letters it holds now.
    pub rows: u64,
    pub dead_letters: u64,
    /// The partitions its data files are in.
    pub partitions: BTreeSet<String>,
    /// Its dead-letter file's `dt` (where the rewritten dead letters go), if it has one.
    pub dead_letter_dt: Option<String>,
}

/// One historical file.
#[derive(Debug, Clone)]
pub struct FileInput {
    /// The store it is in.
    pub store: Lake,
    /// Its path in the store.
    pub path: String,
    /// Its size.
    pub bytes: u64,
}

impl FileInput {
    /// Its full name (`s3://…` or a local path).
    pub fn name(&self) -> String {
        self.store.display(&self.path)
    }
}

/// An independent unit of work: a task runs whole units, and no two units write the same object.
#[derive(Debug, Clone)]
pub enum Unit {
    /// The batches of one shard whose first record arrived in one hour, in position order.
    Raw {
        /// The shard's commit log.
        shard: String,
        /// `dt=…/hour=…` of the arrival hour.
        hour: String,
        /// The batches.
        batches: Vec<RawBatchRef>,
    },
    /// One historical file.
    File(FileInput),
    /// One shard's committed batches, read again from Kinesis.
    Kinesis {
        /// The shard's commit log (`<kinesis stream>/<shard id>`).
        shard: String,
        /// Batches in its commit log.
        batches: u64,
    },
}

impl Unit {
    /// Bytes of input the unit reads.
    pub fn bytes(&self) -> u64 {
        match self {
            Unit::Raw { batches, .. } => batches.iter().map(|b| b.raw_bytes).sum(),
            Unit::File(f) => f.bytes,
            Unit::Kinesis { .. } => 0,
        }
    }
}

/// The plan of a backfill.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// The stream (table).
    pub stream: String,
    /// The units, in order (shard, then arrival hour; or file name).
    pub units: Vec<Unit>,
    /// Batches left alone because each is the newest of its shard: the consumer's recovery checks
    /// that batch's files against its commit record. Backfill them once the shard has moved on.
    pub newest_skipped: Vec<String>,
    /// Raw files without a manifest (a batch whose publication has not finished): left alone.
    pub unpublished: Vec<String>,
}

impl Plan {
    /// The units of slice `index` of `count` (unit `i` goes to slice `i % count`).
    pub fn slice(mut self, index: usize, count: usize) -> Result<Plan, BackfillError> {
        if count == 0 || index >= count {
            return Err(BackfillError::Option {
                field: "--task-index/--task-count",
                message: format!(
                    "task index {index} of {count}: the count must be at least 1 and the index below it (0-based)"
                ),
            });
        }
        self.units = self
            .units
            .into_iter()
            .enumerate()
            .filter(|(i, _)| i % count == index)
            .map(|(_, u)| u)
            .collect();
        Ok(self)
    }

    /// Raw batches in the plan.
    pub fn batches(&self) -> usize {
        self.units
            .iter()
            .map(|u| match u {
                Unit::Raw { batches, .. } => batches.len(),
                Unit::File(_) | Unit::Kinesis { .. } => 0,
            })
            .sum()
    }

    /// Input bytes.
    pub fn bytes(&self) -> u64 {
        self.units.iter().map(Unit::bytes).sum()
    }

    /// Records the raw batches held when they were last written (rows + dead letters; repeated
    /// events the dedup dropped are not in this count).
    pub fn records_expected(&self) -> u64 {
        self.raw_refs().map(|b| b.rows + b.dead_letters).sum()
    }

    /// The partitions the raw batches wrote into.
    pub fn partitions(&self) -> BTreeSet<String> {
        self.raw_refs()
            .flat_map(|b| b.partitions.iter().cloned())
            .collect()
    }

    fn raw_refs(&self) -> impl Iterator<Item = &RawBatchRef> {
        self.units.iter().flat_map(|u| match u {
            Unit::Raw { batches, .. } => batches.as_slice(),
            Unit::File(_) | Unit::Kinesis { .. } => &[],
        })
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for unit in &self.units {
            match unit {
                Unit::Raw {
                    shard,
                    hour,
                    batches,
                } => writeln!(
                    f,
                    "  {shard} {hour}: {} batches, {} raw bytes",
                    batches.len(),
                    unit.bytes()
                )?,
                Unit::File(file) => writeln!(f, "  {}: {} bytes", file.name(), file.bytes)?,
                Unit::Kinesis { shard, batches } => writeln!(
                    f,
                    "  {shard}: {batches} committed batches in its log (those whose first record arrived in the range are read again)"
                )?,
            }
        }
        let objects = match self.units.first() {
            Some(Unit::File(_)) => format!("{} files", self.units.len()),
            Some(Unit::Kinesis { .. }) => format!("{} shards", self.units.len()),
            _ => format!("{} raw objects", self.batches()),
        };
        writeln!(
            f,
            "plan for {}: {} units, {objects}, {} bytes",
            self.stream,
            self.units.len(),
            self.bytes()
        )?;
        if self.batches() > 0 {
            let partitions = self.partitions();
            writeln!(
                f,
                "records expected: {} (rows + dead letters now); partitions touched: {}{}",
                self.records_expected(),
                partitions.len(),
                if partitions.is_empty() {
                    String::new()
                } else {
                    format!(
                        " ({} … {})",
                        partitions.first().map(String::as_str).unwrap_or(""),
                        partitions.last().map(String::as_str).unwrap_or("")
                    )
                }
            )?;
        }
        for b in &self.newest_skipped {
            writeln!(f, "left alone (newest batch of its shard): {b}")?;
        }
        for r in &self.unpublished {
            writeln!(f, "left alone (raw file without a manifest): {r}")?;
        }
        Ok(())
    }
}

/// Parses an instant: `2026-11-01`, `2026-11-01T00:00Z`, `2026-11-01T00:00:00Z` or any RFC 3339
/// time; milliseconds since the epoch.
pub fn parse_instant(text: &str) -> Result<i64, String> {
    let t = text.trim();
    let with_seconds = match t.split_once('T') {
        // `…T13:00Z` / `…T13:00+01:00`: RFC 3339 wants seconds.
        Some((date, time))
            if time.len() >= 5
                && time[..5].matches(':').count() == 1
                && time.get(5..6) != Some(":") =>
        {
            format!("{date}T{}:00{}", &time[..5], &time[5..])
        }
        _ => t.to_string(),
    };
    if let Ok(d) = chrono::DateTime::parse_from_rfc3339(&with_seconds) {
        return Ok(d.timestamp_millis());
    }
    if let Some(dt) = chrono::NaiveDate::parse_from_str(t, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
    {
        return Ok(dt.and_utc().timestamp_millis());
    }
    Err(format!(
        "`{text}` is not a UTC instant: write e.g. 2026-11-01, 2026-11-01T13:00Z or 2026-11-01T13:00:00Z"
    ))
}

/// The manifests of `stream` by batch id (`<batch>.json` and `<batch>@<revision>.json`).
pub async fn manifests_by_batch(
    lake: &Lake,
    stream: &str,
) -> Result<HashMap<String, Vec<String>>, BackfillError> {
    let prefix = format!("_commits/{stream}/");
    let mut out: HashMap<String, Vec<String>> = HashMap::new();
    for path in lake.list(&prefix).await? {
        let Some(stem) = path
            .strip_prefix(&prefix)
            .and_then(|n| n.strip_suffix(".json"))
        else {
            continue;
        };
        let batch = stem.split('@').next().unwrap_or(stem).to_string();
        out.entry(batch).or_default().push(path);
    }
    Ok(out)
}

/// Where the manifest of `batch` revised by revision `revision` is stored (as
/// `BatchCommit::manifest_path` names it).
pub fn revised_manifest(stream: &str, batch: &str, revision: &str) -> String {
    format!("_commits/{stream}/{batch}@{revision}.json")
}

/// Reads a manifest.
pub async fn read_manifest(lake: &Lake, path: &str) -> Result<BatchCommit, BackfillError> {
    let bytes = lake.get(path).await?.ok_or_else(|| BackfillError::Read {
        path: lake.display(path),
        message: "the manifest vanished; another process changed the batch: run again".into(),
    })?;
    serde_json::from_slice(&bytes).map_err(|e| BackfillError::Manifest {
        path: lake.display(path),
        message: e.to_string(),
    })
}

/// The manifest readers should trust among a batch's manifests: a revised one (the newest name)
/// over the original.
pub fn current_manifest(paths: &[String]) -> Option<&String> {
    paths
        .iter()
        .filter(|p| p.contains('@'))
        .max()
        .or_else(|| paths.first())
}

/// Plans a backfill of `stream` from the raw archive: the committed batches whose raw file is in
/// an arrival hour overlapping `[from_ms, to_ms)` (the exact first arrival is checked when the
/// file is read).
pub async fn plan_raw(
    lake: &Lake,
    stream: &str,
    from_ms: i64,
    to_ms: i64,
) -> Result<Plan, BackfillError> {
    if to_ms <= from_ms {
        return Err(BackfillError::Option {
            field: "--to",
            message: "the range is empty: --to must be later than --from".into(),
        });
    }
    let manifests = manifests_by_batch(lake, stream).await?;
    let newest = newest_batches(lake, stream).await?;
    let mut plan = Plan {
        stream: stream.to_string(),
        ..Default::default()
    };
    let mut by_unit: BTreeMap<(String, String), Vec<RawBatchRef>> = BTreeMap::new();
    let mut hour = from_ms.div_euclid(3_600_000) * 3_600_000;
    while hour < to_ms {
        let p = partition_of(hour);
        let prefix = format!("raw/{stream}/{}/", p.path());
        for path in lake.list(&prefix).await? {
            let Some(batch) = path
                .strip_prefix(&prefix)
                .and_then(|n| n.strip_suffix(".ndjson.gz"))
            else {
                continue;
            };
            if newest.contains(batch) {
                plan.newest_skipped.push(batch.to_string());
                continue;
            }
            let Some(current) = manifests.get(batch).and_then(|m| current_manifest(m)) else {
                plan.unpublished.push(path.clone());
                continue;
            };
            let commit = read_manifest(lake, current).await?;
            let Some(range) = commit.range.clone() else {
                return Err(BackfillError::Manifest {
                    path: lake.display(current),
                    message: "a batch of the raw archive must have a shard range".into(),
                });
            };
            let raw_bytes = lake_size(lake, &path).await?;
            let r = RawBatchRef {
                batch_id: commit.batch_id.clone(),
                shard: range.shard.clone(),
                source: commit.source.clone(),
                first: range.first.clone(),
                last: range.last.clone(),
                raw_path: path.clone(),
                raw_bytes,
                manifests: manifests.get(batch).cloned().unwrap_or_default(),
                rows: commit.rows(),
                dead_letters: commit.dead_letters,
                partitions: commit.files.iter().map(|f| f.partition.path()).collect(),
                dead_letter_dt: commit.dead_letter_file.as_deref().and_then(dead_letter_dt),
            };
            by_unit.entry((range.shard, p.path())).or_default().push(r);
        }
        hour += 3_600_000;
    }
    for ((shard, hour), mut batches) in by_unit {
        batches.sort_by(|a, b| compare_positions(&a.first, &b.first));
        plan.units.push(Unit::Raw {
            shard,
            hour,
            batches,
        });
    }
    Ok(plan)
}

/// Plans a backfill from Kinesis: one unit per shard of `kinesis_stream` with a commit log in
/// the lake (the batches of the range are found while reading).
pub async fn plan_kinesis(
    lake: &Lake,
    stream: &str,
    kinesis_stream: &str,
) -> Result<Plan, BackfillError> {
    let prefix = format!("_delivery/{stream}/{kinesis_stream}/");
    let mut shards: BTreeMap<String, u64> = BTreeMap::new();
    for path in lake.list(&prefix).await? {
        let Some(rest) = path.strip_prefix(&format!("_delivery/{stream}/")) else {
            continue;
        };
        if let Some((shard, name)) = rest.rsplit_once('/') {
            if name.ends_with(".json") {
                *shards.entry(shard.to_string()).or_default() += 1;
            }
        }
    }
    if shards.is_empty() {
        return Err(BackfillError::Option {
            field: "--kinesis-stream",
            message: format!(
                "the lake has no commit log of Kinesis stream `{kinesis_stream}` for {stream} (_delivery/{stream}/{kinesis_stream}/): name the stream `etl run` consumed"
            ),
        });
    }
    Ok(Plan {
        stream: stream.to_string(),
        units: shards
            .into_iter()
            .map(|(shard, batches)| Unit::Kinesis { shard, batches })
            .collect(),
        ..Default::default()
    })
}

/// Plans a backfill from historical files: every object under `location` (a local folder or
/// file, or an `s3://` prefix given as a store), in name order.
pub async fn plan_files(store: &Lake, stream: &str, prefix: &str) -> Result<Plan, BackfillError> {
    let mut plan = Plan {
        stream: stream.to_string(),
        ..Default::default()
    };
    for path in store.list(prefix).await? {
        let name = path.rsplit('/').next().unwrap_or(&path);
        if name.starts_with('.') || name.starts_with('_') {
            continue;
        }
        let bytes = lake_size(store, &path).await?;
        plan.units.push(Unit::File(FileInput {
            store: store.clone(),
            path,
            bytes,
        }));
    }
    if plan.units.is_empty() {
        return Err(BackfillError::Option {
            field: "--source",
            message: format!(
                "no files under {}: give a folder or prefix holding NDJSON (.ndjson, .ndjson.gz) files",
                store.display(prefix)
            ),
        });
    }
    Ok(plan)
}

async fn lake_size(lake: &Lake, path: &str) -> Result<u64, BackfillError> {
    use object_store::ObjectStoreExt;
    let meta = lake
        .store()
        .head(&object_store::path::Path::from(path))
        .await
        .map_err(|e| BackfillError::Read {
            path: lake.display(path),
            message: e.to_string(),
        })?;
    Ok(meta.size)
}

/// `dt` of a dead-letter file `dead-letters/<stream>/dt=<dt>/<batch>.ndjson`.
pub(crate) fn dead_letter_dt(path: &str) -> Option<String> {
    path.split('/')
        .find_map(|s| s.strip_prefix("dt="))
        .map(str::to_string)
}

/// The batch id of the newest commit record of every shard of `stream`.
async fn newest_batches(lake: &Lake, stream: &str) -> Result<BTreeSet<String>, BackfillError> {
    let prefix = format!("_delivery/{stream}/");
    let mut highest: BTreeMap<String, u64> = BTreeMap::new();
    for path in lake.list(&prefix).await? {
        let Some(rest) = path.strip_prefix(&prefix) else {
            continue;
        };
        let Some((shard, name)) = rest.rsplit_once('/') else {
            continue;
        };
        let Some(n) = name
            .strip_suffix(".json")
            .and_then(|s| s.parse::<u64>().ok())
        else {
            continue;
        };
        let h = highest.entry(shard.to_string()).or_insert(n);
        *h = (*h).max(n);
    }
    let mut out = BTreeSet::new();
    for (shard, n) in highest {
        let record = Delivery::new(lake.clone(), stream, &shard, "backfill-plan", None)
            .read_record(n)
            .await?;
        let commits = format!("_commits/{stream}/");
        for f in &record.files {
            if let Some(stem) = f
                .path
                .strip_prefix(&commits)
                .and_then(|n| n.strip_suffix(".json"))
            {
                out.insert(stem.to_string());
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_in_the_forms_the_docs_show() {
        let day = 1_793_491_200_000; // 2026-11-01T00:00:00Z
        assert_eq!(parse_instant("2026-11-01"), Ok(day));
        assert_eq!(parse_instant("2026-11-01T00:00Z"), Ok(day));
        assert_eq!(parse_instant("2026-11-01T01:30Z"), Ok(day + 5_400_000));
        assert_eq!(parse_instant("2026-11-01T00:00:00Z"), Ok(day));
        assert_eq!(parse_instant("2026-11-01T01:00+01:00"), Ok(day));
        assert_eq!(parse_instant("2026-11-01T00:00:00.250Z"), Ok(day + 250));
        let err = parse_instant("yesterday").unwrap_err();
        assert!(err.contains("2026-11-01T13:00Z"), "{err}");
        assert!(parse_instant("2026-13-01").is_err());
    }

    #[test]
    fn slices_split_units_without_overlap() {
        let unit = |i: u64| Unit::Raw {
            shard: format!("s/{i}"),
            hour: "dt=2026-11-01/hour=00".into(),
            batches: Vec::new(),
        };
        let plan = Plan {
            stream: "ev".into(),
            units: (0..5).map(unit).collect(),
            ..Default::default()
        };
        let shards = |p: Plan| -> Vec<String> {
            p.units
                .into_iter()
                .map(|u| match u {
                    Unit::Raw { shard, .. } | Unit::Kinesis { shard, .. } => shard,
                    Unit::File(f) => f.path,
                })
                .collect()
        };
        let a = shards(plan.clone().slice(0, 2).expect("slice"));
        let b = shards(plan.clone().slice(1, 2).expect("slice"));
        assert_eq!(a, ["s/0", "s/2", "s/4"]);
        assert_eq!(b, ["s/1", "s/3"]);
        assert!(plan.clone().slice(2, 2).is_err());
        assert!(plan.slice(0, 0).is_err());
    }
}
