//! Errors of `etl-query`.

/// Why a query could not be run or its result not read.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// An Athena API call failed (after the SDK's retries).
    #[error("Athena {operation} failed: {message}")]
    Athena {
        /// The API operation, e.g. `StartQueryExecution`.
        operation: &'static str,
        /// The service's error code and message, or the transport error.
        message: String,
    },
    /// Athena ran the query and it failed.
    #[error("Athena query {execution_id} FAILED: {reason}")]
    Failed {
        /// The `QueryExecutionId`.
        execution_id: String,
        /// `StateChangeReason` (and the `AthenaError` type/category when present).
        reason: String,
    },
    /// The query was cancelled (by us on Ctrl-C, or by someone else).
    #[error("Athena query {execution_id} was CANCELLED: {reason}")]
    Cancelled {
        /// The `QueryExecutionId`.
        execution_id: String,
        /// Who cancelled it, or Athena's `StateChangeReason`.
        reason: String,
    },
    /// The query did not finish in the configured time; it was stopped.
    #[error("Athena query {execution_id} did not finish within {seconds} s (athena.timeout_secs); it was stopped")]
    TimedOut {
        /// The `QueryExecutionId`.
        execution_id: String,
        /// The limit.
        seconds: u64,
    },
    /// Athena answered something the client cannot use.
    #[error("Athena query {execution_id}: {message}")]
    BadResult {
        /// The `QueryExecutionId`.
        execution_id: String,
        /// What is wrong.
        message: String,
    },
    /// A query file or folder could not be read.
    #[error("{0}")]
    File(String),
    /// A `--param` or `{{placeholder}}` problem.
    #[error("{0}")]
    Params(String),
    /// The local engine refused or failed the query.
    #[error(transparent)]
    Local(#[from] etl_warehouse::WarehouseError),
    /// The lake could not be opened.
    #[error("lake: {0}")]
    Lake(String),
    /// A query file is outside the SQL subset both engines accept.
    #[error("{file}: {message}")]
    Dialect {
        /// The file (or `<command line>`).
        file: String,
        /// What is not allowed and what to write instead.
        message: String,
    },
    /// Formatting the result failed.
    #[error("formatting the result: {0}")]
    Output(#[from] arrow::error::ArrowError),
}

/// `operation` failed with SDK error `err`.
pub(crate) fn sdk_err(
    operation: &'static str,
    err: &(dyn std::error::Error + 'static),
) -> QueryError {
    QueryError::Athena {
        operation,
        message: etl_aws::describe_error(err),
    }
}
