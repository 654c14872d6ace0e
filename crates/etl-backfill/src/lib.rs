//! `etl backfill`: re-processes history through the **current** schema and transform and puts
//! the result where the old result was, so running it twice gives what running it once gives
//! (`docs/backfill.md` has the protocol, its guarantees and its limits).
//!
//! **What it does.**
//! - From the **raw archive** (`raw/<table>/dt=…/hour=…/<batch>.ndjson.gz`, written by
//!   `etl run`): [`plan::plan_raw`] selects the committed batches whose first record arrived in
//!   `[from, to)`, in units of one shard and one arrival hour; [`source::RawSource`] reads them
//!   back batch by batch, with each unit's dedup window seeded from the shard's batches before
//!   it (as the consumer's was), and [`writer::Rewriter`] rewrites each batch **under its own
//!   names** (same data files, same dead-letter file) followed by a revised manifest
//!   `_commits/<table>/<batch>@<revision>.json`, then removes what the old version had and the
//!   new one has not. The warehouse loader loads the revised manifest as a new load id (a
//!   re-load: MERGE on `event_id`, one transaction).
//! - From **historical files** (NDJSON, gzip or not, in a local folder or under an `s3://`
//!   prefix): [`plan::plan_files`] lists them and each file is ingested with deterministic
//!   batch ids (file tag + line range), written and revised the same way.
//! - A revision is a hash of the transform fingerprint and the batch id, so a batch already
//!   written by this transform is recognised and not written again: a second identical run
//!   changes nothing, and a run killed at any point resumes with the rest.
//! - [`plan::Plan::slice`] splits the work into independent units (`--task-index i
//!   --task-count n`): two slices never write the same object.
//!
//! **What it does not do.** It does not load the warehouse (the loader does, from the revised
//! manifests), does not compact, and does not rewrite the newest batch of a shard (the
//! consumer's recovery checks that batch's bytes against its commit record).

pub mod kinesis;
pub mod plan;
pub mod run;
pub mod source;
pub mod writer;

#[cfg(test)]
mod tests;

pub use plan::{parse_instant, FileInput, Plan, RawBatchRef, SourceSpec, Unit};
pub use run::{revision, Backfill, BackfillSummary};

/// Errors of a backfill.
#[derive(Debug, thiserror::Error)]
pub enum BackfillError {
    #[error(transparent)]
    Lake(#[from] etl_lake::LakeError),
    #[error(transparent)]
    Delivery(Box<etl_lake::delivery::DeliveryError>),
    #[error(transparent)]
    Pipeline(Box<etl_pipeline::PipelineError>),
    #[error("{path} is not a commit manifest: {message}")]
    Manifest { path: String, message: String },
    #[error("invalid option {field}: {message}")]
    Option {
        field: &'static str,
        message: String,
    },
    #[error("reading {path}: {message}")]
    Read { path: String, message: String },
}

impl From<etl_pipeline::PipelineError> for BackfillError {
    fn from(e: etl_pipeline::PipelineError) -> Self {
        BackfillError::Pipeline(Box::new(e))
    }
}

impl From<etl_lake::delivery::DeliveryError> for BackfillError {
    fn from(e: etl_lake::delivery::DeliveryError) -> Self {
        BackfillError::Delivery(Box::new(e))
    }
}
