//! The warehouse: where the lake tables are queried and the curated views live.
//!
//! This crate owns
//! - the curated view definitions in `queries/views/*.sql` ([`ViewDef`], [`load_views`],
//!   [`embedded_views`]): one SELECT per file, sorted so views come after the views they read;
//! - the [`Warehouse`] seam every backend implements (`migrate`, `load`, `query`);
//! - [`LocalWarehouse`], the DataFusion backend that reads the Parquet lake in place
//!   (`<lake>/<table>/dt=YYYY-MM-DD/hour=HH/*.parquet`, compacted partitions from their
//!   current generation: [`partitions`]) and serves the views;
//! - [`batches_to_csv`], results in PostgreSQL's CSV layout, used by the golden tests;
//! - [`LoadTarget`], what a continuous loader needs of a warehouse (its load ledger, the
//!   idempotent load of one batch, the record of a table's permanent failure), so that the
//!   loader is written once against this interface, whatever the backend.
//!
//! Errors ([`WarehouseError`]) carry no engine's types and say whether waiting can fix them
//! ([`FailureKind`]).
//!
//! Views end with an `ORDER BY` over their grain, but engines need not keep a view's order when
//! selecting from it (DataFusion drops it), so [`LocalWarehouse::view_rows`] re-applies it.
//!
//! It does not write the lake (`etl-lake` does), transform events (`etl-transform`), talk to
//! AWS (Redshift and Glue backends come with `etl-aws`), or dedupe events: the views count
//! calls with `COUNT(DISTINCT call_id)` but otherwise trust the lake to hold each event once.

mod csv;
mod error;
mod local;
pub mod partitions;
mod views;

pub use crate::csv::batches_to_csv;
pub use error::{BoxError, FailureKind, Result, WarehouseError};
pub use local::{LakeLocation, LocalWarehouse};
pub use views::{check_references, embedded_views, load_views, order_views, ViewDef};

use arrow::array::RecordBatch;
use async_trait::async_trait;
use etl_schema::StreamSchema;
use serde::{Deserialize, Serialize};

/// A warehouse backend: the local DataFusion one today, Redshift (Data API) and PostgreSQL
/// (wire protocol) later.
#[async_trait]
pub trait Warehouse: Send + Sync {
    /// Creates or updates the tables of `schemas` and (re)creates `views` in dependency order.
    async fn migrate(&self, schemas: &[StreamSchema], views: &[ViewDef]) -> Result<()>;

    /// Makes the lake files of one batch visible in the warehouse (a `COPY` for Redshift).
    /// Must be idempotent per `batch_id`: a retried batch is not loaded twice.
    async fn load(&self, request: &LoadRequest) -> Result<()>;

    /// Runs one read-only SQL statement and collects its result.
    async fn query(&self, sql: &str) -> Result<Vec<RecordBatch>>;
}

/// What a continuous loader needs of a warehouse (implemented by the Redshift Data API
/// backend and by the PostgreSQL-wire test backend).
#[async_trait]
pub trait LoadTarget: Send + Sync {
    /// The batch ids of `table` in the load ledger.
    async fn loaded_batches(&self, table: &str) -> Result<std::collections::BTreeSet<String>>;

    /// Loads one batch exactly once: its rows and its ledger row in one transaction, nothing
    /// if the ledger already has it.
    async fn load_batch(&self, request: &LoadRequest) -> Result<LoadOutcome>;

    /// Records that `table` stopped loading at a batch its data cannot load into (replacing
    /// an earlier record of the table), or with `None` clears the table's record. The record
    /// lives in the warehouse so that `etl warehouse status` shows it from any process.
    async fn record_failure(&self, table: &str, failure: Option<&LoadFailure>) -> Result<()>;

    /// The recorded failures, one per stopped table.
    async fn failures(&self) -> Result<Vec<LoadFailure>>;
}

/// What [`LoadTarget::load_batch`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadOutcome {
    /// The batch was copied and merged.
    Loaded,
    /// The ledger already had the batch; nothing ran.
    AlreadyLoaded,
}

/// A table whose loading stopped at a batch its data cannot load into.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoadFailure {
    /// The table.
    pub table: String,
    /// The batch that failed (the loader does not go past it).
    pub batch_id: String,
    /// The warehouse's error message.
    pub message: String,
    /// When it failed (UTC, `YYYY-MM-DD HH:MM:SS`).
    pub failed_at: String,
}

/// Lake files of one pipeline batch to load into one table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoadRequest {
    /// Lake table (stream name), e.g. `call_events`.
    pub table: String,
    /// Id of the pipeline batch; the idempotency key of the load.
    pub batch_id: String,
    /// The Parquet files the batch wrote.
    pub files: Vec<LoadFile>,
}

/// One Parquet file of a [`LoadRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoadFile {
    /// Where the file is: `s3://bucket/key` or a local path / `file://` URL.
    pub uri: String,
    /// Rows in the file.
    pub rows: u64,
    /// Size of the file in bytes.
    pub bytes: u64,
}
