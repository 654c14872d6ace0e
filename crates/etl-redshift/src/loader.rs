//! The continuous loader: every committed lake batch (`_commits/<stream>/<batch>.json`, written
//! by `etl-lake` after the batch's data files) that is not yet in the load ledger is loaded with
//! [`LoadTarget::load_batch`] (any warehouse backend), in batch-id order, several pending batches
//! of a table per transaction within [`GroupLimits`] (Redshift commits are serialised
//! cluster-wide: fewer, larger transactions load more rows per second).
//!
//! The loader reads the lake; it never sits in the ingestion path, so a slow or unavailable
//! warehouse delays loads but never blocks ingestion. Failures are told apart by their
//! [`FailureKind`]:
//! - **transient** (warehouse or lake unavailable, throttled, paused, timed out): it waits with
//!   exponential backoff and retries **the same batch**; it never moves past a batch that did
//!   not load (unlike Firehose, which skips after its retry window);
//! - **data** (the batch's data violates the table): retrying cannot help, so that table stops
//!   at that batch: the error is logged, recorded in the warehouse (`etl warehouse status`
//!   shows it) and counted in [`LoadSummary::stopped`]; the other tables keep loading. With
//!   `follow` the stopped batch is tried again every [`LoaderSettings::stopped_retry`] (so a
//!   fixed table resumes by itself); a new `etl warehouse load` tries it at once. A successful
//!   load clears the record. The batch is never skipped;
//! - **configuration**: returned at once.

use crate::error::RedshiftError;
use etl_lake::{BatchCommit, Lake};
use etl_warehouse::{FailureKind, LoadFailure, LoadFile, LoadOutcome, LoadRequest, LoadTarget};
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Default pause between two passes of [`Loader::follow`].
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(2);

/// Commit records read at once.
const READ_AHEAD: usize = 32;

/// Default wait before [`Loader::follow`] tries a stopped table's batch again.
pub const DEFAULT_STOPPED_RETRY: Duration = Duration::from_secs(300);

/// How often the loader looks for new batches and how it retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoaderSettings {
    /// Pause between passes in [`Loader::follow`] (default [`DEFAULT_INTERVAL`], 2 s: a pass
    /// that finds nothing costs one LIST per table).
    pub interval: Duration,
    /// First wait after a failure; doubles up to `retry_max`.
    pub retry_initial: Duration,
    /// Longest wait between retries.
    pub retry_max: Duration,
    /// Give up (and return the error) after this many attempts of one step; `None` retries
    /// forever (what `--follow` does).
    pub max_attempts: Option<u32>,
    /// With `follow`, how long a table stopped by a data failure waits before its batch is
    /// tried again (default [`DEFAULT_STOPPED_RETRY`]).
    pub stopped_retry: Duration,
    /// How many pending batches of a table one transaction loads together.
    pub group: GroupLimits,
}

/// Default of [`GroupLimits::max_batches`].
pub const DEFAULT_GROUP_MAX_BATCHES: usize = 50;
/// Default of [`GroupLimits::max_rows`].
pub const DEFAULT_GROUP_MAX_ROWS: u64 = 5_000_000;
/// Default of [`GroupLimits::max_bytes`] (1 GiB of Parquet).
pub const DEFAULT_GROUP_MAX_BYTES: u64 = 1 << 30;

/// Bounds of a grouped load: the pending batches of a table are loaded in batch-id order, as
/// many per transaction (one manifest, one COPY, one MERGE, every batch's ledger row) as these
/// allow; a group always holds at least one batch. No batch waits for a group to fill: a pass
/// loads whatever is pending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupLimits {
    /// Most batches in one transaction (1 = one transaction per batch).
    pub max_batches: usize,
    /// Most rows (sum over the batches' files).
    pub max_rows: u64,
    /// Most Parquet bytes.
    pub max_bytes: u64,
}

impl Default for GroupLimits {
    fn default() -> Self {
        GroupLimits {
            max_batches: DEFAULT_GROUP_MAX_BATCHES,
            max_rows: DEFAULT_GROUP_MAX_ROWS,
            max_bytes: DEFAULT_GROUP_MAX_BYTES,
        }
    }
}

impl GroupLimits {
    /// Whether a group of `batches` batches, `rows` rows and `bytes` bytes may take one more
    /// batch of `more_rows` rows and `more_bytes` bytes.
    fn fits(&self, batches: usize, rows: u64, bytes: u64, more_rows: u64, more_bytes: u64) -> bool {
        batches == 0
            || (batches < self.max_batches.max(1)
                && rows.saturating_add(more_rows) <= self.max_rows
                && bytes.saturating_add(more_bytes) <= self.max_bytes)
    }
}

impl Default for LoaderSettings {
    fn default() -> Self {
        LoaderSettings {
            interval: DEFAULT_INTERVAL,
            retry_initial: Duration::from_secs(1),
            retry_max: Duration::from_secs(30),
            max_attempts: None,
            stopped_retry: DEFAULT_STOPPED_RETRY,
            group: GroupLimits::default(),
        }
    }
}

/// What a pass (or a whole follow run) did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoadSummary {
    /// Batches copied and merged.
    pub loaded: u64,
    /// Batches the ledger already had.
    pub already_loaded: u64,
    /// Committed batches without data files (every record dead-lettered): nothing to load.
    pub empty: u64,
    /// Rows in the loaded batches' files.
    pub rows: u64,
    /// Failed attempts that were retried.
    pub retries: u64,
    /// Load attempts that failed for a data reason (each stops its table at that batch; see
    /// [`Loader::stopped_tables`]).
    pub stopped: u64,
}

impl std::ops::AddAssign for LoadSummary {
    fn add_assign(&mut self, other: LoadSummary) {
        self.loaded += other.loaded;
        self.already_loaded += other.already_loaded;
        self.empty += other.empty;
        self.rows += other.rows;
        self.retries += other.retries;
        self.stopped += other.stopped;
    }
}

/// Loads the committed batches of a lake into the warehouse.
pub struct Loader {
    warehouse: Arc<dyn LoadTarget>,
    lake: Lake,
    lake_url: String,
    streams: Vec<String>,
    settings: LoaderSettings,
    /// Commit records known to be loaded (or empty): not read again.
    done: BTreeSet<String>,
    /// Tables stopped by a data failure, with when it happened.
    stopped: BTreeMap<String, (LoadFailure, Instant)>,
    /// Tables whose failure record this loader cleared (or found nothing to clear).
    cleared: BTreeSet<String>,
    /// Starts the next pass of [`Loader::follow`] at once (see [`Loader::waker`]).
    wake: Arc<tokio::sync::Notify>,
    /// Whether [`LoadTarget::prepare`] ran (once, before the first pass).
    prepared: bool,
    /// The current schema version of each table (see [`Loader::with_schema_versions`]).
    versions: BTreeMap<String, u32>,
}

/// What one pass changes in the loader's memory.
#[derive(Default)]
struct PassState {
    newly_done: Vec<String>,
    stopped: Vec<LoadFailure>,
    resumed: Vec<String>,
}

impl std::fmt::Debug for Loader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loader")
            .field("lake_url", &self.lake_url)
            .field("streams", &self.streams)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// Errors that waiting cannot fix: configuration, identifiers, and a batch's data.
fn is_permanent(err: &RedshiftError) -> bool {
    err.kind() != FailureKind::Transient
}

impl Loader {
    /// A loader of `streams` from `lake`, whose root is `lake_url` (`s3://bucket/prefix`: the
    /// COPY manifests name the files under it).
    pub fn new(
        warehouse: Arc<dyn LoadTarget>,
        lake: Lake,
        lake_url: &str,
        streams: Vec<String>,
        settings: LoaderSettings,
    ) -> Result<Self, RedshiftError> {
        crate::ident::s3_url(&format!("{}/x", lake_url.trim_end_matches('/')))?;
        if streams.is_empty() {
            return Err(RedshiftError::Config(
                "the loader needs at least one stream".into(),
            ));
        }
        crate::metrics::register_tables(&streams);
        Ok(Loader {
            warehouse,
            lake,
            lake_url: lake_url.trim_end_matches('/').to_string(),
            streams,
            settings,
            done: BTreeSet::new(),
            stopped: BTreeMap::new(),
            cleared: BTreeSet::new(),
            wake: Arc::new(tokio::sync::Notify::new()),
            prepared: false,
            versions: BTreeMap::new(),
        })
    }

    /// The current schema version of each table: a batch whose manifest records that version
    /// has the table's columns, so its Parquet footer is not read (without it, every pending
    /// batch's footer is read to learn its columns).
    pub fn with_schema_versions(
        mut self,
        versions: impl IntoIterator<Item = (String, u32)>,
    ) -> Self {
        self.versions = versions.into_iter().collect();
        self
    }

    /// A handle that starts [`Loader::follow`]'s next pass at once instead of after the
    /// interval: a writer in the same process notifies it after each commit, so a batch is
    /// loaded as soon as it is committed (a notification during a pass starts another pass
    /// right after it).
    pub fn waker(&self) -> Arc<tokio::sync::Notify> {
        self.wake.clone()
    }

    /// Tables this loader stopped because a batch's data cannot load (see the module doc).
    pub fn stopped_tables(&self) -> Vec<LoadFailure> {
        self.stopped.values().map(|(f, _)| f.clone()).collect()
    }

    /// Runs [`LoadTarget::prepare`] once (adds the columns the schemas gained), retrying while
    /// the warehouse is unavailable.
    async fn prepare(
        &mut self,
        stop: &watch::Receiver<bool>,
        retries: &mut u64,
    ) -> Result<(), RedshiftError> {
        if self.prepared {
            return Ok(());
        }
        let (warehouse, streams) = (&self.warehouse, &self.streams);
        Self::retry(
            &self.settings,
            stop,
            "adding the schemas' new columns",
            retries,
            || async move { Ok(warehouse.prepare(streams).await?) },
        )
        .await?;
        self.prepared = true;
        Ok(())
    }

    /// Applies what a pass learnt.
    fn remember(&mut self, state: PassState) {
        self.done.extend(state.newly_done);
        for table in state.resumed {
            if self.stopped.remove(&table).is_some() {
                tracing::info!(table, "table loads again");
            }
            self.cleared.insert(table);
        }
        for failure in state.stopped {
            self.stopped
                .insert(failure.table.clone(), (failure, Instant::now()));
        }
    }

    /// Whether `table` is stopped and not yet due for another try.
    fn skip(&self, table: &str, retry_stopped: bool) -> bool {
        self.stopped
            .get(table)
            .is_some_and(|(_, at)| !retry_stopped && at.elapsed() < self.settings.stopped_retry)
    }

    /// Runs `step` until it succeeds, waiting with backoff after each failure; permanent errors,
    /// the last error after `max_attempts`, and the last error when `stop` turns true during a
    /// wait are returned.
    async fn retry<T, F, Fut>(
        settings: &LoaderSettings,
        stop: &watch::Receiver<bool>,
        what: &str,
        retries: &mut u64,
        mut step: F,
    ) -> Result<T, RedshiftError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, RedshiftError>>,
    {
        let mut delay = settings.retry_initial;
        let mut attempt: u32 = 1;
        loop {
            match step().await {
                Ok(v) => return Ok(v),
                Err(e) if is_permanent(&e) => return Err(e),
                Err(e) if settings.max_attempts.is_some_and(|max| attempt >= max) => return Err(e),
                Err(e) => {
                    tracing::warn!(what, attempt, retry_in_ms = delay.as_millis() as u64, error = %e, "warehouse or lake unavailable; retrying the same batch");
                    *retries += 1;
                    // A stop ends the wait (the step's own call is never cut short).
                    let mut stop = stop.clone();
                    tokio::select! {
                        biased;
                        _ = stop.wait_for(|stopped| *stopped) => return Err(e),
                        _ = tokio::time::sleep(delay) => {}
                    }
                    delay = (delay * 2).min(settings.retry_max);
                    attempt = attempt.saturating_add(1);
                }
            }
        }
    }

    /// The batch ids of `table` in the load ledger.
    async fn ledger(&self, table: &str) -> Result<BTreeSet<String>, RedshiftError> {
        Ok(self.warehouse.loaded_batches(table).await?)
    }

    /// A data failure of `request`: logged, recorded in the warehouse (best effort: the log
    /// and the summary have it anyway), remembered.
    async fn stop_table(&self, request: &LoadRequest, err: &RedshiftError, state: &mut PassState) {
        let failure = LoadFailure {
            table: request.table.clone(),
            batch_id: request.batch_id.clone(),
            message: err.to_string(),
            failed_at: chrono::Utc::now().format("%Y-%m-%d %H:%M:%S").to_string(),
        };
        tracing::error!(
            table = %request.table,
            batch = %request.batch_id,
            error = %err,
            "the batch's data cannot load into the table: loading of this table stops at this \
             batch (the other tables go on); fix the table or the schema (docs/redshift.md, \
             \"A table stopped loading\"), then run `etl warehouse load` again"
        );
        if let Err(e) = self
            .warehouse
            .record_failure(&request.table, Some(&failure))
            .await
        {
            tracing::warn!(table = %request.table, error = %e, "could not record the load failure in the warehouse");
        }
        state.stopped.push(failure);
    }

    /// The load request of a committed batch: its files as URLs under the lake root.
    pub fn request(&self, commit: &BatchCommit) -> LoadRequest {
        LoadRequest {
            table: commit.stream.clone(),
            batch_id: commit.load_id(),
            files: commit
                .files
                .iter()
                .map(|f| LoadFile {
                    uri: format!("{}/{}", self.lake_url, f.path),
                    rows: f.rows,
                    bytes: f.bytes,
                })
                .collect(),
            batches: Vec::new(),
            columns: Vec::new(),
        }
    }

    /// One pass: loads every committed batch not yet in the ledger, oldest batch id first.
    /// A table stopped by a data failure is tried again (once) and, if it fails again, stays
    /// stopped: the summary's `stopped` counts it and [`Loader::stopped_tables`] names it.
    pub async fn load_pending(&mut self) -> Result<LoadSummary, RedshiftError> {
        let mut summary = LoadSummary::default();
        let mut state = PassState::default();
        let (_never, stop) = watch::channel(false);
        self.prepare(&stop, &mut summary.retries).await?;
        let result = self.pass(&mut summary, &mut state, &stop, true).await;
        self.remember(state);
        if summary.loaded > 0 || summary.retries > 0 {
            tracing::info!(
                loaded = summary.loaded,
                rows = summary.rows,
                retries = summary.retries,
                "load pass done"
            );
        }
        result.map(|()| summary)
    }

    /// Adds what it does to `summary` as it goes; returns early, between batches, once `stop`
    /// is true.
    async fn pass(
        &self,
        summary: &mut LoadSummary,
        state: &mut PassState,
        stop: &watch::Receiver<bool>,
        retry_stopped: bool,
    ) -> Result<(), RedshiftError> {
        let settings = &self.settings;
        let lake = &self.lake;
        for stream in &self.streams {
            if self.skip(stream, retry_stopped) {
                continue;
            }
            let prefix = format!("_commits/{stream}");
            let prefix = &prefix;
            let paths = Self::retry(
                settings,
                stop,
                "listing commit records",
                &mut summary.retries,
                || async move {
                    lake.list(prefix)
                        .await
                        .map_err(|e| RedshiftError::Lake(e.to_string()))
                },
            )
            .await?;
            let new: Vec<String> = paths
                .into_iter()
                .filter(|p| p.ends_with(".json") && !self.done.contains(p))
                .collect();
            crate::metrics::pending(stream, new.len());
            if new.is_empty() {
                continue;
            }
            let loaded = Self::retry(
                settings,
                stop,
                "reading the load ledger",
                &mut summary.retries,
                || self.ledger(stream),
            )
            .await?;
            let limits = self.settings.group;
            let mut group: Vec<(String, BatchCommit)> = Vec::new();
            let mut group_columns: Vec<String> = Vec::new();
            let (mut group_rows, mut group_bytes) = (0_u64, 0_u64);
            let mut going = true;
            for chunk in new.chunks(READ_AHEAD) {
                if *stop.borrow() {
                    return Ok(());
                }
                // Commit records are small: read a chunk of them at once.
                let loaded = &loaded;
                let reads = chunk.iter().map(|path| async move {
                    let mut retries = 0;
                    let commit = Self::retry(
                        settings,
                        stop,
                        "reading a commit record",
                        &mut retries,
                        || self.read_commit(path, |c| !loaded.contains(&c.load_id())),
                    )
                    .await;
                    (path.clone(), commit, retries)
                });
                let mut read = Vec::with_capacity(chunk.len());
                for (path, commit, retries) in futures::future::join_all(reads).await {
                    summary.retries += retries;
                    read.push((path, commit?));
                }
                for (path, (commit, columns)) in read {
                    if commit.files.is_empty() || loaded.contains(&commit.load_id()) {
                        if commit.files.is_empty() {
                            summary.empty += 1;
                        } else {
                            summary.already_loaded += 1;
                        }
                        state.newly_done.push(path);
                        crate::metrics::batch_done(stream);
                        continue;
                    }
                    let rows = commit.rows();
                    let bytes: u64 = commit.files.iter().map(|f| f.bytes).sum();
                    // A group's batches share their columns (an older batch may lack new ones).
                    let same_columns = group_columns == columns;
                    if !same_columns
                        || !limits.fits(group.len(), group_rows, group_bytes, rows, bytes)
                    {
                        if !group.is_empty() {
                            going = self
                                .load_group(
                                    stream,
                                    std::mem::take(&mut group),
                                    &group_columns,
                                    summary,
                                    state,
                                    stop,
                                )
                                .await?;
                        }
                        (group_rows, group_bytes) = (0, 0);
                        if !going {
                            break; // never past a stopped batch; the next table
                        }
                    }
                    group_columns = columns;
                    group.push((path, commit));
                    group_rows += rows;
                    group_bytes += bytes;
                }
                if !going {
                    break;
                }
            }
            if going && !group.is_empty() && !*stop.borrow() {
                self.load_group(stream, group, &group_columns, summary, state, stop)
                    .await?;
            }
        }
        Ok(())
    }

    /// The commit record at `path`, and (when `pending`: not yet loaded) the columns of its files
    /// read from the first file's Parquet footer (empty otherwise: a loaded batch's files may
    /// be gone, e.g. compacted).
    async fn read_commit(
        &self,
        path: &str,
        pending: impl Fn(&BatchCommit) -> bool,
    ) -> Result<(BatchCommit, Vec<String>), RedshiftError> {
        let bytes = self
            .lake
            .get(path)
            .await
            .map_err(|e| RedshiftError::Lake(e.to_string()))?
            .ok_or_else(|| RedshiftError::Lake(format!("{path} disappeared")))?;
        let commit = serde_json::from_slice::<BatchCommit>(&bytes)
            .map_err(|e| RedshiftError::Lake(format!("{path} is not a commit record: {e}")))?;
        let current = commit.schema_version.is_some()
            && commit.schema_version == self.versions.get(&commit.stream).copied();
        let columns = match commit
            .files
            .first()
            .filter(|_| pending(&commit) && !current)
        {
            Some(file) => self
                .lake
                .parquet_columns(&file.path, file.bytes)
                .await
                .map_err(|e| RedshiftError::Lake(e.to_string()))?,
            None => Vec::new(),
        };
        Ok((commit, columns))
    }

    /// Loads `group` (consecutive pending batches of `table`, in batch-id order) in one
    /// transaction. A data failure of a group of several batches cannot say which batch is at
    /// fault, so its batches are then loaded one at a time: those before the faulty one load,
    /// and the table stops at that one. Returns whether the table may go on.
    async fn load_group(
        &self,
        table: &str,
        group: Vec<(String, BatchCommit)>,
        columns: &[String],
        summary: &mut LoadSummary,
        state: &mut PassState,
        stop: &watch::Receiver<bool>,
    ) -> Result<bool, RedshiftError> {
        let mut queue = vec![group];
        while let Some(group) = queue.pop() {
            let mut request = self.group_request(table, &group);
            request.columns = columns.to_vec();
            let outcome = Self::retry(
                &self.settings,
                stop,
                "loading a batch",
                &mut summary.retries,
                || {
                    crate::metrics::timed_load(table, is_permanent, async {
                        Ok(self.warehouse.load_batch(&request).await?)
                    })
                },
            )
            .await;
            let batches = group.len() as u64;
            match outcome {
                Ok(LoadOutcome::Loaded) => {
                    crate::metrics::batches_loaded(table, batches);
                    summary.loaded += batches;
                    summary.rows += group.iter().map(|(_, c)| c.rows()).sum::<u64>();
                }
                Ok(LoadOutcome::AlreadyLoaded) => summary.already_loaded += batches,
                Err(e) if e.kind() == FailureKind::Data && group.len() > 1 => {
                    tracing::warn!(
                        table,
                        group = %request.batch_id,
                        batches,
                        error = %e,
                        "a group of batches cannot load for a data reason; loading its batches one at a time to find the batch"
                    );
                    // One batch per group, first batch last on the stack (popped first).
                    queue.extend(group.into_iter().rev().map(|item| vec![item]));
                    continue;
                }
                Err(e) if e.kind() == FailureKind::Data => {
                    summary.stopped += 1;
                    self.stop_table(&request, &e, state).await;
                    return Ok(false);
                }
                Err(e) => return Err(e),
            }
            self.loaded_table(table, state).await;
            for (path, _) in group {
                state.newly_done.push(path);
                crate::metrics::batch_done(table);
            }
        }
        Ok(true)
    }

    /// The load request of consecutive committed batches of `table`.
    fn group_request(&self, table: &str, group: &[(String, BatchCommit)]) -> LoadRequest {
        match group {
            [(_, commit)] => self.request(commit),
            _ => LoadRequest::group(
                table,
                group
                    .iter()
                    .map(|(_, commit)| {
                        let request = self.request(commit);
                        (request.batch_id, request.files)
                    })
                    .collect(),
            ),
        }
    }

    /// After a batch of `table` loaded: the table is not stopped (any more), and its failure
    /// record, if one was left by an earlier run, is cleared (once per loader).
    async fn loaded_table(&self, table: &str, state: &mut PassState) {
        if self.cleared.contains(table) && !self.stopped.contains_key(table) {
            return;
        }
        match self.warehouse.record_failure(table, None).await {
            Ok(()) => state.resumed.push(table.to_string()),
            Err(e) => {
                tracing::warn!(table, error = %e, "could not clear the table's load failure record")
            }
        }
    }

    /// Passes every [`LoaderSettings::interval`] until `stop` completes, then returns what it
    /// did. A stop is graceful at batch granularity: a load already submitted is waited for (so
    /// the summary counts every batch this run committed), no new batch starts, and a wait
    /// between retries ends at once (that batch stays for the next run; the ledger makes any
    /// load idempotent).
    pub async fn follow(
        &mut self,
        stop: impl Future<Output = ()>,
    ) -> Result<LoadSummary, RedshiftError> {
        tokio::pin!(stop);
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut total = LoadSummary::default();
        loop {
            let mut state = PassState::default();
            let result = {
                let pass = async {
                    self.prepare(&stop_rx, &mut total.retries).await?;
                    self.pass(&mut total, &mut state, &stop_rx, false).await
                };
                tokio::pin!(pass);
                loop {
                    tokio::select! {
                        biased;
                        result = &mut pass => break result,
                        _ = &mut stop, if !*stop_rx.borrow() => {
                            tracing::info!("stopping: finishing the load in flight");
                            let _ = stop_tx.send(true);
                        }
                    }
                }
            };
            self.remember(state);
            if *stop_rx.borrow() {
                if let Err(e) = result {
                    tracing::warn!(error = %e, "stopped while retrying; the batch is loaded by the next run");
                }
                return Ok(total);
            }
            result?;
            tokio::select! {
                biased;
                _ = &mut stop => return Ok(total),
                _ = tokio::time::sleep(self.settings.interval) => {}
                _ = self.wake.notified() => {}
            }
        }
    }
}
