//! `[leases]` of the configuration file: shard leases in DynamoDB, so that several `etl run`
//! processes share the shards of every configured stream (`docs/leases.md`). Leases are on when
//! `table` is set; without it one `etl run` reads every shard, as before.

use anyhow::{bail, Result};
use etl_kinesis::leases::{LeaseOptions, DEFAULT_DEDUP_SEED_BATCHES, DEFAULT_MAX_TAKEN_PER_PASS};
use serde::Deserialize;
use std::time::Duration;

/// `[leases]` of the configuration file.
///
/// ```toml
/// [leases]
/// table = "etl-leases-prod"     # DynamoDB table; setting it turns leases on
/// lease_duration_ms = 10000
/// renew_interval_ms = 2000
/// max_leases_per_replica = 0    # 0: no limit
/// max_leases_taken_per_pass = 4
/// handover_deadline_ms = 25000  # below terminationGracePeriodSeconds / stopTimeout
/// create_table = true
/// dedup_seed_batches = 30
/// ```
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeasesConfig {
    /// The DynamoDB lease table (one per application; every stream's shards are items of it).
    /// Setting it turns leases on. Default: none (leases off).
    #[serde(default)]
    pub table: Option<String>,
    /// A lease whose `leaseCounter` has not moved for this long (as seen by a peer, on the
    /// peer's clock) is expired and taken over. Default: [`DEFAULT_LEASE_DURATION_MS`].
    #[serde(default = "default_lease_duration_ms")]
    pub lease_duration_ms: u64,
    /// How often a replica renews its leases and scans the table (released and expired leases
    /// are taken within one interval); at most a third of `lease_duration_ms`. Default:
    /// [`DEFAULT_RENEW_INTERVAL_MS`].
    #[serde(default = "default_renew_interval_ms")]
    pub renew_interval_ms: u64,
    /// Most shards of one stream a replica holds; 0 means no limit. Default: 0.
    #[serde(default)]
    pub max_leases_per_replica: usize,
    /// Most leases a replica takes in one pass (spreads a cold start over the replicas).
    /// Default: [`DEFAULT_MAX_TAKEN_PER_PASS`].
    #[serde(default = "default_max_taken")]
    pub max_leases_taken_per_pass: usize,
    /// After SIGTERM/SIGINT: the time to commit the batches in flight and release the leases;
    /// the process exits (code 1) if it is not done by then. Keep it below Kubernetes'
    /// `terminationGracePeriodSeconds` / ECS `stopTimeout`. Default:
    /// [`DEFAULT_HANDOVER_DEADLINE_MS`].
    #[serde(default = "default_handover_deadline_ms")]
    pub handover_deadline_ms: u64,
    /// Create the table (on-demand billing) at start if it does not exist; `etl leases create`
    /// does it ahead of time. Default: `true`.
    #[serde(default = "default_true")]
    pub create_table: bool,
    /// A shard's dedup window starts with the event ids of the shard's last this many committed
    /// batches, read back from the lake when the shard is taken. Default:
    /// [`DEFAULT_DEDUP_SEED_BATCHES`].
    #[serde(default = "default_seed_batches")]
    pub dedup_seed_batches: u64,
}

/// Default of [`LeasesConfig::lease_duration_ms`].
pub const DEFAULT_LEASE_DURATION_MS: u64 = 10_000;
/// Default of [`LeasesConfig::renew_interval_ms`].
pub const DEFAULT_RENEW_INTERVAL_MS: u64 = 2_000;
/// Default of [`LeasesConfig::handover_deadline_ms`].
pub const DEFAULT_HANDOVER_DEADLINE_MS: u64 = 25_000;

fn default_lease_duration_ms() -> u64 {
    DEFAULT_LEASE_DURATION_MS
}
fn default_renew_interval_ms() -> u64 {
    DEFAULT_RENEW_INTERVAL_MS
}
fn default_max_taken() -> usize {
    DEFAULT_MAX_TAKEN_PER_PASS
}
fn default_handover_deadline_ms() -> u64 {
    DEFAULT_HANDOVER_DEADLINE_MS
}
fn default_true() -> bool {
    true
}
fn default_seed_batches() -> u64 {
    DEFAULT_DEDUP_SEED_BATCHES
}

impl Default for LeasesConfig {
    fn default() -> Self {
        LeasesConfig {
            table: None,
            lease_duration_ms: DEFAULT_LEASE_DURATION_MS,
            renew_interval_ms: DEFAULT_RENEW_INTERVAL_MS,
            max_leases_per_replica: 0,
            max_leases_taken_per_pass: DEFAULT_MAX_TAKEN_PER_PASS,
            handover_deadline_ms: DEFAULT_HANDOVER_DEADLINE_MS,
            create_table: true,
            dedup_seed_batches: DEFAULT_DEDUP_SEED_BATCHES,
        }
    }
}

impl LeasesConfig {
    /// The lease options for process `owner`, checked (`None` when leases are off).
    pub fn options(&self, owner: &str) -> Result<Option<LeaseOptions>> {
        let Some(table) = &self.table else {
            return Ok(None);
        };
        if table.len() < 3 || table.len() > 255 {
            bail!("leases.table {table:?}: a DynamoDB table name has 3 to 255 characters");
        }
        if self.handover_deadline_ms == 0 {
            bail!("leases.handover_deadline_ms must be at least 1");
        }
        let options = LeaseOptions {
            owner: owner.to_string(),
            lease_duration: Duration::from_millis(self.lease_duration_ms),
            renew_interval: Duration::from_millis(self.renew_interval_ms),
            max_leases: match self.max_leases_per_replica {
                0 => usize::MAX,
                n => n,
            },
            max_taken_per_pass: self.max_leases_taken_per_pass,
            dedup_seed_batches: self.dedup_seed_batches,
        };
        options.validate()?;
        Ok(Some(options))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_without_a_table_and_checked_with_one() {
        assert!(LeasesConfig::default().options("me").unwrap().is_none());
        let on = LeasesConfig {
            table: Some("etl-leases".into()),
            ..LeasesConfig::default()
        };
        let options = on.options("me").unwrap().unwrap();
        assert_eq!(options.lease_duration, Duration::from_secs(10));
        assert_eq!(options.max_leases, usize::MAX);
        let bad = LeasesConfig {
            renew_interval_ms: 5_000,
            ..on
        };
        let message = bad.options("me").unwrap_err().to_string();
        assert!(message.contains("leases.renew_interval_ms"), "{message}");
    }
}
