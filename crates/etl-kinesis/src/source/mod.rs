//! [`KinesisSource`]: every shard of one stream as one `RecordSource`, cutting **per-shard**
//! micro-batches, and [`PositionCommitter`], the pipeline's `BatchWriter` that commits each batch
//! with the exactly-once protocol of `docs/delivery.md` (`etl_lake::delivery`).
//!
//! The seam with `etl-pipeline`: every batch holds records of **one shard** and carries a
//! [`KinesisCheckpoint`] (the shard and the `(sequence, sub-sequence)` position of each record,
//! their arrival times and, for the raw archive, their bytes). The committer gets it back with
//! the processed batch, names the batch `<shard>-<first position>-<last position>` (positions as
//! `<sequence>.<sub-sequence>`), and commits data, dead letters, the raw archive file
//! (`LakeTarget::raw_archive`, on by default) and manifest as
//! record `n` of the shard's commit log `_delivery/<table>/<kinesis stream>/<shard>/`. The
//! record holds the shard position, so data and position are committed by one conditional
//! create; a replay of the same range after a crash rolls the record forward instead of adding
//! files. On start, each shard's log is recovered (the highest record rolled forward) and the
//! shard resumes after its last position.

use crate::positions::{LakePositionStore, PositionStore, RecordPosition, ShardPosition};
use crate::reader::{ReadRecord, ShardEvent};
use crate::KinesisError;
use async_trait::async_trait;
use etl_aws::kinesis::Client;
use etl_lake::delivery::{Delivery, Resume};
use etl_pipeline::source::{
    Checkpoint, DedupScope, RawBatch, RecordSource, SourceBatch, SourceError,
};
use std::any::Any;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Where a batch of one shard is: the checkpoint [`PositionCommitter`] commits with the data.
#[derive(Debug)]
pub struct KinesisCheckpoint {
    /// The shard.
    pub shard: Arc<str>,
    /// Position of each record, in batch order.
    pub positions: Vec<RecordPosition>,
    /// Arrival time of each record (epoch ms), in batch order.
    pub arrivals: Vec<Option<i64>>,
    /// The batch's bytes and record ranges, kept for the raw archive (`LakeTarget::raw_archive`).
    raw: Option<RawCopy>,
    /// The stint of reading the shard the batch was read in (a stint ends when the shard
    /// stops being read here: its lease moved or the commit was fenced).
    pub epoch: u64,
    /// With leases: the shard's own dedup window, seeded from its last committed batches.
    scope: Option<DedupScope>,
}

impl Checkpoint for KinesisCheckpoint {
    fn position(&self, i: usize) -> String {
        self.positions
            .get(i)
            .map(RecordPosition::to_text)
            .unwrap_or_default()
    }
    fn range(&self) -> (String, String) {
        (
            format!("{}/{}", self.shard, self.position(0)),
            self.position(self.positions.len().saturating_sub(1)),
        )
    }
    fn into_any(self: Box<Self>) -> Box<dyn Any + Send> {
        self
    }
    fn dedup_scope(&self) -> Option<DedupScope> {
        self.scope.clone()
    }
}

/// A batch's bytes, back to back, and each record's `(start, end)` in them.
type RawCopy = (Vec<u8>, Vec<(usize, usize)>);

/// State shared by the source, the committer and the discovery task.
#[derive(Default)]
struct State {
    /// Per shard: batches handed on and not committed yet.
    in_flight: HashMap<String, u64>,
    /// Commits made by this run (for the test fail point).
    commits: u64,
    /// Committed positions by shard (from the commit logs) and finished marks.
    committed: HashMap<String, ShardPosition>,
    /// Where each shard's commit log continues.
    resume: HashMap<String, Resume>,
    /// Shards with a running reader.
    reading: HashSet<String>,
    /// Shards whose reader is at the tip.
    caught_up: HashSet<String>,
    /// Shards read to their end whose records are not all handed on yet.
    finished_unmarked: HashSet<String>,
    /// Shards read to their end, all records handed on: their end is committed once their
    /// batches in flight are.
    finish_ready: HashSet<String>,
    /// The last discovery pass started nothing and no end was committed since.
    settled: bool,
    /// `MillisBehindLatest` by shard.
    lag: HashMap<String, i64>,
    tasks: Vec<JoinHandle<()>>,
    /// The current stint of each shard being read: events and batches of other stints are
    /// dropped.
    epochs: HashMap<String, u64>,
    /// The reader tasks of each shard (stopped when the shard stops being read here).
    shard_tasks: HashMap<String, Vec<JoinHandle<()>>>,
    /// With leases: the shards that may be read now (discovery), which leases are held for.
    readable: Vec<crate::shards::ShardInfo>,
    /// With leases: each shard's dedup seed (event ids of its last committed batches).
    seeds: HashMap<String, Arc<Vec<String>>>,
}

struct Shared {
    stream: String,
    client: Client,
    store: Arc<dyn PositionStore>,
    target: LakeTarget,
    options: SourceOptions,
    tx: mpsc::Sender<(u64, ShardEvent)>,
    state: Mutex<State>,
    /// The source's stop request (the committer stops retrying when it is set).
    stop: StopHandle,
    /// Source of stint numbers.
    epoch: std::sync::atomic::AtomicU64,
    /// With leases: what this process holds.
    leases: Option<leasing::LeaseRuntime>,
}

mod committer;
mod discovery;
mod leasing;
mod options;
pub use committer::{writer_name, LakeTarget};
pub use leasing::LeaseCounts;
pub use options::{
    SourceOptions, StopHandle, DEFAULT_COMMIT_RETRY_INITIAL, DEFAULT_COMMIT_RETRY_MAX,
};

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The writer of `shard`'s commit log `_delivery/<table>/<kinesis stream>/<shard>/`.
    fn delivery(&self, shard: &str) -> Delivery {
        Delivery::new(
            self.target.lake.clone(),
            &self.target.table,
            &format!("{}/{shard}", self.stream),
            &self.target.writer,
            self.target.catalog.clone(),
        )
    }

    /// A new stint number.
    fn next_epoch(&self) -> u64 {
        self.epoch.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// Stops reading `shard` here: its reader ends, its records waiting or still in the
    /// channel are dropped, and its batches in flight are not committed (with leases; they are
    /// read again by the shard's next owner).
    fn stop_shard(&self, shard: &str) {
        let mut state = self.lock();
        state.epochs.remove(shard);
        state.reading.remove(shard);
        state.caught_up.remove(shard);
        state.finished_unmarked.remove(shard);
        state.finish_ready.remove(shard);
        state.seeds.remove(shard);
        for task in state.shard_tasks.remove(shard).unwrap_or_default() {
            task.abort();
        }
    }
}

/// Records read from one shard and not yet handed on.
#[derive(Default)]
struct Queue {
    /// The stint the records were read in.
    epoch: u64,
    records: VecDeque<ReadRecord>,
    bytes: usize,
    /// When the oldest record waiting arrived (the batch deadline counts from it).
    since: Option<Instant>,
}

/// Every shard of one Kinesis stream as one record source (see the module doc).
pub struct KinesisSource {
    shared: Arc<Shared>,
    rx: mpsc::Receiver<(u64, ShardEvent)>,
    queues: HashMap<Arc<str>, Queue>,
    name: String,
    tag: String,
    started_ms: i64,
    stop: StopHandle,
}

/// Commits each batch to the lake with its shard position (the pipeline's `BatchWriter`: pass
/// it to `Pipeline::ingest_with_writer`). Also reports lag and committed positions.
#[derive(Clone)]
pub struct PositionCommitter {
    shared: Arc<Shared>,
}

/// Opens Kinesis stream `stream` for delivery to `target`: lists its shards (a missing stream is
/// [`KinesisError::StreamNotFound`]), loads the shard-end marks, recovers each readable shard's
/// commit log and starts one reader per readable shard.
pub async fn open_source(
    client: Client,
    stream: &str,
    target: LakeTarget,
    options: SourceOptions,
) -> Result<(KinesisSource, PositionCommitter, StopHandle), KinesisError> {
    if options.batch_max_ms == 0 {
        return Err(KinesisError::Option(
            "batch_max_ms must be at least 1".into(),
        ));
    }
    if let Some(leasing) = &options.leases {
        leasing
            .options
            .validate()
            .map_err(|e| KinesisError::Option(e.to_string()))?;
    }
    let store: Arc<dyn PositionStore> = Arc::new(LakePositionStore::new(target.lake.clone()));
    let committed = store.load(stream).await?;
    let (tx, rx) = mpsc::channel(16);
    let state = State {
        committed,
        ..Default::default()
    };
    let leases = options.leases.clone().map(leasing::LeaseRuntime::new);
    let shared = Arc::new(Shared {
        stream: stream.to_string(),
        client,
        store,
        target,
        options,
        tx,
        state: Mutex::new(state),
        stop: StopHandle::default(),
        epoch: Default::default(),
        leases,
    });
    shared.discover(true).await?;
    let background = {
        let shared = Arc::downgrade(&shared);
        let (interval, every) = {
            let s = shared.upgrade();
            let d = s
                .as_ref()
                .map_or(Duration::from_secs(10), |s| s.options.discovery_interval);
            (d, Duration::from_millis(200))
        };
        tokio::spawn(async move {
            let mut last_discovery = Instant::now();
            let mut last_metrics_log = Instant::now();
            loop {
                tokio::time::sleep(every).await;
                let Some(shared) = shared.upgrade() else {
                    return;
                };
                // Lag and reader counters in the log once a minute (issue 3; names in docs/kinesis.md).
                if last_metrics_log.elapsed() >= Duration::from_secs(60) {
                    last_metrics_log = Instant::now();
                    let committed = shared.lock().committed.clone();
                    shared
                        .options
                        .reader
                        .metrics
                        .log(&shared.stream, &committed, chrono_now_ms());
                }
                if let Err(e) = shared.commit_ends().await {
                    tracing::error!(error = %e, "committing shard ends failed; retrying on the next tick");
                }
                let unsettled = !shared.lock().settled;
                if unsettled || last_discovery.elapsed() >= interval {
                    last_discovery = Instant::now();
                    if let Err(e) = shared.discover(false).await {
                        tracing::error!(error = %e, "shard discovery failed; retrying on the next tick");
                    }
                }
            }
        })
    };
    shared.lock().tasks.push(background);
    if shared.leases.is_some() {
        // Not aborted with the source: the committer still commits (and so needs its leases
        // renewed) after the source ended; the loop ends with `release_all` or with `Shared`.
        tokio::spawn(leasing::run(Arc::downgrade(&shared)));
    }
    let started_ms = chrono_now_ms();
    let source = KinesisSource {
        shared: shared.clone(),
        rx,
        queues: HashMap::new(),
        name: format!("kinesis:{stream}"),
        tag: format!("{stream}-{started_ms}"),
        started_ms,
        stop: shared.stop.clone(),
    };
    let stop = source.stop.clone();
    Ok((source, PositionCommitter { shared }, stop))
}

fn chrono_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl KinesisSource {
    fn handle(&mut self, (epoch, event): (u64, ShardEvent)) -> Result<(), SourceError> {
        let mut state = self.shared.lock();
        let shard = match &event {
            ShardEvent::Records { shard_id, .. }
            | ShardEvent::CaughtUp { shard_id }
            | ShardEvent::Finished { shard_id }
            | ShardEvent::Failed { shard_id, .. } => shard_id,
        };
        if state.epochs.get(shard) != Some(&epoch) {
            // A reader of a stint that ended (the shard stopped being read here).
            return Ok(());
        }
        match event {
            ShardEvent::Records {
                shard_id,
                records,
                millis_behind,
            } => {
                if let Some(ms) = millis_behind {
                    state.lag.insert(shard_id.clone(), ms);
                }
                state.caught_up.remove(&shard_id);
                let queue = self.queues.entry(shard_id.into()).or_default();
                if queue.epoch != epoch {
                    *queue = Queue {
                        epoch,
                        ..Queue::default()
                    };
                }
                queue.bytes += records.iter().map(|r| r.data.len()).sum::<usize>();
                if !records.is_empty() {
                    queue.since.get_or_insert_with(Instant::now);
                }
                queue.records.extend(records);
            }
            ShardEvent::CaughtUp { shard_id } => {
                state.lag.insert(shard_id.clone(), 0);
                state.caught_up.insert(shard_id);
            }
            ShardEvent::Finished { shard_id } => {
                state.reading.remove(&shard_id);
                state.caught_up.remove(&shard_id);
                state.finished_unmarked.insert(shard_id);
            }
            ShardEvent::Failed { shard_id, error } => {
                return Err(SourceError::Failed {
                    source_name: self.name.clone(),
                    message: format!("shard {shard_id}: {error}"),
                    retryable: false,
                });
            }
        }
        Ok(())
    }

    /// Moves shards whose records are all handed on from `finished_unmarked` to `finish_ready`.
    fn settle_finished(&self, state: &mut State) {
        let done: Vec<String> = state
            .finished_unmarked
            .iter()
            .filter(|s| {
                self.queues
                    .get(s.as_str())
                    .is_none_or(|q| q.records.is_empty())
            })
            .cloned()
            .collect();
        for shard in done {
            state.finished_unmarked.remove(&shard);
            state.finish_ready.insert(shard);
        }
    }

    /// Drops the records of shards no longer read in the stint they were read in.
    fn purge(&mut self) {
        let state = self.shared.lock();
        for (shard, queue) in self.queues.iter_mut() {
            if !queue.records.is_empty() && state.epochs.get(&**shard) != Some(&queue.epoch) {
                *queue = Queue::default();
            }
        }
    }

    fn pending(&self) -> bool {
        self.queues.values().any(|q| !q.records.is_empty())
    }

    fn drained(&self) -> bool {
        let state = self.shared.lock();
        !self.pending()
            && state.settled
            && state.finished_unmarked.is_empty()
            && state.finish_ready.is_empty()
            && state.reading.iter().all(|s| state.caught_up.contains(s))
    }

    /// The shard to cut a batch from now: one with a full batch waiting, or whose oldest record
    /// waited `batch_max_ms`, or any when stopping; the longest-waiting first.
    fn due(&self, max_records: usize, max_bytes: usize, stopping: bool) -> Option<Arc<str>> {
        let now = Instant::now();
        let max_wait = Duration::from_millis(self.shared.options.batch_max_ms);
        self.queues
            .iter()
            .filter(|(_, q)| !q.records.is_empty())
            .filter(|(_, q)| {
                stopping
                    || q.records.len() >= max_records
                    || q.bytes >= max_bytes
                    || q.since.is_some_and(|t| now >= t + max_wait)
            })
            .min_by_key(|(_, q)| q.since)
            .map(|(s, _)| s.clone())
    }

    /// Cuts one batch of `shard`'s records, with its checkpoint.
    fn cut(&mut self, shard: Arc<str>, max_records: usize, max_bytes: usize) -> SourceBatch {
        let mut batch = RawBatch::default();
        let mut positions = Vec::new();
        let mut arrivals = Vec::new();
        if let Some(queue) = self.queues.get_mut(&shard) {
            while batch.len() < max_records && (batch.is_empty() || batch.data.len() < max_bytes) {
                let Some(record) = queue.records.pop_front() else {
                    break;
                };
                queue.bytes = queue.bytes.saturating_sub(record.data.len());
                let start = batch.data.len();
                batch.data.extend_from_slice(&record.data);
                batch.ranges.push((start, batch.data.len()));
                positions.push(record.position);
                arrivals.push(record.arrival_ms);
                batch.arrivals.push(record.arrival_ms);
            }
            queue.since = if queue.records.is_empty() {
                None
            } else {
                Some(Instant::now())
            };
        }
        let raw = self
            .shared
            .target
            .raw_archive
            .then(|| (batch.data.clone(), batch.ranges.clone()));
        let epoch = self.queues.get(&shard).map_or(0, |q| q.epoch);
        let mut state = self.shared.lock();
        let scope = self.shared.leases.as_ref().map(|_| DedupScope {
            key: shard.clone(),
            epoch,
            seed: state.seeds.get(&*shard).cloned().unwrap_or_default(),
            share: state.readable.len().max(1),
        });
        if !batch.is_empty() {
            *state.in_flight.entry(shard.to_string()).or_default() += 1;
        }
        self.settle_finished(&mut state);
        SourceBatch {
            records: batch,
            checkpoint: Box::new(KinesisCheckpoint {
                shard,
                positions,
                arrivals,
                raw,
                epoch,
                scope,
            }),
        }
    }
}

#[async_trait]
impl RecordSource for KinesisSource {
    fn name(&self) -> &str {
        &self.name
    }
    fn tag(&self) -> &str {
        &self.tag
    }
    fn batch_time_ms(&self) -> i64 {
        self.started_ms
    }
    async fn next_batch(
        &mut self,
        max_records: usize,
        max_bytes: usize,
    ) -> Result<Option<SourceBatch>, SourceError> {
        loop {
            self.purge();
            let stopping = self.stop.is_stopped()
                || (self.shared.options.stop_when_caught_up && self.drained());
            if let Some(shard) = self.due(max_records, max_bytes, stopping) {
                let batch = self.cut(shard, max_records, max_bytes);
                if !batch.records.is_empty() {
                    return Ok(Some(batch));
                }
            }
            if stopping && !self.pending() {
                return Ok(None);
            }
            {
                let mut state = self.shared.lock();
                self.settle_finished(&mut state);
            }
            let now = Instant::now();
            let max_wait = Duration::from_millis(self.shared.options.batch_max_ms);
            let wait = self
                .queues
                .values()
                .filter_map(|q| q.since)
                .map(|t| (t + max_wait).saturating_duration_since(now))
                .min()
                .unwrap_or(Duration::from_millis(100))
                .min(Duration::from_millis(100));
            match tokio::time::timeout(wait, self.rx.recv()).await {
                Ok(Some(event)) => self.handle(event)?,
                Ok(None) => {
                    return Err(SourceError::Failed {
                        source_name: self.name.clone(),
                        message: "every shard reader is gone".into(),
                        retryable: false,
                    })
                }
                Err(_) => {}
            }
        }
    }
}

impl Drop for KinesisSource {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        for task in state.tasks.drain(..) {
            task.abort();
        }
        for (_, tasks) in state.shard_tasks.drain() {
            for task in tasks {
                task.abort();
            }
        }
    }
}
