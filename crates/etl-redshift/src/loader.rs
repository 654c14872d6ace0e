//! The continuous loader: every committed lake batch (`_commits/<stream>/<batch>.json`, written
//! by `etl-lake` after the batch's data files) that is not yet in the load ledger is loaded with
//! [`RedshiftDataWarehouse::load_batch`], in batch-id order, one batch at a time.
//!
//! The loader reads the lake; it never sits in the ingestion path, so a slow or unavailable
//! warehouse delays loads but never blocks ingestion. When the warehouse (or the lake) is
//! unavailable it waits with exponential backoff and retries **the same batch**: it never moves
//! past a batch that did not load (unlike Firehose, which skips after its retry window).

use crate::error::RedshiftError;
use crate::load::ledger_loaded_sql;
use crate::warehouse::{LoadOutcome, RedshiftDataWarehouse};
use etl_lake::{BatchCommit, Lake};
use etl_warehouse::{LoadFile, LoadRequest};
use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Default pause between two passes of [`Loader::follow`].
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);

/// How often the loader looks for new batches and how it retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoaderSettings {
    /// Pause between passes in [`Loader::follow`] (default 10 s).
    pub interval: Duration,
    /// First wait after a failure; doubles up to `retry_max`.
    pub retry_initial: Duration,
    /// Longest wait between retries.
    pub retry_max: Duration,
    /// Give up (and return the error) after this many attempts of one step; `None` retries
    /// forever (what `--follow` does).
    pub max_attempts: Option<u32>,
}

impl Default for LoaderSettings {
    fn default() -> Self {
        LoaderSettings {
            interval: DEFAULT_INTERVAL,
            retry_initial: Duration::from_secs(1),
            retry_max: Duration::from_secs(30),
            max_attempts: None,
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
}

/// Loads the committed batches of a lake into the warehouse.
pub struct Loader {
    warehouse: Arc<RedshiftDataWarehouse>,
    lake: Lake,
    lake_url: String,
    streams: Vec<String>,
    settings: LoaderSettings,
    /// Commit records known to be loaded (or empty): not read again.
    done: BTreeSet<String>,
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

/// Errors that waiting cannot fix: configuration and identifiers.
fn is_permanent(err: &RedshiftError) -> bool {
    matches!(
        err,
        RedshiftError::InvalidIdentifier { .. }
            | RedshiftError::InvalidLiteral { .. }
            | RedshiftError::Config(_)
            | RedshiftError::UnknownTable { .. }
            | RedshiftError::NotInS3 { .. }
            | RedshiftError::ColumnMismatch { .. }
    )
}

impl Loader {
    /// A loader of `streams` from `lake`, whose root is `lake_url` (`s3://bucket/prefix`: the
    /// COPY manifests name the files under it).
    pub fn new(
        warehouse: Arc<RedshiftDataWarehouse>,
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
        })
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
        let api = self.warehouse.data_api();
        let id = api
            .execute(
                &ledger_loaded_sql(self.warehouse.schema()),
                &[("table", table)],
            )
            .await?;
        Ok(api
            .fetch(&id)
            .await?
            .first_column_strings()
            .into_iter()
            .collect())
    }

    /// The load request of a committed batch: its files as URLs under the lake root.
    pub fn request(&self, commit: &BatchCommit) -> LoadRequest {
        LoadRequest {
            table: commit.stream.clone(),
            batch_id: commit.batch_id.to_string(),
            files: commit
                .files
                .iter()
                .map(|f| LoadFile {
                    uri: format!("{}/{}", self.lake_url, f.path),
                    rows: f.rows,
                    bytes: f.bytes,
                })
                .collect(),
        }
    }

    /// One pass: loads every committed batch not yet in the ledger, oldest batch id first.
    pub async fn load_pending(&mut self) -> Result<LoadSummary, RedshiftError> {
        let mut summary = LoadSummary::default();
        let mut newly_done = Vec::new();
        let (_never, stop) = watch::channel(false);
        let result = self.pass(&mut summary, &mut newly_done, &stop).await;
        self.done.extend(newly_done);
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
        newly_done: &mut Vec<String>,
        stop: &watch::Receiver<bool>,
    ) -> Result<(), RedshiftError> {
        let settings = &self.settings;
        let lake = &self.lake;
        for stream in &self.streams {
            let prefix = format!("_commits/{stream}");
            let prefix = &prefix;
            let retries = &mut summary.retries;
            let paths = Self::retry(
                settings,
                stop,
                "listing commit records",
                retries,
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
            let loaded = Self::retry(settings, stop, "reading the load ledger", retries, || {
                self.ledger(stream)
            })
            .await?;
            for path in new {
                let path_ref = &path;
                if *stop.borrow() {
                    return Ok(());
                }
                let commit = Self::retry(
                    settings,
                    stop,
                    "reading a commit record",
                    retries,
                    || async move {
                        let bytes = lake
                            .get(path_ref)
                            .await
                            .map_err(|e| RedshiftError::Lake(e.to_string()))?
                            .ok_or_else(|| {
                                RedshiftError::Lake(format!("{path_ref} disappeared"))
                            })?;
                        serde_json::from_slice::<BatchCommit>(&bytes).map_err(|e| {
                            RedshiftError::Lake(format!("{path_ref} is not a commit record: {e}"))
                        })
                    },
                )
                .await?;
                let batch_id = commit.batch_id.to_string();
                if commit.files.is_empty() {
                    summary.empty += 1;
                } else if loaded.contains(&batch_id) {
                    summary.already_loaded += 1;
                } else {
                    let request = self.request(&commit);
                    let outcome = Self::retry(settings, stop, "loading a batch", retries, || {
                        crate::metrics::timed_load(
                            stream,
                            is_permanent,
                            self.warehouse.load_batch(&request),
                        )
                    })
                    .await?;
                    match outcome {
                        LoadOutcome::Loaded => {
                            summary.loaded += 1;
                            summary.rows += commit.rows();
                        }
                        LoadOutcome::AlreadyLoaded => summary.already_loaded += 1,
                    }
                }
                newly_done.push(path);
                crate::metrics::batch_done(stream);
            }
        }
        Ok(())
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
            let mut newly_done = Vec::new();
            let result = {
                let pass = self.pass(&mut total, &mut newly_done, &stop_rx);
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
            self.done.extend(newly_done);
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
            }
        }
    }
}
