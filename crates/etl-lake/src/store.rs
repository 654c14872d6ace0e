//! Writing the lake's objects.

use crate::dead_letters::{to_ndjson, DeadLetter};
use crate::encode::EncodedFile;
use crate::layout::{commit_file, data_file, dead_letter_file, BatchId, PartitionValues};
use crate::LakeError;
use bytes::Bytes;
use futures::TryStreamExt;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Opens the object store of a lake location: a local directory (created if missing) or a
/// `file://` URL.
pub fn open_store(location: &str) -> Result<Arc<dyn ObjectStore>, LakeError> {
    let bad = |message: String| LakeError::Location { location: location.to_string(), message };
    if location.starts_with("s3://") {
        return Err(bad("S3 lakes are not available in this build yet; use a local directory".into()));
    }
    let dir = location.strip_prefix("file://").unwrap_or(location);
    std::fs::create_dir_all(dir).map_err(|e| bad(format!("cannot create the directory: {e}")))?;
    let fs = LocalFileSystem::new_with_prefix(dir).map_err(|e| bad(e.to_string()))?;
    Ok(Arc::new(fs))
}

/// A file a batch wrote.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommittedFile {
    /// Object path below the lake root.
    pub path: String,
    /// Its partition.
    pub partition: PartitionValues,
    /// Rows in it.
    pub rows: u64,
    /// Its size in bytes.
    pub bytes: u64,
}

/// What one batch wrote: the manifest the warehouse loader reads, written after the data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchCommit {
    /// Stream (table) name.
    pub stream: String,
    /// The batch.
    pub batch_id: BatchId,
    /// Source the batch came from.
    pub source: String,
    /// First source position covered (inclusive).
    pub first_position: u64,
    /// Last source position covered (inclusive).
    pub last_position: u64,
    /// Data files, in partition order.
    pub files: Vec<CommittedFile>,
    /// Dead-letter file, if any record was rejected.
    pub dead_letter_file: Option<String>,
    /// Records in the dead-letter file.
    pub dead_letters: u64,
}

impl BatchCommit {
    /// Rows written to data files.
    pub fn rows(&self) -> u64 {
        self.files.iter().map(|f| f.rows).sum()
    }
}

/// A lake root in an object store.
#[derive(Debug, Clone)]
pub struct Lake {
    store: Arc<dyn ObjectStore>,
    location: String,
}

/// Identifies a batch's source range when it is written.
#[derive(Debug, Clone)]
pub struct BatchSource<'a> {
    /// Source name.
    pub name: &'a str,
    /// First position (inclusive).
    pub first: u64,
    /// Last position (inclusive).
    pub last: u64,
}

impl Lake {
    /// A lake at `location` (used in messages and catalog locations) backed by `store`.
    pub fn new(store: Arc<dyn ObjectStore>, location: impl Into<String>) -> Self {
        Lake { store, location: location.into() }
    }

    /// Opens a local lake directory.
    pub fn open(location: &str) -> Result<Self, LakeError> {
        Ok(Lake::new(open_store(location)?, location.trim_end_matches('/')))
    }

    /// The lake's location as configured.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// The object store.
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// Writes one object (atomically: readers see the old object or the whole new one).
    pub async fn put(&self, path: &str, bytes: Bytes) -> Result<(), LakeError> {
        self.store
            .put(&ObjectPath::from(path), PutPayload::from_bytes(bytes))
            .await
            .map_err(|source| LakeError::Write { path: self.display(path), source })?;
        Ok(())
    }

    /// Reads one object; `None` if it does not exist.
    pub async fn get(&self, path: &str) -> Result<Option<Bytes>, LakeError> {
        match self.store.get(&ObjectPath::from(path)).await {
            Ok(r) => Ok(Some(r.bytes().await.map_err(|source| LakeError::Read { path: self.display(path), source })?)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(source) => Err(LakeError::Read { path: self.display(path), source }),
        }
    }

    /// Object paths below `prefix`, sorted.
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>, LakeError> {
        let prefix_path = ObjectPath::from(prefix);
        let mut out: Vec<String> = self
            .store
            .list(Some(&prefix_path))
            .map_ok(|m| m.location.to_string())
            .try_collect()
            .await
            .map_err(|source| LakeError::Read { path: self.display(prefix), source })?;
        out.sort();
        Ok(out)
    }

    /// Writes a batch: data files, then dead letters, then the commit record last, so a commit
    /// record always describes files that exist. Returns the commit record.
    pub async fn write_batch(
        &self,
        stream: &str,
        batch_id: &BatchId,
        source: BatchSource<'_>,
        files: Vec<EncodedFile>,
        dead_letters: &[DeadLetter],
        dead_letter_dt: &str,
    ) -> Result<BatchCommit, LakeError> {
        let mut committed = Vec::with_capacity(files.len());
        for f in files {
            let path = data_file(stream, &f.partition, batch_id, f.part);
            let bytes = f.bytes.len() as u64;
            self.put(&path, f.bytes).await?;
            committed.push(CommittedFile { path, partition: f.partition, rows: f.rows as u64, bytes });
        }
        let dead_letter_file = if dead_letters.is_empty() {
            None
        } else {
            let path = dead_letter_file(stream, dead_letter_dt, batch_id);
            self.put(&path, Bytes::from(to_ndjson(dead_letters)?)).await?;
            Some(path)
        };
        let commit = BatchCommit {
            stream: stream.to_string(),
            batch_id: batch_id.clone(),
            source: source.name.to_string(),
            first_position: source.first,
            last_position: source.last,
            files: committed,
            dead_letter_file,
            dead_letters: dead_letters.len() as u64,
        };
        self.put(&commit_file(stream, batch_id), Bytes::from(serde_json::to_vec_pretty(&commit)?)).await?;
        Ok(commit)
    }

    /// Every commit record of `stream`, in batch-id order.
    pub async fn commits(&self, stream: &str) -> Result<Vec<BatchCommit>, LakeError> {
        let mut out = Vec::new();
        for path in self.list(&format!("_commits/{stream}")).await? {
            if let Some(bytes) = self.get(&path).await? {
                out.push(serde_json::from_slice(&bytes)?);
            }
        }
        Ok(out)
    }

    /// `location/path`, for messages.
    pub fn display(&self, path: &str) -> String {
        format!("{}/{}", self.location, path)
    }
}
