//! [`KinesisSource`]: every shard of one stream as one `RecordSource`, and [`PositionCommitter`],
//! the pipeline hook that commits shard positions after each batch is in the lake.
//!
//! The seam with `etl-pipeline`: a batch's `positions` are **ordinals** (1, 2, 3, … in the order
//! records enter batches during this run), so batch ids stay `<tag>-<first>-<last>` with a tag
//! unique to the run (`<stream>-<start ms>`; a later run never overwrites an earlier run's
//! objects). A side table (the ledger) maps the last ordinal of each batch to the shard positions
//! `(shard, sequence, sub-sequence)` it reaches; the committer looks the batch up by its commit
//! record's `last_position` and writes those positions to the [`PositionStore`].

use crate::positions::{PositionStore, RecordPosition, ShardPosition};
use crate::reader::{read_shard, ReadRecord, ReaderOptions, ShardEvent, StartPosition};
use crate::shards::{list_shards, readable_shards};
use crate::KinesisError;
use async_trait::async_trait;
use etl_aws::kinesis::Client;
use etl_lake::BatchCommit;
use etl_pipeline::source::{RawBatch, RecordSource};
use etl_pipeline::CommitSink;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// How the source reads and cuts batches.
#[derive(Debug, Clone)]
pub struct SourceOptions {
    /// Start of a shard that has no committed position.
    pub start: StartPosition,
    /// `GetRecords` pacing.
    pub reader: ReaderOptions,
    /// A non-empty batch is handed on at the latest this long after its first record.
    pub batch_max_ms: u64,
    /// End the source once every shard is at its tip and everything read was handed on
    /// (for tests and catch-up runs); otherwise run until [`StopHandle::stop`].
    pub stop_when_caught_up: bool,
    /// How often shards are listed again (new shards after resharding).
    pub discovery_interval: Duration,
}

impl Default for SourceOptions {
    fn default() -> Self {
        SourceOptions {
            start: StartPosition::TrimHorizon,
            reader: ReaderOptions::default(),
            batch_max_ms: 1_000,
            stop_when_caught_up: false,
            discovery_interval: Duration::from_secs(10),
        }
    }
}

/// Asks a running source to end: it hands on what it has batched and then ends; records read but
/// not handed on are read again by the next run (their positions were not committed).
#[derive(Debug, Clone, Default)]
pub struct StopHandle(Arc<AtomicBool>);

impl StopHandle {
    /// Requests the stop.
    pub fn stop(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
    /// Whether a stop was requested.
    pub fn is_stopped(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// State shared by the source, the committer and the discovery task.
#[derive(Default)]
struct State {
    /// Batch last ordinal → shard positions that batch reaches.
    ledger: BTreeMap<u64, Vec<ShardPosition>>,
    /// Last ordinal whose batch is committed.
    committed_ordinal: u64,
    /// Committed positions by shard.
    committed: HashMap<String, ShardPosition>,
    /// Per shard: ordinal and position of its last record handed on in a batch.
    last_cut: HashMap<String, (u64, RecordPosition)>,
    /// Shards with a running reader.
    reading: HashSet<String>,
    /// Shards whose reader is at the tip.
    caught_up: HashSet<String>,
    /// Shards read to their end whose records are not all handed on yet.
    finished_unmarked: HashSet<String>,
    /// Shards read to their end, all records handed on: shard → ordinal that must be committed
    /// before the end is.
    finish_ready: HashMap<String, u64>,
    /// The last discovery pass started nothing and no end was committed since.
    settled: bool,
    /// `MillisBehindLatest` by shard.
    lag: HashMap<String, i64>,
    tasks: Vec<JoinHandle<()>>,
}

struct Shared {
    stream: String,
    client: Client,
    store: Arc<dyn PositionStore>,
    options: SourceOptions,
    tx: mpsc::Sender<ShardEvent>,
    state: Mutex<State>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Lists shards and starts a reader for every shard that may be read now.
    async fn discover(self: &Arc<Self>, initial: bool) -> Result<(), KinesisError> {
        let shards = list_shards(&self.client, &self.stream).await?;
        let mut state = self.lock();
        let finished: HashSet<String> = state
            .committed
            .values()
            .filter(|p| p.finished)
            .map(|p| p.shard_id.clone())
            .collect();
        let ready: Vec<_> = readable_shards(&shards, &finished, &state.reading)
            .into_iter()
            .cloned()
            .collect();
        for shard in &ready {
            let start = match state
                .committed
                .get(&shard.shard_id)
                .and_then(|p| p.last.clone())
            {
                Some(p) => StartPosition::After(p),
                // A child of shards read in this run starts at its beginning.
                None if !initial && !shard.parents.is_empty() => StartPosition::TrimHorizon,
                None => self.options.start.clone(),
            };
            tracing::info!(
                stream = self.stream,
                shard = shard.shard_id,
                ?start,
                "reading shard"
            );
            state.reading.insert(shard.shard_id.clone());
            let task = tokio::spawn(read_shard(
                self.client.clone(),
                self.stream.clone(),
                shard.shard_id.clone(),
                start,
                self.options.reader.clone(),
                self.tx.clone(),
            ));
            state.tasks.push(task);
        }
        state.settled = ready.is_empty();
        Ok(())
    }

    /// Commits the end of every shard whose last batch is committed.
    async fn commit_ends(&self) -> Result<(), KinesisError> {
        let ends: Vec<ShardPosition> = {
            let state = self.lock();
            state
                .finish_ready
                .iter()
                .filter(|(_, ordinal)| **ordinal <= state.committed_ordinal)
                .map(|(shard, _)| ShardPosition {
                    shard_id: shard.clone(),
                    last: state.committed.get(shard).and_then(|p| p.last.clone()),
                    finished: true,
                })
                .collect()
        };
        if ends.is_empty() {
            return Ok(());
        }
        self.store.commit(&self.stream, &ends).await?;
        let mut state = self.lock();
        for end in ends {
            tracing::info!(
                stream = self.stream,
                shard = end.shard_id,
                "shard end committed"
            );
            state.finish_ready.remove(&end.shard_id);
            state.settled = false;
            state.committed.insert(end.shard_id.clone(), end);
        }
        Ok(())
    }
}

/// Every shard of one Kinesis stream as one record source (see the module doc).
pub struct KinesisSource {
    shared: Arc<Shared>,
    rx: mpsc::Receiver<ShardEvent>,
    runtime: tokio::runtime::Handle,
    pending: VecDeque<(Arc<str>, ReadRecord)>,
    pending_by_shard: HashMap<Arc<str>, usize>,
    next_ordinal: u64,
    name: String,
    tag: String,
    started_ms: i64,
    stop: StopHandle,
}

/// Commits shard positions after each batch is in the lake: pass it to
/// `Pipeline::ingest_with_hook`. Also reports lag.
#[derive(Clone)]
pub struct PositionCommitter {
    shared: Arc<Shared>,
}

/// Opens `stream`: lists its shards (a missing stream is [`KinesisError::StreamNotFound`]),
/// loads committed positions from `store`, and starts one reader per readable shard.
pub async fn open_source(
    client: Client,
    stream: &str,
    store: Arc<dyn PositionStore>,
    options: SourceOptions,
) -> Result<(KinesisSource, PositionCommitter, StopHandle), KinesisError> {
    if options.batch_max_ms == 0 {
        return Err(KinesisError::Option(
            "batch_max_ms must be at least 1".into(),
        ));
    }
    let committed = store.load(stream).await?;
    let (tx, rx) = mpsc::channel(16);
    let state = State {
        committed,
        ..Default::default()
    };
    let shared = Arc::new(Shared {
        stream: stream.to_string(),
        client,
        store,
        options,
        tx,
        state: Mutex::new(state),
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
            loop {
                tokio::time::sleep(every).await;
                let Some(shared) = shared.upgrade() else {
                    return;
                };
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
    let started_ms = chrono_now_ms();
    let source = KinesisSource {
        shared: shared.clone(),
        rx,
        runtime: tokio::runtime::Handle::current(),
        pending: VecDeque::new(),
        pending_by_shard: HashMap::new(),
        next_ordinal: 1,
        name: format!("kinesis:{stream}"),
        tag: format!("{stream}-{started_ms}"),
        started_ms,
        stop: StopHandle::default(),
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
    fn handle(&mut self, event: ShardEvent) -> std::io::Result<()> {
        let mut state = self.shared.lock();
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
                let shard: Arc<str> = shard_id.into();
                *self.pending_by_shard.entry(shard.clone()).or_default() += records.len();
                self.pending
                    .extend(records.into_iter().map(|r| (shard.clone(), r)));
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
                return Err(std::io::Error::other(format!("shard {shard_id}: {error}")));
            }
        }
        Ok(())
    }

    /// Moves shards whose records are all handed on from `finished_unmarked` to `finish_ready`.
    fn settle_finished(&self, state: &mut State) {
        let done: Vec<String> = state
            .finished_unmarked
            .iter()
            .filter(|s| self.pending_by_shard.get(s.as_str()).copied().unwrap_or(0) == 0)
            .cloned()
            .collect();
        for shard in done {
            state.finished_unmarked.remove(&shard);
            let ordinal = state.last_cut.get(&shard).map_or(0, |(o, _)| *o);
            state.finish_ready.insert(shard, ordinal);
        }
    }

    fn drained(&self) -> bool {
        let state = self.shared.lock();
        self.pending.is_empty()
            && state.settled
            && state.finished_unmarked.is_empty()
            && state.finish_ready.is_empty()
            && state.reading.iter().all(|s| state.caught_up.contains(s))
    }

    fn cut(&mut self, batch: &mut RawBatch, shards: Vec<(Arc<str>, u64, RecordPosition)>) {
        let mut state = self.shared.lock();
        let mut reached: HashMap<Arc<str>, RecordPosition> = HashMap::new();
        for (shard, ordinal, position) in shards {
            state
                .last_cut
                .insert(shard.to_string(), (ordinal, position.clone()));
            reached.insert(shard, position);
        }
        let positions = reached
            .into_iter()
            .map(|(s, p)| ShardPosition {
                shard_id: s.to_string(),
                last: Some(p),
                finished: false,
            })
            .collect();
        if let Some(&last) = batch.positions.last() {
            state.ledger.insert(last, positions);
        }
        self.settle_finished(&mut state);
    }
}

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
    fn next_batch(
        &mut self,
        max_records: usize,
        max_bytes: usize,
    ) -> std::io::Result<Option<RawBatch>> {
        let mut batch = RawBatch::default();
        let mut shards: Vec<(Arc<str>, u64, RecordPosition)> = Vec::new();
        let mut deadline: Option<Instant> = None;
        loop {
            while batch.len() < max_records && (batch.is_empty() || batch.data.len() < max_bytes) {
                let Some((shard, record)) = self.pending.pop_front() else {
                    break;
                };
                if let Some(n) = self.pending_by_shard.get_mut(&shard) {
                    *n = n.saturating_sub(1);
                }
                let start = batch.data.len();
                batch.data.extend_from_slice(&record.data);
                batch.ranges.push((start, batch.data.len()));
                batch.positions.push(self.next_ordinal);
                shards.push((shard, self.next_ordinal, record.position));
                self.next_ordinal += 1;
                deadline.get_or_insert_with(|| {
                    Instant::now() + Duration::from_millis(self.shared.options.batch_max_ms)
                });
            }
            let full = batch.len() >= max_records || batch.data.len() >= max_bytes;
            let due = deadline.is_some_and(|d| Instant::now() >= d);
            let stopping = self.stop.is_stopped()
                || (self.shared.options.stop_when_caught_up && self.drained());
            if !batch.is_empty() && (full || due || stopping) {
                self.cut(&mut batch, shards);
                return Ok(Some(batch));
            }
            if batch.is_empty() && stopping {
                return Ok(None);
            }
            {
                let mut state = self.shared.lock();
                self.settle_finished(&mut state);
            }
            let wait = deadline.map_or(Duration::from_millis(100), |d| {
                d.saturating_duration_since(Instant::now())
                    .min(Duration::from_millis(100))
            });
            let received = self
                .runtime
                .block_on(async { tokio::time::timeout(wait, self.rx.recv()).await });
            match received {
                Ok(Some(event)) => self.handle(event)?,
                Ok(None) => return Err(std::io::Error::other("every shard reader is gone")),
                Err(_) => {}
            }
        }
    }
}

impl Drop for KinesisSource {
    fn drop(&mut self) {
        for task in self.shared.lock().tasks.drain(..) {
            task.abort();
        }
    }
}

impl PositionCommitter {
    /// `MillisBehindLatest` of each shard, as last reported.
    pub fn lag(&self) -> HashMap<String, i64> {
        self.shared.lock().lag.clone()
    }

    /// Committed positions by shard.
    pub fn committed(&self) -> HashMap<String, ShardPosition> {
        self.shared.lock().committed.clone()
    }

    /// Commits the ends of shards read to their end whose records are all committed. Call after
    /// the pipeline run returned (the background task does it while the run goes on).
    pub async fn flush(&self) -> Result<(), KinesisError> {
        self.shared.commit_ends().await
    }
}

#[async_trait]
impl CommitSink for PositionCommitter {
    async fn committed(&self, commit: &BatchCommit) -> Result<(), String> {
        let positions: Vec<ShardPosition> = {
            let mut state = self.shared.lock();
            let later = state.ledger.split_off(&(commit.last_position + 1));
            let done = std::mem::replace(&mut state.ledger, later);
            let mut merged: HashMap<String, ShardPosition> = HashMap::new();
            for p in done.into_values().flatten() {
                merged.insert(p.shard_id.clone(), p);
            }
            merged.into_values().collect()
        };
        self.shared
            .store
            .commit(&self.shared.stream, &positions)
            .await
            .map_err(|e| e.to_string())?;
        let mut state = self.shared.lock();
        state.committed_ordinal = state.committed_ordinal.max(commit.last_position);
        for p in positions {
            tracing::debug!(stream = self.shared.stream, shard = p.shard_id, position = ?p.last, "position committed");
            state.committed.insert(p.shard_id.clone(), p);
        }
        Ok(())
    }
}
