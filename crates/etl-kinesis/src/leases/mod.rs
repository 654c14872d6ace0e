//! Shard leases in DynamoDB, so that several `etl run` processes share the shards of a stream
//! (`docs/leases.md`): the table ([`table`], KCL's attribute names), expiry as observed and the
//! balancing rule ([`balance`]), and the options. The loop that renews, takes and releases
//! leases is part of the source (`source::leasing`), because taking a lease starts a shard
//! reader and losing one stops it.
//!
//! Leases decide who **reads** a shard; the lake's commit log (`etl_lake::delivery`) stays the
//! source of truth for positions and the last line of defence: a consumer whose lease moved
//! while it was committing is fenced by the log's conditional create.

pub mod balance;
pub mod table;

pub use balance::{fair_share, plan, Observations, Plan, View};
pub use table::{lease_key, worker_key, LeaseItem, LeaseTable, ENTITY_LEASE, ENTITY_WORKER};

use std::time::Duration;

/// Default of [`LeaseOptions::lease_duration`]: KCL's failover time.
pub const DEFAULT_LEASE_DURATION: Duration = Duration::from_secs(10);
/// Default of [`LeaseOptions::renew_interval`].
pub const DEFAULT_RENEW_INTERVAL: Duration = Duration::from_secs(2);
/// Default of [`LeaseOptions::max_leases`]: no limit.
pub const DEFAULT_MAX_LEASES: usize = usize::MAX;
/// Default of [`LeaseOptions::max_taken_per_pass`].
pub const DEFAULT_MAX_TAKEN_PER_PASS: usize = 4;
/// Default of [`LeaseOptions::dedup_seed_batches`].
pub const DEFAULT_DEDUP_SEED_BATCHES: u64 = 30;

/// How leases are held (the `[leases]` section of the configuration file).
#[derive(Debug, Clone)]
pub struct LeaseOptions {
    /// This process's name in `leaseOwner` (unique per process: `<host>-<pid>-<start ms>`).
    pub owner: String,
    /// A lease whose counter has not moved for this long (on the observer's clock) is
    /// expired and may be taken.
    pub lease_duration: Duration,
    /// How often held leases are renewed and the table is scanned for free or expired ones;
    /// at most a third of `lease_duration`.
    pub renew_interval: Duration,
    /// Most leases one process holds per stream.
    pub max_leases: usize,
    /// Most leases taken in one pass (spreads a cold start over the replicas).
    pub max_taken_per_pass: usize,
    /// A shard's dedup window starts with the event ids of its last this many committed
    /// batches (read back from the lake when the shard is taken).
    pub dedup_seed_batches: u64,
}

impl LeaseOptions {
    /// Options with the defaults for `owner`.
    pub fn new(owner: &str) -> Self {
        LeaseOptions {
            owner: owner.to_string(),
            lease_duration: DEFAULT_LEASE_DURATION,
            renew_interval: DEFAULT_RENEW_INTERVAL,
            max_leases: DEFAULT_MAX_LEASES,
            max_taken_per_pass: DEFAULT_MAX_TAKEN_PER_PASS,
            dedup_seed_batches: DEFAULT_DEDUP_SEED_BATCHES,
        }
    }

    /// Checks the timings; the message names the field and the fix.
    pub fn validate(&self) -> Result<(), LeaseError> {
        if self.renew_interval.is_zero() || self.renew_interval * 3 > self.lease_duration {
            return Err(LeaseError::Option(format!(
                "leases.renew_interval_ms ({} ms) must be at least 1 and at most a third of leases.lease_duration_ms ({} ms), so two renewals can fail before the lease is given up",
                self.renew_interval.as_millis(),
                self.lease_duration.as_millis()
            )));
        }
        if self.max_leases == 0 || self.max_taken_per_pass == 0 {
            return Err(LeaseError::Option(
                "leases.max_leases_per_replica and leases.max_leases_taken_per_pass must be at least 1".into(),
            ));
        }
        if self.owner.is_empty() {
            return Err(LeaseError::Option("the lease owner name is empty".into()));
        }
        Ok(())
    }

    /// How long a renewal keeps a lease valid for its holder, counted from when the renewal
    /// was **sent**: the lease duration less one renew interval, so the holder stops writing
    /// the shard before any peer can see the lease expired.
    pub fn validity(&self) -> Duration {
        self.lease_duration.saturating_sub(self.renew_interval)
    }
}

/// Leases for a source: the table and the options.
#[derive(Debug, Clone)]
pub struct Leasing {
    /// The lease table.
    pub table: LeaseTable,
    /// How leases are held.
    pub options: LeaseOptions,
}

/// Errors of the lease table.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    /// A DynamoDB call failed (after the SDK's retries) or did not answer in time.
    #[error("DynamoDB {operation} on lease table {table} failed: {message}")]
    Call {
        operation: &'static str,
        table: String,
        message: String,
    },
    /// The table does not exist.
    #[error("lease table {0} does not exist: create it with `etl leases create` (or let `etl run` create it: leases.create_table = true)")]
    NoTable(String),
    /// Bad options.
    #[error("invalid lease option: {0}")]
    Option(String),
}
