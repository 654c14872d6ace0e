//! The crate's error type. Each variant says what failed and, where it helps, what to do.

/// Errors generating Redshift SQL or running it through the Data API.
#[derive(Debug, thiserror::Error)]
pub enum RedshiftError {
    /// A configured name is not a safe SQL identifier.
    #[error("invalid {what} `{value}`: {reason}")]
    InvalidIdentifier {
        what: String,
        value: String,
        reason: String,
    },

    /// A configured value cannot be a safe SQL string literal.
    #[error("invalid {what} `{value}`: {reason}")]
    InvalidLiteral {
        what: String,
        value: String,
        reason: String,
    },

    /// The settings cannot work (e.g. neither a cluster nor a workgroup).
    #[error("invalid Redshift setting: {0}")]
    Config(String),

    /// The load names a table the warehouse has no schema for.
    #[error("unknown table `{table}`; known tables are {known}; run `etl warehouse migrate` with its schema first")]
    UnknownTable { table: String, known: String },

    /// A load file is not in S3 (Redshift COPY reads S3 only).
    #[error(
        "load file {uri} of batch {batch_id} is not an s3:// URL; Redshift can COPY from S3 only"
    )]
    NotInS3 { uri: String, batch_id: String },

    /// An existing table's columns are not the schema's columns.
    #[error("table {table} has columns {found:?} where the schema expects {expected:?}; fix the table by hand (migrate only adds columns)")]
    ColumnMismatch {
        table: String,
        found: Vec<String>,
        expected: Vec<String>,
    },

    /// A Data API or S3 call failed (the SDK already retried it).
    #[error("{operation} failed: {message}")]
    Aws { operation: String, message: String },

    /// A statement ended `FAILED` or `ABORTED`; `message` is Redshift's error text.
    #[error("statement {id} {status}: {message}; SQL: {sql}")]
    StatementFailed {
        id: String,
        status: String,
        message: String,
        sql: String,
    },

    /// A statement did not finish within the configured time.
    #[error("statement {id} still {status} after {waited_ms} ms; SQL: {sql}")]
    Timeout {
        id: String,
        status: String,
        waited_ms: u128,
        sql: String,
    },

    /// Listing or reading the lake's commit records failed.
    #[error("reading the lake: {0}")]
    Lake(String),

    /// The Data API answered something this client cannot read.
    #[error("unexpected Data API answer for {id}: {message}")]
    Protocol { id: String, message: String },
}

impl RedshiftError {
    pub(crate) fn aws(operation: &str, err: &(dyn std::error::Error + 'static)) -> Self {
        RedshiftError::Aws {
            operation: operation.to_string(),
            message: etl_aws::describe_error(err),
        }
    }
}

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

/// Wraps an error of this crate as the warehouse seam's error (it has no backend variant, so
/// the error travels as an external DataFusion error inside `WarehouseError::Query`).
pub(crate) fn to_warehouse(sql: &str, err: RedshiftError) -> etl_warehouse::WarehouseError {
    etl_warehouse::WarehouseError::Query {
        sql: sql_excerpt(sql),
        source: datafusion::error::DataFusionError::External(Box::new(err)),
    }
}
