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
//! The dedup window is one per stream, unless a source names a batch's partition
//! (`Checkpoint::dedup_scope`: Kinesis shards under leases): then each partition has its own
//! window, started from the partition's recent ids. A commit the writer reports as `ShardFatal`
//! (the partition cannot go on in this process) drops that batch and the run goes on.
//!
//! This crate does not know where bytes come from beyond [`source::RecordSource`] (files and
//! stdin, Kinesis) nor how the warehouse loads (the loader reads the committed manifests).

mod config;
mod dedup;
pub mod metrics;
pub mod replay;
mod run;
pub mod source;
mod summary;
mod writer;

pub use config::PipelineOptions;
pub use dedup::DedupWindow;
pub use run::{Pipeline, Progress};
pub use source::{Checkpoint, DedupScope, Lines, RecordSource, SourceBatch, SourceError};
pub use summary::StreamSummary;
pub use writer::{BatchWriter, CommitError, ErrorKind, LakeWriter, ProcessedBatch};

/// Errors that stop a run. Bad records never do: they become dead letters.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Source(#[from] SourceError),
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
    /// The writer could not commit a batch; `error.kind` says what the run does about it.
    #[error("committing positions {first}..={last} of {source_name} to the lake: {error}")]
    Commit {
        source_name: String,
        first: String,
        last: String,
        #[source]
        error: CommitError,
    },
    #[error("replaying dead-letter file {path}: {message}")]
    Replay { path: String, message: String },
    #[error("invalid option {field}: {message}")]
    Option {
        field: &'static str,
        message: String,
    },
    #[error("internal error: {0}")]
    Internal(String),
    /// A batch's records are not all accounted for; it was not committed.
    #[error("counts do not reconcile for {stream} (batch of {source_name} positions {first}..={last}): read {read} != written {written} + duplicates {duplicates} + filtered {filtered} + dead-lettered {dead}. The batch was not committed and the run stops; this is a bug, please report it with this message")]
    Reconcile {
        stream: String,
        source_name: String,
        first: String,
        last: String,
        read: u64,
        written: u64,
        duplicates: u64,
        filtered: u64,
        dead: u64,
    },
}

#[cfg(test)]
mod reconcile_tests;
#[cfg(test)]
mod scope_tests;
#[cfg(test)]
mod tests;
