//! Exactly-once delivery of a shard's batches to the lake: the protocol of `docs/delivery.md`.
//!
//! Stage files outside every table prefix → create the shard's commit record `n` (with the
//! batch's positions) with create-if-absent → publish the staged files under their deterministic
//! names → register partitions → clean the staging. [`Delivery::recover`] rolls the highest
//! record forward and says where the shard resumes. A writer whose create loses the race is
//! [`DeliveryError::Fenced`] and publishes nothing.

mod recent;
mod record;
mod verify;

pub use record::{prepare_batch, BatchFile, CommitRecord, ManifestPositions, RecordFile, Resume};
pub use verify::compare_positions;

use crate::catalog::{Catalog, CatalogError};
use crate::layout::PartitionValues;
use crate::{Lake, LakeError};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStoreExt, PutMode, PutOptions, PutPayload};
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
    #[error("commit record {path} is corrupt: {message}. Refusing to continue this shard: restore the object (e.g. from S3 versioning), see docs/delivery.md \"When the log is inconsistent\"")]
    Corrupt { path: String, message: String },
    /// The records of a shard's log do not form one gapless, non-overlapping chain.
    #[error("the commit log of stream {stream} shard {shard} is inconsistent at record {n}: {message}. Refusing to continue this shard (nothing was read or written): restore the missing or edited record (e.g. from S3 versioning) or, if the log was moved on purpose, see docs/delivery.md \"When the log is inconsistent\"")]
    Inconsistent {
        stream: String,
        shard: String,
        n: u64,
        message: String,
    },
    /// A staged or published file does not have the bytes its commit record lists.
    #[error("stream {stream} shard {shard}: record {n} lists {path} with {expected}, but the stored object has {found}; it was changed after it was written. Refusing to publish it: delete the object and replay positions {first}..={last} (docs/delivery.md \"When the log is inconsistent\")")]
    Checksum {
        stream: String,
        shard: String,
        n: u64,
        path: String,
        expected: String,
        found: String,
        first: String,
        last: String,
    },
    #[error("stopped at fail point {0:?} (test only)")]
    Injected(FailPoint),
    #[error(transparent)]
    Lake(#[from] LakeError),
    #[error(transparent)]
    Catalog(#[from] CatalogError),
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

/// Which publish: right after this writer's own commit, or a recovery of an earlier attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Publish {
    Committing,
    Recovering,
}

/// Size and SHA-256 (hex) of some bytes.
fn digest(bytes: &[u8]) -> (u64, String) {
    (bytes.len() as u64, hex::encode(Sha256::digest(bytes)))
}

fn needs_replay(record: &CommitRecord, f: &RecordFile) -> DeliveryError {
    DeliveryError::NeedsReplay {
        stream: record.stream.clone(),
        shard: record.shard.clone(),
        n: record.n,
        path: f.path.clone(),
        first: record.first.clone(),
        last: record.last.clone(),
    }
}

fn checksum_error(
    record: &CommitRecord,
    f: &RecordFile,
    path: &str,
    (bytes, sha256): (u64, String),
) -> DeliveryError {
    DeliveryError::Checksum {
        stream: record.stream.clone(),
        shard: record.shard.clone(),
        n: record.n,
        path: path.to_string(),
        expected: format!("{} bytes, sha256 {}", f.bytes, f.sha256),
        found: format!("{bytes} bytes, sha256 {sha256}"),
        first: record.first.clone(),
        last: record.last.clone(),
    }
}

fn record_path(stream: &str, shard: &str, n: u64) -> String {
    format!("_delivery/{stream}/{shard}/{n:020}.json")
}

fn staging_prefix(stream: &str, shard: &str) -> String {
    format!("_staging/{stream}/{shard}")
}

impl DeliveryError {
    /// Whether the same commit may succeed later: the lake or the catalog was unavailable. A
    /// retried commit is safe after [`Delivery::recover`] (the failed attempt may have created
    /// the record).
    pub fn is_transient(&self) -> bool {
        match self {
            DeliveryError::Lake(e) => e.is_transient(),
            DeliveryError::Catalog(e) => e.is_transient(),
            _ => false,
        }
    }
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

    /// The record numbers in the shard's log, ascending.
    pub async fn record_numbers(&self) -> Result<Vec<u64>, DeliveryError> {
        let prefix = format!("_delivery/{}/{}", self.stream, self.shard);
        let mut numbers = Vec::new();
        for path in self.lake.list(&prefix).await? {
            let Some(name) = path
                .strip_prefix(&prefix)
                .map(|r| r.trim_start_matches('/'))
            else {
                continue;
            };
            // Only this shard's records: `<n>.json` directly under the prefix.
            let Some(stem) = name.strip_suffix(".json").filter(|s| !s.contains('/')) else {
                continue;
            };
            let n = stem.parse::<u64>().map_err(|_| DeliveryError::Corrupt {
                path: self.lake.display(&path),
                message: "the name of a commit record must be its number".into(),
            })?;
            numbers.push(n);
        }
        numbers.sort_unstable();
        Ok(numbers)
    }

    /// Record `n` of the shard's log, checked to be the one its name says.
    pub async fn read_record(&self, n: u64) -> Result<CommitRecord, DeliveryError> {
        let path = record_path(&self.stream, &self.shard, n);
        let bytes = self
            .lake
            .get(&path)
            .await?
            .ok_or_else(|| DeliveryError::Corrupt {
                path: self.lake.display(&path),
                message: "listed but vanished".into(),
            })?;
        let record: CommitRecord =
            serde_json::from_slice(&bytes).map_err(|e| DeliveryError::Corrupt {
                path: self.lake.display(&path),
                message: e.to_string(),
            })?;
        verify::identity(&self.stream, &self.shard, n, &record)?;
        Ok(record)
    }

    /// The highest commit record of the shard, if any, after checking the log: records
    /// `0..=h` all present, and `h` continuing `h-1` exactly ([`DeliveryError::Inconsistent`]
    /// otherwise).
    pub async fn latest(&self) -> Result<Option<CommitRecord>, DeliveryError> {
        let numbers = self.record_numbers().await?;
        verify::numbering(&self.stream, &self.shard, &numbers)?;
        let Some(&h) = numbers.last() else {
            return Ok(None);
        };
        let record = self.read_record(h).await?;
        if h > 0 {
            let previous = self.read_record(h - 1).await?;
            verify::link(&previous, &record)?;
        }
        Ok(Some(record))
    }

    /// Checks the log ([`Delivery::latest`]), rolls the highest record `h` forward (publish,
    /// verifying every file against the record's size and SHA-256; partitions), deletes the
    /// staging of records `..=h` (including lost attempts at those numbers), and returns where
    /// the shard resumes. Staging of later numbers may belong to a live writer and is left
    /// alone; it is deleted when that number is committed.
    pub async fn recover(&self) -> Result<Resume, DeliveryError> {
        let Some(record) = self.latest().await? else {
            return Ok(Resume {
                next: 0,
                after: None,
            });
        };
        self.publish(&record, Publish::Recovering).await?;
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
        self.publish(&record, Publish::Committing).await?;
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

    /// Makes every file of `record` visible under its published name. Committing: a server-side
    /// copy of what this writer staged a moment ago (it hashed those bytes itself), unless the
    /// object is already there with the recorded size. Recovering: the files were staged or
    /// published by an earlier attempt, so each is read and checked against the record's size
    /// and SHA-256: a published object that matches is kept; otherwise the staged copy is
    /// verified and written in its place. A file whose bytes match neither is
    /// [`DeliveryError::Checksum`]; one with no copy left is [`DeliveryError::NeedsReplay`].
    async fn publish(&self, record: &CommitRecord, mode: Publish) -> Result<(), DeliveryError> {
        for (i, f) in record.files.iter().enumerate() {
            match mode {
                Publish::Committing => self.copy_staged(record, f).await?,
                Publish::Recovering => self.restore(record, f).await?,
            }
            if mode == Publish::Committing && i == 0 {
                self.check(FailPoint::AfterFirstPublish)?;
            }
        }
        Ok(())
    }

    async fn copy_staged(
        &self,
        record: &CommitRecord,
        f: &RecordFile,
    ) -> Result<(), DeliveryError> {
        let store = self.lake.store();
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
        if published {
            return Ok(());
        }
        match store
            .copy(&ObjectPath::from(f.staged.as_str()), &target)
            .await
        {
            Ok(()) => Ok(()),
            Err(object_store::Error::NotFound { .. }) => Err(needs_replay(record, f)),
            Err(source) => Err(LakeError::Write {
                path: self.lake.display(&f.path),
                source,
            }
            .into()),
        }
    }

    async fn restore(&self, record: &CommitRecord, f: &RecordFile) -> Result<(), DeliveryError> {
        let published = self.lake.get(&f.path).await?;
        let published_digest = published.as_ref().map(|b| digest(b));
        if published_digest.as_ref() == Some(&(f.bytes, f.sha256.clone())) {
            return Ok(());
        }
        let Some(staged) = self.lake.get(&f.staged).await? else {
            return Err(match published_digest {
                Some(found) => checksum_error(record, f, &f.path, found),
                None => needs_replay(record, f),
            });
        };
        let found = digest(&staged);
        if found != (f.bytes, f.sha256.clone()) {
            return Err(checksum_error(record, f, &f.staged, found));
        }
        self.lake.put(&f.path, staged).await?;
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
mod tests;
