//! [`KinesisSource`]: the batches of a range read again from the stream (`AT_TIMESTAMP`), for lakes
//! without a raw archive. The delivery log says where each committed batch starts and ends, so
//! the records are cut into exactly the batches the consumer committed, and rewritten as such.

use crate::plan::{current_manifest, dead_letter_dt, read_manifest, revised_manifest};
use crate::run::revision;
use crate::source::{first_batch_from, seed_before, BackfillCheckpoint, SourceStats, Target};
use async_trait::async_trait;
use etl_kinesis::reader::{read_shard, ReadRecord, ShardEvent};
use etl_kinesis::{ReaderOptions, StartPosition};
use etl_lake::delivery::{compare_positions, Delivery, ManifestPositions};
use etl_lake::{Lake, PositionRange};
use etl_pipeline::source::RawBatch;
use etl_pipeline::{DedupScope, RecordSource, SourceBatch, SourceError};
use std::cmp::Ordering;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

/// One shard being read.
struct ShardRead {
    /// The shard's commit log (`<kinesis stream>/<shard id>`).
    log: String,
    delivery: Delivery,
    numbers: Vec<u64>,
    /// Index in `numbers` of the next batch.
    next: usize,
    rx: mpsc::Receiver<ShardEvent>,
    task: tokio::task::JoinHandle<()>,
    buffer: VecDeque<ReadRecord>,
    /// Whether the current window continues from the previous batch.
    continuous: bool,
}

impl Drop for ShardRead {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ShardRead {
    /// The next record of the shard; `None` once it is at its tip or closed.
    async fn next_record(&mut self) -> Result<Option<ReadRecord>, SourceError> {
        loop {
            if let Some(r) = self.buffer.pop_front() {
                return Ok(Some(r));
            }
            match self.rx.recv().await {
                Some(ShardEvent::Records { records, .. }) => self.buffer.extend(records),
                Some(ShardEvent::CaughtUp { .. } | ShardEvent::Finished { .. }) | None => {
                    return Ok(None)
                }
                Some(ShardEvent::Failed { error, .. }) => {
                    return Err(SourceError::Failed {
                        source_name: format!("kinesis shard {}", self.log),
                        message: error.to_string(),
                        retryable: false,
                    })
                }
            }
        }
    }
}

/// The committed batches of the listed shards whose first record arrived in the range, read
/// again from Kinesis.
pub struct KinesisSource {
    lake: Lake,
    stream: String,
    name: String,
    client: etl_aws::kinesis::Client,
    kinesis_stream: String,
    shards: VecDeque<String>,
    current: Option<ShardRead>,
    range: (i64, i64),
    fingerprint: String,
    manifests: Arc<HashMap<String, Vec<String>>>,
    epochs: HashMap<String, u64>,
    stats: Arc<Mutex<SourceStats>>,
}

impl KinesisSource {
    /// A source of the committed batches of `shards` (commit logs `<kinesis stream>/<shard id>`)
    /// of `stream`, read from `kinesis_stream` with `client`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        lake: Lake,
        stream: &str,
        client: etl_aws::kinesis::Client,
        kinesis_stream: &str,
        shards: Vec<String>,
        range: (i64, i64),
        fingerprint: &str,
        manifests: Arc<HashMap<String, Vec<String>>>,
        stats: Arc<Mutex<SourceStats>>,
    ) -> Self {
        KinesisSource {
            name: format!("kinesis:{kinesis_stream}"),
            lake,
            stream: stream.to_string(),
            client,
            kinesis_stream: kinesis_stream.to_string(),
            shards: shards.into(),
            current: None,
            range,
            fingerprint: fingerprint.to_string(),
            manifests,
            epochs: HashMap::new(),
            stats,
        }
    }

    fn stat(&self, f: impl FnOnce(&mut SourceStats)) {
        let mut s = self.stats.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut s);
    }

    fn failed(&self, e: impl std::fmt::Display) -> SourceError {
        SourceError::Failed {
            source_name: self.name.clone(),
            message: e.to_string(),
            retryable: false,
        }
    }

    /// Starts reading the next shard at `--from`; `None` when no shard is left.
    async fn open_next(&mut self) -> Result<Option<ShardRead>, SourceError> {
        while let Some(log) = self.shards.pop_front() {
            let shard_id = log.rsplit('/').next().unwrap_or(&log).to_string();
            let delivery = Delivery::new(self.lake.clone(), &self.stream, &log, "backfill", None);
            let numbers = delivery
                .record_numbers()
                .await
                .map_err(|e| self.failed(e))?;
            let (tx, rx) = mpsc::channel(4);
            let task = tokio::spawn(read_shard(
                self.client.clone(),
                self.kinesis_stream.clone(),
                shard_id,
                StartPosition::AtTimestamp(self.range.0),
                ReaderOptions::default(),
                tx,
            ));
            let mut read = ShardRead {
                log,
                delivery,
                numbers,
                next: 0,
                rx,
                task,
                buffer: VecDeque::new(),
                continuous: false,
            };
            let Some(first) = read.next_record().await? else {
                continue;
            };
            // The first batch starting at or after the first record still in the stream.
            let position = first.position.to_text();
            read.buffer.push_front(first);
            read.next = first_batch_from(&read.delivery, &read.numbers, &position)
                .await
                .map_err(|e| self.failed(e))?;
            return Ok(Some(read));
        }
        Ok(None)
    }
}

#[async_trait]
impl RecordSource for KinesisSource {
    fn name(&self) -> &str {
        &self.name
    }
    fn tag(&self) -> &str {
        "backfill-kinesis"
    }
    fn batch_time_ms(&self) -> i64 {
        self.range.0
    }
    async fn next_batch(
        &mut self,
        _max_records: usize,
        _max_bytes: usize,
    ) -> Result<Option<SourceBatch>, SourceError> {
        loop {
            if self.current.is_none() {
                self.current = self.open_next().await?;
                if self.current.is_none() {
                    return Ok(None);
                }
            }
            let Some(read) = self.current.as_mut() else {
                continue;
            };
            // The newest batch of a shard is left alone (docs/backfill.md).
            if read.next + 1 >= read.numbers.len() {
                self.current = None;
                continue;
            }
            let n = read.numbers[read.next];
            read.next += 1;
            let record = read
                .delivery
                .read_record(n)
                .await
                .map_err(|e| SourceError::Failed {
                    source_name: format!("commit log of {}", read.log),
                    message: e.to_string(),
                    retryable: e.is_transient(),
                })?;
            let mut records: Vec<ReadRecord> = Vec::new();
            loop {
                let Some(r) = read.next_record().await? else {
                    break;
                };
                let p = r.position.to_text();
                if compare_positions(&p, &record.first) == Ordering::Less {
                    continue;
                }
                if compare_positions(&p, &record.last) == Ordering::Greater {
                    read.buffer.push_front(r);
                    break;
                }
                let last = compare_positions(&p, &record.last) == Ordering::Equal;
                records.push(r);
                if last {
                    break;
                }
            }
            let complete = records
                .first()
                .is_some_and(|r| r.position.to_text() == record.first)
                && records
                    .last()
                    .is_some_and(|r| r.position.to_text() == record.last);
            let arrival = records.first().and_then(|r| r.arrival_ms).unwrap_or(0);
            if complete && arrival >= self.range.1 {
                // Past the range: this shard is done.
                self.current = None;
                continue;
            }
            let log = read.log.clone();
            if !complete || arrival < self.range.0 {
                tracing::warn!(stream = self.stream.as_str(), shard = log.as_str(), first = record.first.as_str(), last = record.last.as_str(), "batch left alone: its records are not all in the stream any more (retention) or it began before the range");
                self.stat(|s| s.outside_range += 1);
                if let Some(r) = self.current.as_mut() {
                    r.continuous = false;
                }
                continue;
            }
            let commits = format!("_commits/{}/", self.stream);
            let Some(batch) = record.files.iter().find_map(|f| {
                f.path
                    .strip_prefix(&commits)
                    .and_then(|n| n.strip_suffix(".json"))
            }) else {
                return Err(self.failed(format!("commit record {n} of {log} names no manifest")));
            };
            let rev = revision(&self.fingerprint, batch);
            let old = self.manifests.get(batch).cloned().unwrap_or_default();
            let revised = revised_manifest(&self.stream, batch, &rev);
            if old.contains(&revised) {
                self.stat(|s| s.done_before += 1);
                if let Some(r) = self.current.as_mut() {
                    r.continuous = false;
                }
                continue;
            }
            let Some(current) = current_manifest(&old) else {
                return Err(self.failed(format!("batch {batch} of {log} has no manifest")));
            };
            let manifest = read_manifest(&self.lake, current)
                .await
                .map_err(|e| self.failed(e))?;
            let continuous = self.current.as_ref().is_some_and(|r| r.continuous);
            if !continuous {
                *self.epochs.entry(log.clone()).or_insert(0) += 1;
            }
            let seed = if continuous {
                Arc::new(Vec::new())
            } else {
                Arc::new(seed_before(&self.lake, &self.stream, &log, &record.first).await)
            };
            if let Some(r) = self.current.as_mut() {
                r.continuous = true;
            }
            let mut raw = RawBatch::default();
            let mut positions = Vec::with_capacity(records.len());
            for r in &records {
                let start = raw.data.len();
                raw.data.extend_from_slice(&r.data);
                raw.ranges.push((start, raw.data.len()));
                raw.arrivals.push(r.arrival_ms);
                positions.push(r.position.to_text());
            }
            let dead_letter_dt = manifest
                .dead_letter_file
                .as_deref()
                .and_then(dead_letter_dt)
                .unwrap_or_else(|| etl_lake::raw::partition_of(arrival).dt);
            self.stat(|s| s.batches_read += 1);
            return Ok(Some(SourceBatch {
                records: raw,
                checkpoint: Box::new(BackfillCheckpoint::new(
                    Target {
                        batch_id: manifest.batch_id.clone(),
                        source_name: manifest.source.clone(),
                        positions: ManifestPositions::Range(PositionRange {
                            shard: log.clone(),
                            first: record.first.clone(),
                            last: record.last.clone(),
                        }),
                        dead_letter_dt,
                        revision: rev,
                        old_manifests: old,
                    },
                    positions,
                    DedupScope {
                        key: Arc::from(log.as_str()),
                        epoch: self.epochs.get(&log).copied().unwrap_or(1),
                        seed,
                        share: 1,
                    },
                )),
            }));
        }
    }
}
