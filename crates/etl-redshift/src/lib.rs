//! The Redshift warehouse backend.
//!
//! **What it does.**
//! - [`ddl`]: table DDL from `schemas/` (column order = Parquet order, because `COPY ... FORMAT
//!   AS PARQUET` maps by position; `DISTSTYLE AUTO`, `SORTKEY` led by `occurred_at`), the load
//!   ledger, `ALTER TABLE ADD COLUMN` for columns a table lacks, and the curated views
//!   (dropped and recreated in dependency order in one transaction);
//! - [`ident`]: every identifier and literal taken from configuration is validated and quoted;
//!   a hostile name such as `x"; drop table y; --` is refused;
//! - [`load`]: the idempotent load of one committed lake batch — the COPY manifest (with
//!   `content_length` per file) and one transaction of: temporary staging table in Parquet
//!   order, `COPY ... MANIFEST`, dedup on `event_id`, `MERGE` into the target on `event_id`,
//!   a ledger row (inserted only if absent). Loading a batch twice changes nothing, and a
//!   failed load leaves nothing behind;
//! - [`data_api`]: the Redshift Data API client (ExecuteStatement with parameters,
//!   BatchExecuteStatement as one transaction, DescribeStatement polled with backoff until
//!   FINISHED/FAILED/ABORTED with Redshift's error message, GetStatementResult paged);
//! - [`RedshiftDataWarehouse`]: the `etl_warehouse::Warehouse` seam on top of them;
//! - [`loader`]: the continuous loader of the lake's committed batches (`_commits/`), which
//!   retries with backoff while the warehouse is unavailable and never skips a batch.
//!
//! **What it does not do.** It writes no lake files (only the load manifests), makes no AWS SDK retries of its own
//! (`etl-aws` configures them; the only loop here is the batch-load retry of a *failed
//! transaction*). [`PgWireWarehouse`] is the same seam over the PostgreSQL wire protocol (no TLS).

pub mod data_api;
pub mod ddl;
mod error;
pub mod ident;
pub mod load;
pub mod loader;
pub mod metrics;
pub mod pgwire;
pub mod status;
mod warehouse;

pub use data_api::{DataApi, DataApiTarget, PollSettings, ResultSet};
pub use ddl::{SqlFlavor, TableDef, LEDGER_TABLE};
pub use error::RedshiftError;
pub use etl_warehouse::{LoadFailure, LoadOutcome, LoadTarget};
pub use ident::Ident;
pub use load::{Manifest, ManifestEntry};
pub use loader::{LoadSummary, Loader, LoaderSettings};
pub use pgwire::PgWireWarehouse;
pub use status::{warehouse_status, TableStatus};
pub use warehouse::{RedshiftDataWarehouse, RedshiftSettings};
