//! The error type of the crate. Each variant names the file (and where useful the JSON path).

use std::fmt;

/// One problem found in a dashboard, data set or data source file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    /// The file, relative to the dashboards folder (e.g. `call-operations.json`).
    pub file: String,
    /// JSON path of the offending value, e.g. `$.Definition.Sheets[0].Visuals[2]`.
    pub path: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl fmt::Display for Issue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.file, self.path, self.message)
    }
}

/// Errors of loading, validating, rendering and deploying dashboards.
#[derive(Debug, thiserror::Error)]
pub enum DashboardError {
    /// A file or folder could not be read or written.
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },

    /// A file is not valid JSON or does not have the expected shape.
    #[error("{file}: {message}")]
    Parse { file: String, message: String },

    /// The definitions do not match the views (or break QuickSight's rules).
    #[error("{} problem(s) in the dashboards:\n{}", .0.len(), .0.iter().map(|i| format!("  {i}")).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<Issue>),

    /// A `${name}` placeholder has no value.
    #[error("{file}: placeholder `${{{name}}}` has no value; set `{name}` in the `[dashboards]` section of the config file or pass `--param {name}=VALUE`")]
    MissingParameter { file: String, name: String },

    /// A query of the warehouse failed.
    #[error("querying the warehouse for {what}: {source}")]
    Warehouse {
        what: String,
        #[source]
        source: etl_warehouse::WarehouseError,
    },

    /// Query results had an unexpected shape.
    #[error("{what}: {message}")]
    Data { what: String, message: String },

    /// A chart could not be drawn.
    #[error("drawing {visual}: {message}")]
    Chart { visual: String, message: String },

    /// Headless Chromium failed or is missing.
    #[error("screenshot with {browser}: {message}")]
    Browser { browser: String, message: String },
}

/// Result of this crate.
pub type Result<T, E = DashboardError> = std::result::Result<T, E>;

pub(crate) fn io_err(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> DashboardError + '_ {
    move |source| DashboardError::Io {
        path: path.display().to_string(),
        source,
    }
}
