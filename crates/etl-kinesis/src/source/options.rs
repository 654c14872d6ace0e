//! How a Kinesis source reads ([`SourceOptions`]) and how it is asked to stop ([`StopHandle`]).

use crate::reader::{ReaderOptions, StartPosition};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

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
    /// First wait before a commit is retried while the lake or catalog is unavailable; doubles
    /// (with full jitter) up to `commit_retry_max`. Default: [`DEFAULT_COMMIT_RETRY_INITIAL`].
    pub commit_retry_initial: Duration,
    /// Longest wait between commit retries. Default: [`DEFAULT_COMMIT_RETRY_MAX`].
    pub commit_retry_max: Duration,
    /// Share the stream's shards with other processes through a lease table
    /// (`docs/leases.md`); `None` (the default): this process reads every shard.
    pub leases: Option<crate::leases::Leasing>,
}

/// Default of [`SourceOptions::commit_retry_initial`].
pub const DEFAULT_COMMIT_RETRY_INITIAL: Duration = Duration::from_millis(500);
/// Default of [`SourceOptions::commit_retry_max`].
pub const DEFAULT_COMMIT_RETRY_MAX: Duration = Duration::from_secs(30);

impl Default for SourceOptions {
    fn default() -> Self {
        SourceOptions {
            start: StartPosition::TrimHorizon,
            reader: ReaderOptions::default(),
            batch_max_ms: 1_000,
            stop_when_caught_up: false,
            discovery_interval: Duration::from_secs(10),
            commit_retry_initial: DEFAULT_COMMIT_RETRY_INITIAL,
            commit_retry_max: DEFAULT_COMMIT_RETRY_MAX,
            leases: None,
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
