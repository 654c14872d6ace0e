//! The operations listener of the long-running commands (`etl run`, `etl warehouse load
//! --follow`): `[observability]` of the configuration file, starting `etl-observe`'s listener,
//! readiness, and the bridge from the Kinesis consumer's own counters and lag to gauges.

use crate::setup::Setup;
use anyhow::{anyhow, Result};
use etl_kinesis::{PositionCommitter, ReaderCounts, ShardLag};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

/// Default of `observability.listen`.
pub const DEFAULT_LISTEN: &str = "0.0.0.0:9464";
/// Default of `observability.linger_ms`.
pub const DEFAULT_LINGER_MS: u64 = 0;
/// How often the Kinesis lag and reader counters are copied into the metrics.
const KINESIS_EVERY: Duration = Duration::from_secs(1);

/// `[observability]` of the configuration file.
///
/// ```toml
/// [observability]
/// listen = "0.0.0.0:9464"   # "off" turns the listener off; --metrics-listen overrides it
/// linger_ms = 0
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObservabilityConfig {
    /// `IP:port` of the HTTP listener serving `/metrics`, `/healthz` and `/readyz` while `etl
    /// run` or `etl warehouse load --follow` runs (the other commands never listen), or `"off"`.
    /// Default: `0.0.0.0:9464`. The commands' `--metrics-listen` overrides it.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Milliseconds the listener keeps answering once the work has stopped, before the process
    /// exits: `/readyz` says 503 and the final counters can still be scraped. Default: 0.
    #[serde(default = "default_linger_ms")]
    pub linger_ms: u64,
}

fn default_listen() -> String {
    DEFAULT_LISTEN.to_string()
}

fn default_linger_ms() -> u64 {
    DEFAULT_LINGER_MS
}

impl Default for ObservabilityConfig {
    fn default() -> Self {
        ObservabilityConfig {
            listen: default_listen(),
            linger_ms: default_linger_ms(),
        }
    }
}

impl ObservabilityConfig {
    /// The address to listen on (`None`: off). `flag` (`--metrics-listen`) overrides `listen`.
    pub fn address(&self, flag: Option<&str>) -> Result<Option<SocketAddr>> {
        let (text, field) = match flag {
            Some(text) => (text, "--metrics-listen"),
            None => (self.listen.as_str(), "observability.listen"),
        };
        if text == "off" {
            return Ok(None);
        }
        text.parse().map(Some).map_err(|_| {
            anyhow!("{field} {text:?} is not an address: write IP:port, e.g. \"0.0.0.0:9464\" or \"127.0.0.1:9464\", or \"off\"")
        })
    }
}

/// The listener of one command (or nothing when it is off).
pub struct Observability {
    observer: Option<etl_observe::Observer>,
    linger: Duration,
}

/// Starts the listener when `enabled` (the long-running commands) and the configuration or
/// `flag` does not turn it off. `/readyz` says 503 until [`Observability::ready`], and again from
/// SIGTERM / Ctrl-C on.
pub async fn start(setup: &Setup, enabled: bool, flag: Option<&str>) -> Result<Observability> {
    let config = &setup.observability;
    let linger = Duration::from_millis(config.linger_ms);
    let addr = match config.address(flag)? {
        Some(addr) if enabled => addr,
        _ => {
            return Ok(Observability {
                observer: None,
                linger,
            })
        }
    };
    let observer = etl_observe::Observer::install()?;
    observer.serve(addr).await?;
    observer.stop_when(crate::shutdown::requested());
    Ok(Observability {
        observer: Some(observer),
        linger,
    })
}

impl Observability {
    /// Configuration is loaded and the dependencies were reached: `/readyz` answers 200.
    pub fn ready(&self) {
        if let Some(o) = &self.observer {
            o.readiness().ready();
        }
    }

    /// The work has stopped: `/readyz` answers 503 (if no signal did it already), and the
    /// listener keeps answering for `observability.linger_ms`.
    pub async fn finish(&self) {
        if let Some(o) = &self.observer {
            o.readiness().stopping();
            tokio::time::sleep(self.linger).await;
        }
    }
}

/// Copies the lag and reader counters of one stream's Kinesis consumer into the metrics every
/// second while it lives (dropping it stops the copying).
pub struct KinesisGauges(tokio::task::JoinHandle<()>);

impl Drop for KinesisGauges {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Starts copying `committer`'s lag and counters as the metrics of `stream`.
pub fn kinesis_gauges(stream: &str, committer: &PositionCommitter) -> KinesisGauges {
    let (stream, committer) = (stream.to_string(), committer.clone());
    KinesisGauges(tokio::spawn(async move {
        loop {
            export_kinesis(&stream, &committer.shard_lag(), committer.reader_counts());
            if let Some(counts) = committer.lease_counts() {
                export_leases(&stream, counts);
            }
            tokio::time::sleep(KINESIS_EVERY).await;
        }
    }))
}

/// Sets the Kinesis metrics of `stream` from the consumer's own figures.
pub fn export_kinesis(stream: &str, lag: &BTreeMap<String, ShardLag>, counts: ReaderCounts) {
    for (shard, lag) in lag {
        let labels = [("stream", stream.to_string()), ("shard", shard.clone())];
        if let Some(ms) = lag.millis_behind_latest {
            metrics::gauge!("etl_kinesis_millis_behind_latest", &labels).set(ms as f64);
        }
        if let Some(ms) = lag.event_time_lag_ms {
            metrics::gauge!("etl_event_freshness_seconds", &labels).set(ms as f64 / 1000.0);
        }
    }
    let s = || stream.to_string();
    for (name, value) in [
        (
            "etl_kinesis_get_records_calls_total",
            counts.get_records_calls,
        ),
        ("etl_kinesis_records_total", counts.kinesis_records),
        ("etl_kinesis_user_records_total", counts.user_records),
        ("etl_kinesis_throttled_calls_total", counts.throttled_calls),
        ("etl_kinesis_failed_calls_total", counts.failed_calls),
        (
            "etl_kinesis_iterators_expired_total",
            counts.iterators_expired,
        ),
    ] {
        metrics::counter!(name, "stream" => s()).absolute(value);
    }
}

/// Sets the lease metrics of `stream` (with leases, `docs/leases.md`).
pub fn export_leases(stream: &str, counts: etl_kinesis::LeaseCounts) {
    metrics::gauge!("etl_leases_held", "stream" => stream.to_string()).set(counts.held as f64);
    for (kind, value) in [
        ("taken", counts.taken),
        ("released", counts.released),
        ("lost", counts.lost),
    ] {
        metrics::counter!("etl_lease_changes_total", "stream" => stream.to_string(), "kind" => kind)
            .absolute(value);
    }
}

#[cfg(test)]
mod tests;
