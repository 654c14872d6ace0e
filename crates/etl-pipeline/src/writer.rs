//! Making a processed batch durable: the [`BatchWriter`] seam, its typed error, and the
//! pipeline's own writer for sources with line checkpoints ([`LakeWriter`]).

use crate::source::{Checkpoint, Lines};
use async_trait::async_trait;
use etl_lake::catalog::Catalog;
use etl_lake::{BatchCommit, BatchId, BatchSource, DeadLetter, EncodedFile, Lake, PartitionValues};
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

/// A processed batch, ready to be made durable: what the pipeline made of the records at
/// `checkpoint`.
#[derive(Debug)]
pub struct ProcessedBatch {
    /// Encoded Parquet files, one or more per partition.
    pub files: Vec<EncodedFile>,
    /// Rejected records; `source.position` is the record's position from the checkpoint.
    pub dead_letters: Vec<DeadLetter>,
    /// `dt` of the dead-letter file.
    pub dead_letter_dt: String,
    /// Where the records are in the source, as the source made it: the writer commits it with
    /// the data.
    pub checkpoint: Box<dyn Checkpoint>,
    /// Version of the stream schema the batch was validated and encoded with (recorded in the
    /// batch's manifest).
    pub schema_version: u32,
}

/// What the run does about a failed commit. The rule, in one place:
/// - `Retryable`: a service was unavailable or throttled (S3, Glue); the same batch may be
///   committed again later and the delivery protocol makes that safe;
/// - `ShardFatal`: this partition of the source cannot go on here — another writer owns it
///   (fenced) or its stored positions are inconsistent — but other partitions can;
/// - `RunFatal`: anything else (configuration, permissions, a bug): stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    Retryable,
    ShardFatal,
    RunFatal,
}

/// A commit that failed, with what to do about it.
#[derive(Debug, thiserror::Error)]
#[error("{error}")]
pub struct CommitError {
    /// What the run does about it.
    pub kind: ErrorKind,
    /// What failed.
    #[source]
    pub error: Box<dyn std::error::Error + Send + Sync>,
}

impl CommitError {
    /// A failure of `kind`.
    pub fn new(
        kind: ErrorKind,
        error: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        CommitError {
            kind,
            error: error.into(),
        }
    }
}

/// Makes processed batches durable: data files, dead letters, manifest, catalog partitions and
/// the source's checkpoint. The Kinesis consumer commits through the per-shard exactly-once
/// protocol of `docs/delivery.md`; files use [`LakeWriter`].
#[async_trait]
pub trait BatchWriter: Send + Sync {
    /// Writes `batch` of `stream` and returns its manifest. Called in source order, one batch
    /// at a time.
    async fn write(&self, stream: &str, batch: ProcessedBatch) -> Result<BatchCommit, CommitError>;
}

/// The writer of sources whose checkpoints are [`Lines`] (files, stdin, dead-letter replays):
/// batch id `<source tag>-<first line>-<last line>`, so writing the same input again rewrites
/// the same objects; new partitions go to the catalog.
pub struct LakeWriter {
    lake: Lake,
    catalog: Arc<dyn Catalog>,
    tag: String,
    source_name: String,
    known_partitions: Mutex<BTreeSet<PartitionValues>>,
}

impl LakeWriter {
    /// A writer for the source named `source_name` with tag `tag`.
    pub fn new(lake: Lake, catalog: Arc<dyn Catalog>, tag: &str, source_name: &str) -> Self {
        LakeWriter {
            lake,
            catalog,
            tag: tag.to_string(),
            source_name: source_name.to_string(),
            known_partitions: Mutex::new(BTreeSet::new()),
        }
    }
}

#[async_trait]
impl BatchWriter for LakeWriter {
    async fn write(&self, stream: &str, batch: ProcessedBatch) -> Result<BatchCommit, CommitError> {
        let fatal = |e: String| CommitError::new(ErrorKind::RunFatal, e);
        let lines = batch.checkpoint.into_any().downcast::<Lines>().map_err(|_| {
            fatal(format!(
                "the lake writer commits batches of line-numbered sources; {} needs a writer of its own",
                self.source_name
            ))
        })?;
        let (first, last) = lines.bounds();
        let commit = self
            .lake
            .write_batch(
                stream,
                &BatchId::new(&self.tag, first, last),
                BatchSource {
                    name: &self.source_name,
                    first,
                    last,
                    schema_version: Some(batch.schema_version),
                },
                batch.files,
                &batch.dead_letters,
                &batch.dead_letter_dt,
            )
            .await
            .map_err(|e| CommitError::new(ErrorKind::RunFatal, e))?;
        let new: Vec<PartitionValues> = {
            let mut known = self
                .known_partitions
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            commit
                .files
                .iter()
                .map(|f| f.partition.clone())
                .filter(|p| known.insert(p.clone()))
                .collect()
        };
        if !new.is_empty() {
            self.catalog
                .add_partitions(stream, &new)
                .await
                .map_err(|e| CommitError::new(ErrorKind::RunFatal, e))?;
        }
        Ok(commit)
    }
}
