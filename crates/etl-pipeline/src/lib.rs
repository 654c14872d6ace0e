//! The pipeline: records from a source, through validate → transform → lake → catalog, with a
//! run summary that reconciles every record.
//!
//! ```text
//! source (lines) ──► batches ──► [decode+validate ─► transform SQL ─► dedup window (in order) ─► Parquet encode] × N
//!                                                                                   │ in batch order
//!                                                  lake files + dead letters + commit record ◄─┘ ─► catalog partitions
//! ```
//!
//! Batches are processed in parallel (one task per batch, as many as `parallelism` across all
//! the streams a pipeline runs at once) and
//! committed strictly in source order; the dedup window is applied in source order too, so the
//! output is the same however the work was scheduled.
//!
//! This crate does not know where bytes come from beyond [`source::RecordSource`] (files and
//! stdin now, Kinesis later) nor how the warehouse loads (see [`CommitSink`]).

mod config;
mod dedup;
pub mod metrics;
pub mod replay;
mod run;
pub mod source;
mod summary;

pub use config::PipelineOptions;
pub use dedup::DedupWindow;
pub use run::{BatchWriter, CommitSink, Pipeline, ProcessedBatch, Progress};
pub use summary::StreamSummary;

/// Errors that stop a run. Bad records never do: they become dead letters.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("reading {source_name} failed: {error}")]
    Read {
        source_name: String,
        #[source]
        error: std::io::Error,
    },
    #[error("unknown stream `{0}`: it has no schema (known: {1})")]
    UnknownStream(String, String),
    #[error(transparent)]
    Decode(#[from] etl_decode::DecodeError),
    #[error(transparent)]
    Transform(#[from] etl_transform::TransformError),
    #[error(transparent)]
    Lake(#[from] etl_lake::LakeError),
    #[error(transparent)]
    Catalog(#[from] etl_lake::catalog::CatalogError),
    #[error("loading batch {batch} into the warehouse failed: {message}")]
    Load { batch: String, message: String },
    #[error("delivering positions {first}..={last} of {source_name} to the lake: {message}")]
    Delivery {
        source_name: String,
        first: u64,
        last: u64,
        message: String,
    },
    #[error("replaying dead-letter file {path}: {message}")]
    Replay { path: String, message: String },
    #[error("after committing batch {batch}: {message}")]
    CommitHook { batch: String, message: String },
    #[error("invalid option {field}: {message}")]
    Option {
        field: &'static str,
        message: String,
    },
    #[error("internal error: {0}")]
    Internal(String),
    #[error("counts do not reconcile for {stream}: read {read} != written {written} + duplicates {duplicates} + dead-lettered {dead}; this is a bug, please report it")]
    Reconcile {
        stream: String,
        read: u64,
        written: u64,
        duplicates: u64,
        dead: u64,
    },
}

#[cfg(test)]
mod tests;
