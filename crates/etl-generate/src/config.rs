//! Generator configuration, its defaults and validation.

use serde::{Deserialize, Serialize};

/// 2026-11-01T00:00:00Z in epoch milliseconds: the default first event time.
pub const DEFAULT_START_MS: i64 = 1_793_491_200_000;

/// Late events are moved back by up to this much, so `start_ms` must leave room before it.
pub(crate) const MAX_LATE_MS: i64 = 3 * 3_600_000;
/// ... and by at least this much.
pub(crate) const MIN_LATE_MS: i64 = 5 * 60_000;
/// 10000-01-01T00:00:00Z: RFC 3339 years have four digits.
const YEAR_10000_MS: i64 = 253_402_300_800_000;

/// What to generate. Every field has a default (see [`GeneratorConfig::default`]); the same
/// configuration always yields byte-identical output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GeneratorConfig {
    /// Seed of the ChaCha8 random stream. Default 42.
    pub seed: u64,
    /// Records to produce, over both streams and of every kind. Default 1,000,000.
    pub events: u64,
    /// Fraction of records that go to `call_events` (the rest go to `app_events`). Default 0.5.
    pub call_share: f64,
    /// Fraction of records that are exact byte copies of a recent line of the same stream. Default 0.01.
    pub duplicate_rate: f64,
    /// Fraction of valid records whose `occurred_at` is moved back by 5 min .. 3 h. Default 0.02.
    pub late_rate: f64,
    /// Fraction of records that are malformed (kinds rotate, see `MalformedKind`). Default 0.001.
    pub malformed_rate: f64,
    /// Event time of the first record, epoch milliseconds. Default 2026-11-01T00:00:00Z.
    pub start_ms: i64,
    /// Event-time density: records per second of event time. Default 50, so 1M records span
    /// about 5.6 hours (six `dt/hour` partitions).
    pub events_per_second: f64,
    /// Distinct customer accounts. Default 200.
    pub accounts: u32,
    /// Distinct app users. Default 20,000.
    pub users: u32,
    /// Most oversize (> 1 MiB) records to produce; there is at most one per 200,000 records
    /// anyway. Default 2. Set 0 to never produce one.
    pub max_oversize: u32,
}

impl Default for GeneratorConfig {
    fn default() -> Self {
        GeneratorConfig {
            seed: 42,
            events: 1_000_000,
            call_share: 0.5,
            duplicate_rate: 0.01,
            late_rate: 0.02,
            malformed_rate: 0.001,
            start_ms: DEFAULT_START_MS,
            events_per_second: 50.0,
            accounts: 200,
            users: 20_000,
            max_oversize: 2,
        }
    }
}

/// Errors from configuring or running the generator.
#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    /// A configuration value is out of range; `field` names it and `message` says how to fix it.
    #[error("invalid generator config: `{field}` {message}")]
    InvalidConfig {
        /// The offending [`GeneratorConfig`] field.
        field: &'static str,
        /// What is wrong and what to set instead.
        message: String,
    },
    /// Writing the NDJSON output failed.
    #[error("writing {stream} NDJSON failed: {source}")]
    Io {
        /// `app_events` or `call_events`.
        stream: &'static str,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

fn invalid(field: &'static str, message: String) -> GenerateError {
    GenerateError::InvalidConfig { field, message }
}

fn check_fraction(field: &'static str, v: f64) -> Result<(), GenerateError> {
    if v.is_finite() && (0.0..=1.0).contains(&v) {
        Ok(())
    } else {
        Err(invalid(
            field,
            format!("is {v}; it must be a fraction between 0 and 1 (e.g. 0.01 for 1%)"),
        ))
    }
}

impl GeneratorConfig {
    /// Checks every field; the error names the field and the fix.
    pub fn validate(&self) -> Result<(), GenerateError> {
        if self.events == 0 {
            return Err(invalid("events", "is 0; ask for at least 1 record".into()));
        }
        check_fraction("call_share", self.call_share)?;
        check_fraction("duplicate_rate", self.duplicate_rate)?;
        check_fraction("late_rate", self.late_rate)?;
        check_fraction("malformed_rate", self.malformed_rate)?;
        if self.duplicate_rate + self.malformed_rate > 1.0 {
            return Err(invalid(
                "duplicate_rate",
                format!(
                    "plus malformed_rate is {}; together they must be at most 1",
                    self.duplicate_rate + self.malformed_rate
                ),
            ));
        }
        if !(self.events_per_second.is_finite() && self.events_per_second > 0.0) {
            return Err(invalid(
                "events_per_second",
                format!("is {}; it must be a positive number of records per second of event time (e.g. 50)", self.events_per_second),
            ));
        }
        if self.start_ms < MAX_LATE_MS {
            return Err(invalid(
                "start_ms",
                format!(
                    "is {}; it must be at least {MAX_LATE_MS} (1970-01-01T03:00:00Z) so late events stay after the epoch",
                    self.start_ms
                ),
            ));
        }
        let span_ms = self.events as f64 * 1000.0 / self.events_per_second;
        if self.start_ms as f64 + span_ms + 86_400_000.0 >= YEAR_10000_MS as f64 {
            return Err(invalid(
                "start_ms",
                format!(
                    "is {} and the run spans {span_ms:.0} ms of event time; the last event must fall before year 10000 \
                     (lower start_ms or events, or raise events_per_second)",
                    self.start_ms
                ),
            ));
        }
        if self.accounts == 0 {
            return Err(invalid("accounts", "is 0; use at least 1".into()));
        }
        if self.users == 0 {
            return Err(invalid("users", "is 0; use at least 1".into()));
        }
        Ok(())
    }

    /// Milliseconds of event time between consecutive records.
    pub(crate) fn ms_per_event(&self) -> f64 {
        1000.0 / self.events_per_second
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid() {
        GeneratorConfig::default().validate().unwrap();
    }

    #[test]
    fn errors_name_the_field() {
        let bad = |f: fn(&mut GeneratorConfig)| {
            let mut c = GeneratorConfig::default();
            f(&mut c);
            match c.validate() {
                Err(GenerateError::InvalidConfig { field, .. }) => field,
                other => panic!("expected InvalidConfig, got {other:?}"),
            }
        };
        assert_eq!(bad(|c| c.events = 0), "events");
        assert_eq!(bad(|c| c.call_share = 1.5), "call_share");
        assert_eq!(bad(|c| c.duplicate_rate = -0.1), "duplicate_rate");
        assert_eq!(bad(|c| c.late_rate = f64::NAN), "late_rate");
        assert_eq!(bad(|c| c.malformed_rate = 2.0), "malformed_rate");
        assert_eq!(bad(|c| c.events_per_second = 0.0), "events_per_second");
        assert_eq!(bad(|c| c.start_ms = 0), "start_ms");
        assert_eq!(bad(|c| c.start_ms = YEAR_10000_MS), "start_ms");
        assert_eq!(bad(|c| c.accounts = 0), "accounts");
        assert_eq!(bad(|c| c.users = 0), "users");
        let msg = GeneratorConfig {
            late_rate: 3.0,
            ..Default::default()
        }
        .validate()
        .unwrap_err()
        .to_string();
        assert!(
            msg.contains("late_rate") && msg.contains("between 0 and 1"),
            "{msg}"
        );
    }
}
