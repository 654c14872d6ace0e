//! `[athena]` of the configuration file: where `etl query --engine athena` runs, and the
//! partition projection `etl catalog sync` writes on the Glue tables.

use anyhow::{bail, Result};
use serde::Deserialize;
use std::time::Duration;

/// `[athena]` of the configuration file.
///
/// ```toml
/// [athena]
/// workgroup = "primary"
/// database = "analytics"                         # default: lake.glue_database
/// output_location = "s3://athena-results/etl/"   # default: the workgroup's
/// poll_initial_ms = 200
/// poll_max_ms = 5000
/// page_rows = 1000
/// timeout_secs = 0                               # 0 = wait as long as the query runs
/// partition_projection = true
/// projection_dt_start = "2024-01-01"
/// ```
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AthenaConfig {
    /// Athena workgroup of the queries and named queries (`WorkGroup`). Default:
    /// [`DEFAULT_WORKGROUP`].
    #[serde(default = "default_workgroup")]
    pub workgroup: String,
    /// Database of unqualified table names (`QueryExecutionContext.Database`). Default: none,
    /// i.e. `lake.glue_database`.
    #[serde(default)]
    pub database: Option<String>,
    /// Data catalog (`QueryExecutionContext.Catalog`). Default: none, i.e. Athena's
    /// `AwsDataCatalog` (Glue).
    #[serde(default)]
    pub catalog: Option<String>,
    /// `s3://bucket/prefix/` for the result files (`ResultConfiguration.OutputLocation`).
    /// Default: none, i.e. the workgroup's configured location (Athena refuses the query when
    /// the workgroup has none).
    #[serde(default)]
    pub output_location: Option<String>,
    /// First wait between two status polls, in milliseconds; waits double (with full jitter)
    /// up to `poll_max_ms`. Default: [`DEFAULT_POLL_INITIAL_MS`].
    #[serde(default = "default_poll_initial_ms")]
    pub poll_initial_ms: u64,
    /// Longest wait between two status polls, in milliseconds. Default:
    /// [`DEFAULT_POLL_MAX_MS`].
    #[serde(default = "default_poll_max_ms")]
    pub poll_max_ms: u64,
    /// Rows per `GetQueryResults` page, 1 to 1000. Default: [`DEFAULT_PAGE_ROWS`].
    #[serde(default = "default_page_rows")]
    pub page_rows: i32,
    /// Stop a query that has not finished after this many seconds (`StopQueryExecution`);
    /// `0` = no limit. Default: `0`.
    #[serde(default)]
    pub timeout_secs: u64,
    /// Write Athena partition projection on the Glue tables `etl catalog sync` creates or
    /// extends (`projection.enabled`, `projection.dt.*`, `projection.hour.*`,
    /// `storage.location.template`; see docs/query.md), so Athena finds new hours without
    /// partition registration. Athena then ignores registered partitions (Redshift Spectrum
    /// still uses them; they are still registered). Default: `true`.
    #[serde(default = "default_true")]
    pub partition_projection: bool,
    /// First day (`YYYY-MM-DD`, UTC) of the projected `dt` range, which runs to `NOW`.
    /// Default: [`DEFAULT_PROJECTION_DT_START`].
    #[serde(default = "default_projection_dt_start")]
    pub projection_dt_start: String,
}

/// Default of `athena.workgroup`.
pub const DEFAULT_WORKGROUP: &str = "primary";
/// Default of `athena.poll_initial_ms`.
pub const DEFAULT_POLL_INITIAL_MS: u64 = 200;
/// Default of `athena.poll_max_ms`.
pub const DEFAULT_POLL_MAX_MS: u64 = 5_000;
/// Default of `athena.page_rows` (Athena's maximum).
pub const DEFAULT_PAGE_ROWS: i32 = etl_query::athena::MAX_PAGE_ROWS;
/// Default of `athena.projection_dt_start`.
pub const DEFAULT_PROJECTION_DT_START: &str = "2024-01-01";

fn default_workgroup() -> String {
    DEFAULT_WORKGROUP.into()
}
fn default_poll_initial_ms() -> u64 {
    DEFAULT_POLL_INITIAL_MS
}
fn default_poll_max_ms() -> u64 {
    DEFAULT_POLL_MAX_MS
}
fn default_page_rows() -> i32 {
    DEFAULT_PAGE_ROWS
}
fn default_true() -> bool {
    true
}
fn default_projection_dt_start() -> String {
    DEFAULT_PROJECTION_DT_START.into()
}

impl Default for AthenaConfig {
    fn default() -> Self {
        AthenaConfig {
            workgroup: default_workgroup(),
            database: None,
            catalog: None,
            output_location: None,
            poll_initial_ms: default_poll_initial_ms(),
            poll_max_ms: default_poll_max_ms(),
            page_rows: default_page_rows(),
            timeout_secs: 0,
            partition_projection: true,
            projection_dt_start: default_projection_dt_start(),
        }
    }
}

impl AthenaConfig {
    /// Checks the fields that can be checked without AWS.
    pub fn validate(&self) -> Result<()> {
        if self.workgroup.trim().is_empty() {
            bail!("athena.workgroup is empty: name an Athena workgroup (default \"primary\")");
        }
        if let Some(location) = &self.output_location {
            if !location.starts_with("s3://") {
                bail!("athena.output_location {location:?} is not an s3:// URL: write s3://bucket/prefix/");
            }
        }
        if !(1..=etl_query::athena::MAX_PAGE_ROWS).contains(&self.page_rows) {
            bail!(
                "athena.page_rows = {} is out of range: use 1 to {}",
                self.page_rows,
                etl_query::athena::MAX_PAGE_ROWS
            );
        }
        if self.poll_initial_ms == 0 || self.poll_max_ms < self.poll_initial_ms {
            bail!("athena.poll_initial_ms must be at least 1 and at most athena.poll_max_ms");
        }
        let d = self.projection_dt_start.as_bytes();
        let shape_ok = d.len() == 10
            && d[4] == b'-'
            && d[7] == b'-'
            && d.iter()
                .enumerate()
                .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit());
        if !shape_ok {
            bail!(
                "athena.projection_dt_start {:?} is not a date: write YYYY-MM-DD",
                self.projection_dt_start
            );
        }
        Ok(())
    }

    /// The engine settings, with `database` falling back to `glue_database`.
    pub fn settings(
        &self,
        glue_database: Option<&str>,
    ) -> Result<etl_query::athena::AthenaSettings> {
        self.validate()?;
        let Some(database) = self.database.as_deref().or(glue_database) else {
            bail!(
                "the Athena engine needs a database: set athena.database (or lake.glue_database)"
            );
        };
        Ok(etl_query::athena::AthenaSettings {
            workgroup: self.workgroup.clone(),
            database: database.to_string(),
            catalog: self.catalog.clone(),
            output_location: self.output_location.clone(),
            poll_initial: Duration::from_millis(self.poll_initial_ms),
            poll_max: Duration::from_millis(self.poll_max_ms),
            page_rows: self.page_rows,
            timeout: (self.timeout_secs > 0).then(|| Duration::from_secs(self.timeout_secs)),
        })
    }

    /// The projection `etl catalog sync` writes, if on.
    pub fn projection(&self) -> Option<etl_glue::Projection> {
        self.partition_projection.then(|| etl_glue::Projection {
            dt_start: self.projection_dt_start.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_refusals_name_the_field() {
        let c: AthenaConfig = toml::from_str("").unwrap();
        assert_eq!(c, AthenaConfig::default());
        let s = c.settings(Some("analytics")).unwrap();
        assert_eq!(s.workgroup, "primary");
        assert_eq!(s.database, "analytics");
        assert_eq!(s.page_rows, 1000);
        assert!(c
            .settings(None)
            .unwrap_err()
            .to_string()
            .contains("athena.database"));
        let e = toml::from_str::<AthenaConfig>("workgrup = \"x\"").unwrap_err();
        assert!(e.to_string().contains("workgrup"), "{e}");
        for (text, field) in [
            ("page_rows = 5000", "athena.page_rows"),
            ("output_location = \"/tmp\"", "athena.output_location"),
            (
                "projection_dt_start = \"2024-1-1\"",
                "athena.projection_dt_start",
            ),
            ("poll_initial_ms = 0", "athena.poll_initial_ms"),
        ] {
            let c: AthenaConfig = toml::from_str(text).unwrap();
            let e = c.validate().unwrap_err().to_string();
            assert!(e.contains(field), "{text}: {e}");
        }
    }
}
