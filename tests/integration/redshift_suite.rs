//! Redshift (issue #5): the curated views on PostgreSQL, the Data API stand-in through the SDK,
//! migrate, and the idempotent batch load. Run with `cargo test -p etl-integration-tests -- redshift_suite`.

#[path = "redshift_data_api.rs"]
pub(crate) mod data_api;
#[path = "redshift_load.rs"]
mod load;
#[path = "redshift_views.rs"]
pub(crate) mod views;

/// The hand-made fixture of `queries/views/fixtures` as Parquet (shared with etl-warehouse's tests).
#[path = "../../crates/etl-warehouse/tests/support/mod.rs"]
pub(crate) mod fixture;
#[path = "redshift_kinesis_e2e.rs"]
mod kinesis_e2e;
#[path = "redshift_loader.rs"]
pub(crate) mod loader_e2e;
#[path = "redshift_pgwire.rs"]
mod pgwire;
#[path = "redshift_poison.rs"]
mod poison;
