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

    /// Called once before a loader's first pass: e.g. adds the columns `tables` gained in the
    /// current schemas, so that batches carrying them can load. Default: nothing.
    async fn prepare(&self, tables: &[String]) -> Result<()> {
        let _ = tables;
        Ok(())
    }
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

/// Lake files of one pipeline batch, or of a group of batches loaded in one transaction, to
/// load into one table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoadRequest {
    /// Lake table (stream name), e.g. `call_events`.
    pub table: String,
    /// Id of the load: the pipeline batch's id (the idempotency key of a one-batch load), or
    /// for a group the id of its first batch with the group's size (names its manifest).
    pub batch_id: String,
    /// The Parquet files of every batch of the load.
    pub files: Vec<LoadFile>,
    /// The pipeline batches of a grouped load, one load-ledger row each. Empty for a one-batch
    /// load (then `batch_id` is the batch): use [`LoadRequest::ledger_rows`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub batches: Vec<LoadBatch>,
    /// The columns of the files, in file order, when known (every file of a load has the same
    /// columns); empty: the table's columns under the current schema. A batch written before
    /// the schema gained a column lacks it (COPY maps Parquet columns by position, so the
    /// warehouse loads such a batch with its own column list).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub columns: Vec<String>,
}

/// One pipeline batch of a grouped [`LoadRequest`]: its load-ledger row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoadBatch {
    /// Id of the pipeline batch.
    pub batch_id: String,
    /// Rows in its files.
    pub rows: u64,
    /// Number of its files.
    pub files: u64,
}

impl LoadRequest {
    /// A load of several batches of `table` in one transaction, in the given order. Its id is
    /// the first batch's id followed by `+<count>` (or that id alone for one batch).
    pub fn group(table: &str, batches: Vec<(String, Vec<LoadFile>)>) -> Self {
        let first = batches
            .first()
            .map(|(id, _)| id.clone())
            .unwrap_or_default();
        let batch_id = if batches.len() > 1 {
            format!("{first}+{}", batches.len())
        } else {
            first
        };
        let mut files = Vec::new();
        let mut rows = Vec::with_capacity(batches.len());
        for (id, batch_files) in batches {
            rows.push(LoadBatch {
                batch_id: id,
                rows: batch_files.iter().map(|f| f.rows).sum(),
                files: batch_files.len() as u64,
            });
            files.extend(batch_files);
        }
        LoadRequest {
            table: table.to_string(),
            batch_id,
            files,
            batches: rows,
            columns: Vec::new(),
        }
    }

    /// The load-ledger rows of this load: one per pipeline batch.
    pub fn ledger_rows(&self) -> Vec<LoadBatch> {
        if self.batches.is_empty() {
            vec![LoadBatch {
                batch_id: self.batch_id.clone(),
                rows: self.files.iter().map(|f| f.rows).sum(),
                files: self.files.len() as u64,
            }]
        } else {
            self.batches.clone()
        }
    }
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
