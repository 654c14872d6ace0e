//! Ad-hoc SQL over the lake: `etl query` on Amazon Athena or locally with DataFusion.
//!
//! **What it does.**
//! - [`athena::AthenaEngine`] runs one statement on Athena: `StartQueryExecution` (workgroup,
//!   database, output location, a fresh `ClientRequestToken` so the SDK's retries of the call
//!   never start a second query, `?` parameters as `ExecutionParameters`), polls
//!   `GetQueryExecution` with the project's one backoff rule ([`etl_aws::backoff::Backoff`]),
//!   reads every page of `GetQueryResults` (the header row of the first page checked against
//!   `ColumnInfo` and skipped), turns the text cells into typed Arrow columns from `ColumnInfo`
//!   ([`results`]), reports data scanned and engine time, stops the query
//!   (`StopQueryExecution`) when the caller's cancel signal fires, and surfaces `FAILED` /
//!   `CANCELLED` with Athena's reason.
//! - [`local`] opens the lake (a local directory or `s3://bucket/prefix`) with DataFusion: the
//!   stream tables at the catalog's locations `<lake>/<table>/` with the Hive partition columns
//!   `dt` and `hour` (filters on them prune whole partitions before any file is read), plus the
//!   curated views.
//! - [`params`] binds `--param name=value` to the `{{name}}` placeholders of a query file: as
//!   quoted SQL literals for the local engine, as positional `?` + `ExecutionParameters` for
//!   Athena.
//! - [`named`] registers `queries/athena/*.sql` as Athena named queries, idempotently (it lists
//!   the workgroup's named queries first).
//! - [`output`] prints results as a table, CSV or JSON, the same for both engines.
//! - [`dialect`] checks that a query stays inside the SQL subset both Athena (Trino) and
//!   DataFusion accept.
//!
//! **What it does not do.** It builds no AWS client (see `etl-aws`), writes nothing to the
//! lake or the catalog, adds no retry loop around AWS calls (the SDK's standard retry mode is
//! the only one; polling waits are not retries), and does not translate SQL between dialects:
//! the files in `queries/athena/` are written in the common subset instead.

pub mod athena;
pub mod dialect;
mod error;
pub mod local;
pub mod named;
pub mod output;
pub mod params;
pub mod results;

pub use error::QueryError;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;

/// What one query returned, from either engine.
#[derive(Debug, Clone)]
pub struct QueryResult {
    /// The result's columns (also for zero rows).
    pub schema: SchemaRef,
    /// The rows.
    pub batches: Vec<RecordBatch>,
    /// Athena's statistics; `None` for the local engine.
    pub athena: Option<athena::ExecutionStats>,
}

impl QueryResult {
    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.batches.iter().map(RecordBatch::num_rows).sum()
    }
}
