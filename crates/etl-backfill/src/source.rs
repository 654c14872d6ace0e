//! The record sources of a backfill: the raw archive ([`RawSource`], batch by batch as the
//! consumer cut them) and one historical file ([`FileSource`]), both handing the writer a
//! [`BackfillCheckpoint`] that says which batch the records rewrite.

use crate::plan::{revised_manifest, FileInput, RawBatchRef, Unit};
use crate::run::revision;
use async_trait::async_trait;
use etl_lake::delivery::{compare_positions, Delivery, ManifestPositions, Resume};
use etl_lake::raw::decode_raw;
use etl_lake::{BatchId, Lake, PositionRange};
use etl_pipeline::source::{LineSource, RawBatch};
use etl_pipeline::{Checkpoint, DedupScope, Lines, RecordSource, SourceBatch, SourceError};
use std::any::Any;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

/// Commit records before a unit whose event ids seed the unit's dedup window (the consumer's
/// `leases.dedup_seed_batches` default).
pub const SEED_BATCHES: u64 = 30;

/// Which batch a re-processed batch replaces, and how.
#[derive(Debug, Clone)]
pub struct Target {
    /// The batch id (the names of everything it writes derive from it).
    pub batch_id: BatchId,
    /// Source name recorded in the manifest.
    pub source_name: String,
    /// Positions recorded in the manifest.
    pub positions: ManifestPositions,
    /// `dt` of its dead-letter file.
    pub dead_letter_dt: String,
    /// The revision this run writes.
    pub revision: String,
    /// The batch's manifests now (their files are replaced; they are deleted after the revised
    /// manifest is written).
    pub old_manifests: Vec<String>,
}

#[derive(Debug)]
enum Positions {
    Text(Vec<String>),
    Lines(Lines),
}

/// The checkpoint of a backfill batch: the target it rewrites, its records' positions and the
/// dedup window it goes through.
#[derive(Debug)]
pub struct BackfillCheckpoint {
    /// What the batch rewrites.
    pub target: Target,
    positions: Positions,
    scope: DedupScope,
}

impl BackfillCheckpoint {
    /// The checkpoint of a batch with text positions (Kinesis).
    pub fn new(target: Target, positions: Vec<String>, scope: DedupScope) -> Self {
        BackfillCheckpoint {
            target,
            positions: Positions::Text(positions),
            scope,
        }
    }
}

impl Checkpoint for BackfillCheckpoint {
    fn position(&self, i: usize) -> String {
        match &self.positions {
            Positions::Text(p) => p.get(i).cloned().unwrap_or_default(),
            Positions::Lines(l) => l.position(i),
        }
    }
    fn range(&self) -> (String, String) {
        match &self.positions {
            Positions::Text(p) => (
                p.first().cloned().unwrap_or_default(),
                p.last().cloned().unwrap_or_default(),
            ),
            Positions::Lines(l) => l.range(),
        }
    }
    fn into_any(self: Box<Self>) -> Box<dyn Any + Send> {
        self
    }
    fn dedup_scope(&self) -> Option<DedupScope> {
        Some(self.scope.clone())
    }
}

/// What the sources skipped, for the summary.
#[derive(Debug, Default, Clone, Copy)]
pub struct SourceStats {
    /// Batches already written by this revision (a rerun, or a resumed run).
    pub done_before: u64,
    /// Batches whose first record arrived outside the range (edge hours).
    pub outside_range: u64,
    /// Batches read.
    pub batches_read: u64,
}

/// The batches of raw units, in unit order.
pub struct RawSource {
    lake: Lake,
    stream: String,
    name: String,
    queue: VecDeque<(usize, RawBatchRef)>,
    range: (i64, i64),
    fingerprint: String,
    /// The unit whose window is current, per shard.
    current: HashMap<String, usize>,
    epochs: HashMap<String, u64>,
    seeds: HashMap<String, Arc<Vec<String>>>,
    stats: Arc<Mutex<SourceStats>>,
}

impl RawSource {
    /// A source of the raw batches of `units` (other units are ignored) whose first record
    /// arrived in `range` (ms), rewritten as revision `revision(fingerprint, batch)`.
    pub fn new(
        lake: Lake,
        stream: &str,
        units: &[Unit],
        range: (i64, i64),
        fingerprint: &str,
        stats: Arc<Mutex<SourceStats>>,
    ) -> Self {
        let queue = units
            .iter()
            .enumerate()
            .flat_map(|(i, u)| match u {
                Unit::Raw { batches, .. } => batches.iter().map(|b| (i, b.clone())).collect(),
                Unit::File(_) | Unit::Kinesis { .. } => Vec::new(),
            })
            .collect();
        RawSource {
            name: format!("raw archive of {stream}"),
            lake,
            stream: stream.to_string(),
            queue,
            range,
            fingerprint: fingerprint.to_string(),
            current: HashMap::new(),
            epochs: HashMap::new(),
            seeds: HashMap::new(),
            stats,
        }
    }

    fn stat(&self, f: impl FnOnce(&mut SourceStats)) {
        let mut s = self.stats.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut s);
    }
}

/// The event ids of `shard`'s batches before the one starting at `first` (the consumer's dedup
/// window when it reached that batch, as after a restart); empty, with a warning, if they cannot
/// be read (e.g. compacted away).
pub(crate) async fn seed_before(
    lake: &Lake,
    stream: &str,
    shard: &str,
    first: &str,
) -> Vec<String> {
    let d = Delivery::new(lake.clone(), stream, shard, "backfill", None);
    let found = async {
        let numbers = d.record_numbers().await?;
        let lo = first_batch_from(&d, &numbers, first).await?;
        let next = match numbers.get(lo) {
            Some(n) => *n,
            None => numbers.last().map_or(0, |n| n + 1),
        };
        d.recent_values(&Resume { next, after: None }, SEED_BATCHES, "event_id")
            .await
    };
    match found.await {
        Ok(ids) => ids,
        Err(error) => {
            tracing::warn!(stream, shard, %error, "cannot read the event ids of the batches before this unit; its dedup window starts empty (compaction drops repeats within a partition-hour)");
            Vec::new()
        }
    }
}

/// The index in `numbers` (the shard's record numbers, ascending) of the first commit record
/// whose batch starts at or after `position`: a binary search, reading log2(n) records.
pub(crate) async fn first_batch_from(
    delivery: &Delivery,
    numbers: &[u64],
    position: &str,
) -> Result<usize, etl_lake::delivery::DeliveryError> {
    let (mut lo, mut hi) = (0, numbers.len());
    while lo < hi {
        let mid = (lo + hi) / 2;
        let r = delivery.read_record(numbers[mid]).await?;
        if compare_positions(&r.first, position) == std::cmp::Ordering::Less {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    Ok(lo)
}

fn source_error(path: &str, e: impl std::fmt::Display) -> SourceError {
    SourceError::Failed {
        source_name: path.to_string(),
        message: e.to_string(),
        retryable: false,
    }
}

#[async_trait]
impl RecordSource for RawSource {
    fn name(&self) -> &str {
        &self.name
    }
    fn tag(&self) -> &str {
        "backfill-raw"
    }
    fn batch_time_ms(&self) -> i64 {
        self.range.0
    }
    async fn next_batch(
        &mut self,
        _max_records: usize,
        _max_bytes: usize,
    ) -> Result<Option<SourceBatch>, SourceError> {
        while let Some((unit, b)) = self.queue.pop_front() {
            let rev = revision(&self.fingerprint, b.batch_id.as_str());
            let revised = revised_manifest(&self.stream, b.batch_id.as_str(), &rev);
            if b.manifests.contains(&revised) {
                self.stat(|s| s.done_before += 1);
                // The next batch of this shard starts a new window (seeded afresh).
                self.current.remove(&b.shard);
                continue;
            }
            let bytes = self
                .lake
                .get(&b.raw_path)
                .await
                .map_err(|e| SourceError::Failed {
                    source_name: self.lake.display(&b.raw_path),
                    message: e.to_string(),
                    retryable: e.is_transient(),
                })?
                .ok_or_else(|| {
                    source_error(&self.lake.display(&b.raw_path), "the raw file vanished")
                })?;
            let lines = decode_raw(&b.raw_path, &bytes)
                .map_err(|e| source_error(&self.lake.display(&b.raw_path), e))?;
            let first_arrival = lines.first().and_then(|l| l.arrival_ms).unwrap_or(0);
            if first_arrival < self.range.0 || first_arrival >= self.range.1 {
                self.stat(|s| s.outside_range += 1);
                self.current.remove(&b.shard);
                continue;
            }
            let mut records = RawBatch::default();
            let mut positions = Vec::with_capacity(lines.len());
            for line in &lines {
                let data = line.bytes().unwrap_or_default();
                let start = records.data.len();
                records.data.extend_from_slice(&data);
                records.ranges.push((start, records.data.len()));
                records.arrivals.push(line.arrival_ms);
                positions.push(format!("{}.{}", line.sequence, line.sub_sequence));
            }
            // Each unit starts its own window, seeded with the shard's ids before it, so the
            // result does not depend on how units are sliced or resumed.
            if self.current.get(&b.shard) != Some(&unit) {
                let seed = seed_before(&self.lake, &self.stream, &b.shard, &b.first).await;
                *self.epochs.entry(b.shard.clone()).or_insert(0) += 1;
                self.seeds.insert(b.shard.clone(), Arc::new(seed));
                self.current.insert(b.shard.clone(), unit);
            }
            let scope = DedupScope {
                key: Arc::from(b.shard.as_str()),
                epoch: self.epochs.get(&b.shard).copied().unwrap_or(1),
                seed: self.seeds.get(&b.shard).cloned().unwrap_or_default(),
                share: 1,
            };
            self.stat(|s| s.batches_read += 1);
            let dt = b
                .dead_letter_dt
                .clone()
                .unwrap_or_else(|| etl_lake::raw::partition_of(first_arrival).dt);
            return Ok(Some(SourceBatch {
                records,
                checkpoint: Box::new(BackfillCheckpoint {
                    target: Target {
                        batch_id: b.batch_id.clone(),
                        source_name: b.source.clone(),
                        positions: ManifestPositions::Range(PositionRange {
                            shard: b.shard.clone(),
                            first: b.first.clone(),
                            last: b.last.clone(),
                        }),
                        dead_letter_dt: dt,
                        revision: rev,
                        old_manifests: b.manifests.clone(),
                    },
                    positions: Positions::Text(positions),
                    scope,
                }),
            }));
        }
        Ok(None)
    }
}

/// One historical NDJSON file (gzip detected by its magic bytes), cut into batches of fixed
/// size so the same file always gives the same batch ids (`<file tag>-<first line>-<last line>`).
pub struct FileSource {
    inner: LineSource,
    tag: String,
    fingerprint: String,
    manifests: Arc<HashMap<String, Vec<String>>>,
    dead_letter_dt: String,
    scope: DedupScope,
}

impl FileSource {
    /// Opens `file` (an S3 object is read into memory). Its tag derives from its path below the
    /// source root, so moving the folder keeps the batch ids.
    pub async fn open(
        file: &FileInput,
        fingerprint: &str,
        manifests: Arc<HashMap<String, Vec<String>>>,
        dead_letter_dt: &str,
    ) -> Result<Self, crate::BackfillError> {
        let name = file.name();
        let tag = file_tag(&file.path);
        let inner =
            if file.store.location().starts_with("s3://") {
                let bytes = file.store.get(&file.path).await?.ok_or_else(|| {
                    crate::BackfillError::Read {
                        path: name.clone(),
                        message: "the object vanished".into(),
                    }
                })?;
                LineSource::from_reader(
                    Box::new(std::io::Cursor::new(bytes)),
                    &name,
                    &tag,
                    chrono::Utc::now().timestamp_millis(),
                )
            } else {
                LineSource::open(&name).map_err(|e| crate::BackfillError::Read {
                    path: name.clone(),
                    message: e.to_string(),
                })?
            };
        Ok(FileSource {
            inner,
            scope: DedupScope {
                key: Arc::from(tag.as_str()),
                epoch: 1,
                seed: Arc::new(Vec::new()),
                share: 1,
            },
            tag,
            fingerprint: fingerprint.to_string(),
            manifests,
            dead_letter_dt: dead_letter_dt.to_string(),
        })
    }
}

/// The tag of a historical file's batch ids: `h` and the xxh3 of its path below the source root.
pub fn file_tag(path: &str) -> String {
    format!("h{:016x}", xxhash_rust::xxh3::xxh3_64(path.as_bytes()))
}

#[async_trait]
impl RecordSource for FileSource {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn tag(&self) -> &str {
        &self.tag
    }
    fn batch_time_ms(&self) -> i64 {
        self.inner.batch_time_ms()
    }
    async fn next_batch(
        &mut self,
        max_records: usize,
        max_bytes: usize,
    ) -> Result<Option<SourceBatch>, SourceError> {
        let Some(batch) = self.inner.next_batch(max_records, max_bytes).await? else {
            return Ok(None);
        };
        let lines = batch
            .checkpoint
            .into_any()
            .downcast::<Lines>()
            .map_err(|_| source_error(self.inner.name(), "a file source gave no line numbers"))?;
        let (first, last) = lines.bounds();
        let batch_id = BatchId::new(&self.tag, first, last);
        let revision = revision(&self.fingerprint, batch_id.as_str());
        let old_manifests = self
            .manifests
            .get(batch_id.as_str())
            .cloned()
            .unwrap_or_default();
        Ok(Some(SourceBatch {
            records: batch.records,
            checkpoint: Box::new(BackfillCheckpoint {
                target: Target {
                    batch_id,
                    source_name: self.inner.name().to_string(),
                    positions: ManifestPositions::Lines { first, last },
                    dead_letter_dt: self.dead_letter_dt.clone(),
                    revision,
                    old_manifests,
                },
                positions: Positions::Lines(*lines),
                scope: self.scope.clone(),
            }),
        }))
    }
}
