//! The crate's error type. Each variant says what failed and, where it helps, what to do.

use etl_warehouse::FailureKind;

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

    /// A batch's files have columns this version's schema does not know: they were written by
    /// a newer version. Waiting for that version (or `etl warehouse migrate` with it) fixes it.
    #[error("batch {batch_id} of {table} has columns this version's schema lacks ({columns}): it was written by a newer version; waiting for that version to load it (deploy it, or run its `etl warehouse migrate`)")]
    NewerBatch {
        table: String,
        batch_id: String,
        columns: String,
    },

    /// Listing or reading the lake's commit records failed.
    #[error("reading the lake: {0}")]
    Lake(String),

    /// The Data API answered something this client cannot read.
    #[error("unexpected Data API answer for {id}: {message}")]
    Protocol { id: String, message: String },

    /// A call through the warehouse interface (`etl_warehouse::LoadTarget`) failed.
    #[error(transparent)]
    Warehouse(#[from] etl_warehouse::WarehouseError),
}

/// Parts of warehouse error messages that say the batch's data does not fit the table, in
/// Redshift's words (COPY, Spectrum scan, MERGE/INSERT) and PostgreSQL's (the stand-in and the
/// wire backend). Matched case-insensitively.
const DATA_ERRORS: &[&str] = &[
    "string length exceeds ddl length",
    "value too long for type",
    "the length of the data column",
    "spectrum scan error",
    "check 'stl_load_errors'",
    "incompatible parquet schema",
    "invalid input syntax",
    "violates not-null constraint",
    "null value in column",
    "numeric field overflow",
    "out of range for type",
    "invalid byte sequence",
    "column counts differ",
    "found multiple matches to update the same tuple",
];

impl RedshiftError {
    /// Whether waiting can fix this error: a statement that failed because of the batch's data
    /// is [`FailureKind::Data`], configuration and table-shape errors are
    /// [`FailureKind::Config`], everything else (Data API, S3, timeouts, other statement
    /// failures such as a paused cluster) is [`FailureKind::Transient`].
    pub fn kind(&self) -> FailureKind {
        match self {
            RedshiftError::InvalidIdentifier { .. }
            | RedshiftError::InvalidLiteral { .. }
            | RedshiftError::Config(_)
            | RedshiftError::UnknownTable { .. }
            | RedshiftError::NotInS3 { .. }
            | RedshiftError::ColumnMismatch { .. } => FailureKind::Config,
            RedshiftError::StatementFailed { message, .. } => {
                let message = message.to_lowercase();
                if DATA_ERRORS.iter().any(|m| message.contains(m)) {
                    FailureKind::Data
                } else {
                    FailureKind::Transient
                }
            }
            RedshiftError::Warehouse(e) => e.kind(),
            RedshiftError::Aws { .. }
            | RedshiftError::Timeout { .. }
            | RedshiftError::Lake(_)
            | RedshiftError::NewerBatch { .. }
            | RedshiftError::Protocol { .. } => FailureKind::Transient,
        }
    }

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

/// Wraps an error of this crate as the warehouse seam's error, keeping its [`FailureKind`]
/// (an error that came through the seam is passed on as it is).
pub(crate) fn to_warehouse(operation: &str, err: RedshiftError) -> etl_warehouse::WarehouseError {
    match err {
        RedshiftError::Warehouse(e) => e,
        err => etl_warehouse::WarehouseError::Backend {
            operation: sql_excerpt(operation),
            kind: err.kind(),
            source: Box::new(err),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed(message: &str) -> RedshiftError {
        RedshiftError::StatementFailed {
            id: "1".into(),
            status: "FAILED".into(),
            message: message.into(),
            sql: "COPY".into(),
        }
    }

    #[test]
    fn data_errors_are_told_from_transient_ones() {
        for m in [
            "ERROR: String length exceeds DDL length",
            "ERROR: value too long for type character varying(65535)",
            "ERROR: Spectrum Scan Error. Check 'stl_load_errors' system table for details.",
            "ERROR: null value in column \"event_id\" violates not-null constraint",
        ] {
            assert_eq!(failed(m).kind(), FailureKind::Data, "{m}");
        }
        for m in [
            "ERROR: Cluster is paused",
            "ERROR: could not connect to server",
            "ERROR: terminating connection due to administrator command",
        ] {
            assert_eq!(failed(m).kind(), FailureKind::Transient, "{m}");
        }
        assert_eq!(
            RedshiftError::Config("x".into()).kind(),
            FailureKind::Config
        );
        let wrapped = to_warehouse("load b1", failed("ERROR: value too long for type x"));
        assert_eq!(wrapped.kind(), FailureKind::Data);
        assert!(wrapped.to_string().contains("value too long"), "{wrapped}");
    }
}
