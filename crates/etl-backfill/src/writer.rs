//! [`Rewriter`]: writes a re-processed batch under the names of the batch it replaces, then its
//! revised manifest, then removes what only the old version had.

use crate::plan::read_manifest;
use crate::source::BackfillCheckpoint;
use async_trait::async_trait;
use etl_lake::catalog::Catalog;
use etl_lake::delivery::prepare_batch;
use etl_lake::{BatchCommit, Lake, LakeError, PartitionValues};
use etl_pipeline::{BatchWriter, CommitError, ErrorKind, ProcessedBatch};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// The writer of a backfill.
///
/// Order, so that a reader never sees an event twice and a crash anywhere is finished by a
/// rerun: (1) the data files and the dead-letter file, each an atomic PUT over the object of
/// the same name (a reader sees the old or the new version of each file, and a batch's events
/// are one per file); (2) new partitions to the catalog; (3) the revised manifest
/// `_commits/<stream>/<batch>@<revision>.json` (from here the batch counts as done and the loader
/// re-loads it); (4) the old version's files the new one does not have, and the old manifests.
pub struct Rewriter {
    lake: Lake,
    catalog: Arc<dyn Catalog>,
    rewritten: AtomicU64,
    removed: AtomicU64,
}

impl Rewriter {
    /// A writer into `lake`, registering new partitions in `catalog`.
    pub fn new(lake: Lake, catalog: Arc<dyn Catalog>) -> Self {
        Rewriter {
            lake,
            catalog,
            rewritten: AtomicU64::new(0),
            removed: AtomicU64::new(0),
        }
    }

    /// Batches rewritten so far.
    pub fn rewritten(&self) -> u64 {
        self.rewritten.load(Ordering::Relaxed)
    }

    /// Objects of old versions removed so far.
    pub fn removed(&self) -> u64 {
        self.removed.load(Ordering::Relaxed)
    }
}

fn lake_error(e: LakeError) -> CommitError {
    let kind = if e.is_transient() {
        ErrorKind::Retryable
    } else {
        ErrorKind::RunFatal
    };
    CommitError::new(kind, e)
}

fn fatal(e: impl std::fmt::Display) -> CommitError {
    CommitError::new(ErrorKind::RunFatal, e.to_string())
}

#[async_trait]
impl BatchWriter for Rewriter {
    async fn write(&self, stream: &str, batch: ProcessedBatch) -> Result<BatchCommit, CommitError> {
        let checkpoint = batch
            .checkpoint
            .into_any()
            .downcast::<BackfillCheckpoint>()
            .map_err(|_| fatal("the backfill writer got a batch of another source"))?;
        let t = checkpoint.target;
        let (files, mut manifest) = prepare_batch(
            stream,
            &t.batch_id,
            &t.source_name,
            t.positions,
            batch.files,
            &batch.dead_letters,
            &t.dead_letter_dt,
            None,
            Some(batch.schema_version),
        )
        .map_err(fatal)?;
        manifest.revision = Some(t.revision.clone());
        let revised = manifest.manifest_path();
        // A batch written by this revision already (files sources are re-read on resume).
        if t.old_manifests.contains(&revised) {
            return read_manifest(&self.lake, &revised).await.map_err(fatal);
        }
        let mut old: BTreeSet<String> = BTreeSet::new();
        let mut old_partitions: BTreeSet<PartitionValues> = BTreeSet::new();
        for m in &t.old_manifests {
            let commit = read_manifest(&self.lake, m).await.map_err(fatal)?;
            old.extend(commit.files.iter().map(|f| f.path.clone()));
            old_partitions.extend(commit.files.iter().map(|f| f.partition.clone()));
            old.extend(commit.dead_letter_file.clone());
        }
        let mut new: BTreeSet<String> = BTreeSet::new();
        let mut new_partitions: Vec<PartitionValues> = Vec::new();
        // prepare_batch puts the manifest last, under the unrevised name: replaced below.
        let data = files.len().saturating_sub(1);
        for f in files.into_iter().take(data) {
            if let Some(p) = &f.partition {
                if !old_partitions.contains(p) && !new_partitions.contains(p) {
                    new_partitions.push(p.clone());
                }
            }
            new.insert(f.path.clone());
            self.lake.put(&f.path, f.bytes).await.map_err(lake_error)?;
        }
        if !new_partitions.is_empty() {
            self.catalog
                .add_partitions(stream, &new_partitions)
                .await
                .map_err(|e| {
                    let kind = if e.is_transient() {
                        ErrorKind::Retryable
                    } else {
                        ErrorKind::RunFatal
                    };
                    CommitError::new(kind, e)
                })?;
        }
        let body = serde_json::to_vec_pretty(&manifest).map_err(fatal)?;
        self.lake
            .put(&revised, body.into())
            .await
            .map_err(lake_error)?;
        for path in old.difference(&new) {
            self.lake.delete(path).await.map_err(lake_error)?;
            self.removed.fetch_add(1, Ordering::Relaxed);
        }
        for m in t.old_manifests.iter().filter(|m| **m != revised) {
            self.lake.delete(m).await.map_err(lake_error)?;
        }
        self.rewritten.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(stream, batch = %manifest.batch_id, revision = t.revision.as_str(), rows = manifest.rows(), "batch rewritten");
        Ok(manifest)
    }
}
