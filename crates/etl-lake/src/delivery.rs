//! Exactly-once delivery of a shard's batches to the lake: the protocol of `docs/delivery.md`.
//!
//! Stage files outside every table prefix → create the shard's commit record `n` (with the
//! batch's positions) with create-if-absent → publish the staged files under their deterministic
//! names → register partitions → clean the staging. [`Delivery::recover`] rolls the highest
//! record forward and says where the shard resumes. A writer whose create loses the race is
//! [`DeliveryError::Fenced`] and publishes nothing.

use crate::catalog::{Catalog, CatalogError};
use crate::dead_letters::{to_ndjson, DeadLetter};
use crate::encode::EncodedFile;
use crate::layout::{commit_file, data_file, dead_letter_file, BatchId, PartitionValues};
use crate::store::{BatchCommit, CommittedFile, PositionRange};
use crate::{Lake, LakeError};
use bytes::Bytes;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStoreExt, PutMode, PutOptions, PutPayload};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;
use std::sync::Arc;

/// A step after which a test can make the writer stop as if the process had died.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailPoint {
    /// Every file staged, no record yet.
    AfterStage,
    /// Record created, nothing published.
    AfterRecord,
    /// The first file published, the others not.
    AfterFirstPublish,
    /// Every file published, partitions not registered.
    AfterPublish,
    /// Partitions registered, staging not cleaned.
    AfterCatalog,
}

impl FailPoint {
    /// Every fail point, in the order the writer reaches them.
    pub const ALL: [FailPoint; 5] = [
        FailPoint::AfterStage,
        FailPoint::AfterRecord,
        FailPoint::AfterFirstPublish,
        FailPoint::AfterPublish,
        FailPoint::AfterCatalog,
    ];
}

/// Errors of the delivery protocol.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error("stream {stream} shard {shard}: record {n} was committed by another writer; this writer is fenced and published nothing")]
    Fenced {
        stream: String,
        shard: String,
        n: u64,
    },
    #[error("stream {stream} shard {shard}: record {n} lists {path}, but neither the staged nor the published copy exists; replay positions {first}..={last} to rebuild it")]
    NeedsReplay {
        stream: String,
        shard: String,
        n: u64,
        path: String,
        first: String,
        last: String,
    },
    #[error("commit record {path} is corrupt: {message}")]
    Corrupt { path: String, message: String },
    #[error("stopped at fail point {0:?} (test only)")]
    Injected(FailPoint),
    #[error(transparent)]
    Lake(#[from] LakeError),
    #[error(transparent)]
    Catalog(#[from] CatalogError),
}

/// One file of a batch, before staging.
#[derive(Debug, Clone)]
pub struct BatchFile {
    /// Deterministic object path below the lake root, e.g. `<table>/dt=…/hour=…/<batch>-0000.parquet`.
    pub path: String,
    /// Its partition, if it lives in a table (dead letters: `None`).
    pub partition: Option<PartitionValues>,
    /// Its bytes.
    pub bytes: Bytes,
}

/// The files of one batch under their deterministic names, ready for [`Delivery::commit`]: the
/// data files (names from `batch_id` and the partition), the dead-letter file if any record was
/// rejected, the raw archive file if given (`raw`: [`crate::raw::raw_file`] and
/// [`crate::raw::encode_raw`]), and **last** the manifest `_commits/<stream>/<batch-id>.json`
/// that the warehouse loader reads, so publishing (which follows this order) writes the manifest
/// after the data. Returns the files and the manifest.
#[allow(clippy::too_many_arguments)]
pub fn prepare_batch(
    stream: &str,
    batch_id: &BatchId,
    source_name: &str,
    range: PositionRange,
    files: Vec<EncodedFile>,
    dead_letters: &[DeadLetter],
    dead_letter_dt: &str,
    raw: Option<BatchFile>,
) -> Result<(Vec<BatchFile>, BatchCommit), LakeError> {
    let mut out = Vec::with_capacity(files.len() + 3);
    let mut committed = Vec::with_capacity(files.len());
    for f in files {
        let path = data_file(stream, &f.partition, batch_id, f.part);
        committed.push(CommittedFile {
            path: path.clone(),
            partition: f.partition.clone(),
            rows: f.rows as u64,
            bytes: f.bytes.len() as u64,
        });
        out.push(BatchFile {
            path,
            partition: Some(f.partition),
            bytes: f.bytes,
        });
    }
    let dead_letter_file = if dead_letters.is_empty() {
        None
    } else {
        let path = dead_letter_file(stream, dead_letter_dt, batch_id);
        out.push(BatchFile {
            path: path.clone(),
            partition: None,
            bytes: Bytes::from(to_ndjson(dead_letters)?),
        });
        Some(path)
    };
    // The raw archive is published with the batch, before the manifest; it is not in a table
    // (no partition to register).
    out.extend(raw.map(|r| BatchFile {
        partition: None,
        ..r
    }));
    let manifest = BatchCommit {
        stream: stream.to_string(),
        batch_id: batch_id.clone(),
        source: source_name.to_string(),
        first_position: 0,
        last_position: 0,
        files: committed,
        dead_letter_file,
        dead_letters: dead_letters.len() as u64,
        range: Some(range),
    };
    out.push(BatchFile {
        path: commit_file(stream, batch_id),
        partition: None,
        bytes: Bytes::from(serde_json::to_vec_pretty(&manifest)?),
    });
    Ok((out, manifest))
}

/// A file in a commit record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordFile {
    /// Where it is staged.
    pub staged: String,
    /// Where it is published.
    pub path: String,
    /// Its partition.
    pub partition: Option<PartitionValues>,
    /// Size in bytes.
    pub bytes: u64,
    /// SHA-256 of the content, hex.
    pub sha256: String,
}

/// Commit record `n` of a shard: the batch's files and positions, written once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommitRecord {
    /// Stream.
    pub stream: String,
    /// Shard.
    pub shard: String,
    /// Record number in the shard's log (0, 1, …).
    pub n: u64,
    /// Who committed it (diagnostics only).
    pub writer: String,
    /// Last position of record `n-1` (`None` for the first record).
    pub previous_last: Option<String>,
    /// First position of the batch.
    pub first: String,
    /// Last position of the batch: where the shard resumes after this record.
    pub last: String,
    /// Files, in publishing order.
    pub files: Vec<RecordFile>,
}

/// Where a shard resumes: the next record number and the position after which to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resume {
    /// Next record number.
    pub next: u64,
    /// Last committed position (`None`: nothing committed yet).
    pub after: Option<String>,
}

/// A writer of one stream's shard.
pub struct Delivery {
    lake: Lake,
    stream: String,
    shard: String,
    writer: String,
    catalog: Option<Arc<dyn Catalog>>,
    fail_at: Option<FailPoint>,
}

fn record_path(stream: &str, shard: &str, n: u64) -> String {
    format!("_delivery/{stream}/{shard}/{n:020}.json")
}

fn staging_prefix(stream: &str, shard: &str) -> String {
    format!("_staging/{stream}/{shard}")
}

impl Delivery {
    /// A writer of `stream`/`shard` in `lake`, named `writer` in the records it commits;
    /// partitions go to `catalog` if given.
    /// `writer` must be unique per process (e.g. host, pid and start time).
    pub fn new(
        lake: Lake,
        stream: &str,
        shard: &str,
        writer: &str,
        catalog: Option<Arc<dyn Catalog>>,
    ) -> Self {
        let writer = crate::layout::object_name_safe(writer);
        Delivery {
            lake,
            stream: stream.into(),
            shard: shard.into(),
            writer,
            catalog,
            fail_at: None,
        }
    }

    /// Stops the next commit at `point` (tests of the crash points).
    pub fn fail_at(mut self, point: FailPoint) -> Self {
        self.fail_at = Some(point);
        self
    }

    /// The writer name recorded in commit records (made object-name safe).
    pub fn writer(&self) -> &str {
        &self.writer
    }

    fn check(&self, point: FailPoint) -> Result<(), DeliveryError> {
        if self.fail_at == Some(point) {
            return Err(DeliveryError::Injected(point));
        }
        Ok(())
    }

    /// The highest commit record of the shard, if any.
    pub async fn latest(&self) -> Result<Option<CommitRecord>, DeliveryError> {
        let prefix = format!("_delivery/{}/{}", self.stream, self.shard);
        let Some(path) = self
            .lake
            .list(&prefix)
            .await?
            .into_iter()
            .filter(|p| p.ends_with(".json"))
            .max()
        else {
            return Ok(None);
        };
        let bytes = self
            .lake
            .get(&path)
            .await?
            .ok_or_else(|| DeliveryError::Corrupt {
                path: path.clone(),
                message: "vanished".into(),
            })?;
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| DeliveryError::Corrupt {
                path,
                message: e.to_string(),
            })
    }

    /// Rolls the highest record `h` forward (publish, partitions), deletes the staging of
    /// records `..=h` (including lost attempts at those numbers), and returns where the shard
    /// resumes. Staging of later numbers may belong to a live writer and is left alone; it is
    /// deleted when that number is committed.
    pub async fn recover(&self) -> Result<Resume, DeliveryError> {
        let Some(record) = self.latest().await? else {
            return Ok(Resume {
                next: 0,
                after: None,
            });
        };
        self.publish(&record, false).await?;
        self.register(&record).await?;
        self.clean_staging(record.n).await?;
        Ok(Resume {
            next: record.n + 1,
            after: Some(record.last.clone()),
        })
    }

    /// Commits one batch covering positions `first..=last` as record `resume.next`; returns the
    /// record and the next resume point.
    pub async fn commit(
        &self,
        resume: &Resume,
        first: &str,
        last: &str,
        files: Vec<BatchFile>,
    ) -> Result<(CommitRecord, Resume), DeliveryError> {
        let n = resume.next;
        // The writer is part of the staged names: two writers staging the same `n` never
        // overwrite each other's files, so the winner publishes exactly what it hashed.
        let staging = format!(
            "{}/{n:020}/{}",
            staging_prefix(&self.stream, &self.shard),
            self.writer
        );
        let mut listed = Vec::with_capacity(files.len());
        for (i, f) in files.into_iter().enumerate() {
            let staged = format!("{staging}/{i:04}");
            let sha256 = hex::encode(Sha256::digest(&f.bytes));
            let bytes = f.bytes.len() as u64;
            self.lake.put(&staged, f.bytes).await?;
            listed.push(RecordFile {
                staged,
                path: f.path,
                partition: f.partition,
                bytes,
                sha256,
            });
        }
        self.check(FailPoint::AfterStage)?;

        let record = CommitRecord {
            stream: self.stream.clone(),
            shard: self.shard.clone(),
            n,
            writer: self.writer.clone(),
            previous_last: resume.after.clone(),
            first: first.into(),
            last: last.into(),
            files: listed,
        };
        let path = record_path(&self.stream, &self.shard, n);
        let body = serde_json::to_vec_pretty(&record).map_err(LakeError::from)?;
        let put = self
            .lake
            .store()
            .put_opts(
                &ObjectPath::from(path.as_str()),
                PutPayload::from(body),
                PutOptions::from(PutMode::Create),
            )
            .await;
        match put {
            Ok(_) => {}
            Err(
                object_store::Error::AlreadyExists { .. }
                | object_store::Error::Precondition { .. },
            ) => {
                // Lost the race: our staged files are garbage; never publish them.
                for f in &record.files {
                    self.delete(&f.staged).await?;
                }
                tracing::warn!(stream = %self.stream, shard = %self.shard, n, writer = %self.writer, "fenced: record already committed");
                return Err(DeliveryError::Fenced {
                    stream: self.stream.clone(),
                    shard: self.shard.clone(),
                    n,
                });
            }
            Err(source) => {
                return Err(LakeError::Write {
                    path: self.lake.display(&path),
                    source,
                }
                .into())
            }
        }
        self.check(FailPoint::AfterRecord)?;
        self.publish(&record, true).await?;
        self.check(FailPoint::AfterPublish)?;
        self.register(&record).await?;
        self.check(FailPoint::AfterCatalog)?;
        self.clean_staging(n).await?;
        let next = Resume {
            next: n + 1,
            after: Some(record.last.clone()),
        };
        Ok((record, next))
    }

    /// Copies every staged file of `record` to its published name unless it is already there.
    async fn publish(&self, record: &CommitRecord, inject: bool) -> Result<(), DeliveryError> {
        let store = self.lake.store();
        for (i, f) in record.files.iter().enumerate() {
            let target = ObjectPath::from(f.path.as_str());
            let published = match store.head(&target).await {
                Ok(meta) => meta.size == f.bytes,
                Err(object_store::Error::NotFound { .. }) => false,
                Err(source) => {
                    return Err(LakeError::Read {
                        path: self.lake.display(&f.path),
                        source,
                    }
                    .into())
                }
            };
            if !published {
                match store
                    .copy(&ObjectPath::from(f.staged.as_str()), &target)
                    .await
                {
                    Ok(()) => {}
                    Err(object_store::Error::NotFound { .. }) => {
                        return Err(DeliveryError::NeedsReplay {
                            stream: record.stream.clone(),
                            shard: record.shard.clone(),
                            n: record.n,
                            path: f.path.clone(),
                            first: record.first.clone(),
                            last: record.last.clone(),
                        })
                    }
                    Err(source) => {
                        return Err(LakeError::Write {
                            path: self.lake.display(&f.path),
                            source,
                        }
                        .into())
                    }
                }
            }
            if inject && i == 0 {
                self.check(FailPoint::AfterFirstPublish)?;
            }
        }
        Ok(())
    }

    async fn register(&self, record: &CommitRecord) -> Result<(), DeliveryError> {
        let Some(catalog) = &self.catalog else {
            return Ok(());
        };
        let partitions: BTreeSet<PartitionValues> = record
            .files
            .iter()
            .filter_map(|f| f.partition.clone())
            .collect();
        if !partitions.is_empty() {
            catalog
                .add_partitions(&record.stream, &partitions.into_iter().collect::<Vec<_>>())
                .await?;
        }
        Ok(())
    }

    /// Deletes the staging of records `..=upto` (published or lost attempts). Staging of later
    /// records may belong to a live writer and is left alone.
    async fn clean_staging(&self, upto: u64) -> Result<(), DeliveryError> {
        let prefix = staging_prefix(&self.stream, &self.shard);
        for path in self.lake.list(&prefix).await? {
            let n = path
                .strip_prefix(&prefix)
                .and_then(|rest| rest.trim_start_matches('/').split('/').next())
                .and_then(|n| n.parse::<u64>().ok());
            if n.is_some_and(|n| n <= upto) {
                self.delete(&path).await?;
            }
        }
        Ok(())
    }

    async fn delete(&self, path: &str) -> Result<(), DeliveryError> {
        match self.lake.store().delete(&ObjectPath::from(path)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(source) => Err(LakeError::Write {
                path: self.lake.display(path),
                source,
            }
            .into()),
        }
    }
}

#[cfg(test)]
#[path = "delivery_tests.rs"]
mod tests;
