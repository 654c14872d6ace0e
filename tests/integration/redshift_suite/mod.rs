//! Redshift (issue #5): the curated views on PostgreSQL, the Data API stand-in through the SDK,
//! migrate, and the idempotent batch load. Run with `cargo test -p etl-integration-tests -- redshift_suite`.

pub(crate) mod data_api;
mod load;
pub(crate) mod views;

mod evolution;
/// The hand-made fixture of `queries/views/fixtures` as Parquet (shared with etl-warehouse's tests).
#[path = "../../../crates/etl-warehouse/tests/support/mod.rs"]
pub(crate) mod fixture;
mod grouped;
mod kinesis_e2e;
pub(crate) mod loader_e2e;
mod outage;
mod pgwire;
mod poison;
