//! Lake compaction: merges the small Parquet files of closed partition-hours into a few files
//! near a target size, behind an atomic catalog switch, so readers never notice.
//!
//! **What it does** (`docs/compaction.md` has the protocol and its crash points). For every
//! partition-hour of a table that closed more than `older_than` ago and is not compact yet:
//! 1. reads its files (the current compacted generation first, then the partition's files not
//!    yet folded in, in order of arrival: object time, then name), drops repeated `event_id`s
//!    (first arrival wins, each dropped row counted), orders the rows by
//!    `(occurred_at, event_id)` and writes generation `n` under
//!    `_compacted/<table>/dt=…/hour=…/g=<n>/` (files near `target_file_bytes`, row groups of
//!    `row_group_rows`);
//! 2. commits by writing the partition state object `_catalog/partitions/<table>/dt=…/hour=….json`
//!    (one atomic PUT): from then on the local engine reads generation `n` only
//!    (`etl_warehouse::partitions`); with a [`PartitionLocations`] backend (Glue) it then points
//!    the catalog partition's location at the generation;
//! 3. deletes what the switch retired (older generations, the folded-in files) once
//!    `grace_period` has passed, and a folded-in file only once every batch that wrote it is in
//!    the warehouse's load ledger ([`LoadGate`]): the loader copies a batch's files by the paths
//!    in its manifest.
//!
//! A crash anywhere leaves every partition readable and complete, and the next run finishes the
//! job. Late files arriving for a compacted hour stay where the writer puts them and are folded
//! into the next generation by the next run; a folded-in file written again after the switch (a
//! backfill) is read first, so its rows replace the generation's.
//!
//! **What it does not do.** It does not write events, load the warehouse or change table
//! schemas; it does not lock: run one compactor per lake at a time (a scheduled job). Tables
//! whose Glue definition uses partition projection cannot be compacted (Athena would compute
//! the original location and miss the compacted files); [`PartitionLocations::check_table`]
//! refuses them.

mod glue;
mod merge;
mod plan;
mod run;
mod state;
#[cfg(test)]
mod tests;

pub use glue::GlueLocations;
pub use plan::{parse_duration, Action, InputFile, PartitionPlan, SkipReason};
pub use run::{CompactOptions, Compactor, CrashPoint, LoadGate, PartitionLocations, Report};
pub use state::{Covered, PartitionState, Retired, StateFile};

/// Errors of compaction.
#[derive(Debug, thiserror::Error)]
pub enum CompactError {
    #[error(transparent)]
    Lake(#[from] etl_lake::LakeError),
    #[error("reading {path}: {message}")]
    Read { path: String, message: String },
    #[error("file {path} has column `{column}`, which the schema of `{table}` does not have; sync the schema (etl catalog sync) before compacting")]
    UnknownColumn {
        path: String,
        table: String,
        column: String,
    },
    #[error("partition state {path} is corrupt: {message}; restore it from a backup (the partition's files are untouched)")]
    CorruptState { path: String, message: String },
    #[error("catalog: {0}")]
    Catalog(String),
    #[error("warehouse load ledger: {0}")]
    Ledger(String),
    #[error("invalid option {field}: {message}")]
    Option {
        field: &'static str,
        message: String,
    },
    #[error("injected crash at {0:?}")]
    Crash(CrashPoint),
    #[error("internal Arrow error: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
}
