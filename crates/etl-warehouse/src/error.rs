//! The one error type of the crate. Each variant says what failed and what to do about it.

/// The cause of an engine or backend failure, whatever the engine (DataFusion, Redshift, …):
/// the seam's errors name no engine's types.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Whether waiting can fix a failed warehouse call. The loader acts on it: it retries
/// [`FailureKind::Transient`] failures, stops loading the one table of a
/// [`FailureKind::Data`] failure (other tables keep loading), and stops on
/// [`FailureKind::Config`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The warehouse or the network is unavailable, throttled, paused, or timed out.
    Transient,
    /// The batch's data violates the table (a value too long, a type mismatch, a NULL in a
    /// NOT NULL column): retrying the same batch fails the same way until the table or the
    /// schema is fixed.
    Data,
    /// The configuration, the identifiers or the tables cannot work.
    Config,
}

/// Errors loading views, opening the warehouse or running SQL.
#[derive(Debug, thiserror::Error)]
pub enum WarehouseError {
    /// The views directory could not be listed.
    #[error("cannot read views directory {path}: {source}; point `views_dir` at the repository's `queries/views` folder")]
    ViewDir {
        path: String,
        #[source]
        source: std::io::Error,
    },

    /// A view file could not be read.
    #[error("cannot read view file {path}: {source}")]
    ViewFile {
        path: String,
        #[source]
        source: std::io::Error,
    },

    /// A view file is not one valid SELECT (or its name is not a valid identifier).
    #[error("view `{view}` ({path}) is invalid: {message}")]
    ViewInvalid {
        view: String,
        path: String,
        message: String,
    },

    /// Two view definitions with the same name.
    #[error("view `{view}` is defined twice ({first} and {second}); rename or delete one file")]
    DuplicateView {
        view: String,
        first: String,
        second: String,
    },

    /// A view reads a relation that is neither a lake table nor another view.
    #[error("view `{view}` ({path}) references unknown table or view `{missing}`; known tables are {known}; add `queries/views/{missing}.sql` or fix the name")]
    UnknownReference {
        view: String,
        path: String,
        missing: String,
        known: String,
    },

    /// Views reference each other in a cycle.
    #[error("views reference each other in a cycle: {}; break the cycle", cycle.join(" -> "))]
    ViewCycle { cycle: Vec<String> },

    /// The lake location could not be used.
    #[error("cannot open lake {location}: {message}")]
    Lake { location: String, message: String },

    /// A lake table could not be registered.
    #[error("cannot register lake table `{table}` at {location}: {source}")]
    Table {
        table: String,
        location: String,
        #[source]
        source: BoxError,
    },

    /// Creating a view failed in the engine.
    #[error("view `{view}` failed: {source}; fix {path}")]
    View {
        view: String,
        path: String,
        #[source]
        source: BoxError,
    },

    /// A query failed.
    #[error("query failed: {source}; SQL: {sql}")]
    Query {
        sql: String,
        #[source]
        source: BoxError,
    },

    /// The name is not a view of this warehouse.
    #[error("unknown view `{view}`; known views are {known}")]
    UnknownView { view: String, known: String },

    /// A warehouse backend call failed; `kind` says whether waiting can fix it.
    #[error("{operation} failed: {source}")]
    Backend {
        operation: String,
        kind: FailureKind,
        #[source]
        source: BoxError,
    },

    /// The name is not a table of this warehouse.
    #[error(
        "unknown table `{table}`; known tables are {known}; run `migrate` with its schema first"
    )]
    UnknownTable { table: String, known: String },
}

impl WarehouseError {
    /// Whether waiting can fix this error (see [`FailureKind`]).
    pub fn kind(&self) -> FailureKind {
        match self {
            WarehouseError::Backend { kind, .. } => *kind,
            WarehouseError::Lake { .. } => FailureKind::Transient,
            _ => FailureKind::Config,
        }
    }
}

/// Result with [`WarehouseError`].
pub type Result<T, E = WarehouseError> = std::result::Result<T, E>;

/// Shortens SQL for error messages: one line, at most ~300 characters.
pub(crate) fn sql_excerpt(sql: &str) -> String {
    let one_line = sql.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() <= 300 {
        one_line
    } else {
        let cut: String = one_line.chars().take(300).collect();
        format!("{cut}…")
    }
}
