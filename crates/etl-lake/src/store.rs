//! Writing the lake's objects.

use crate::dead_letters::DeadLetter;
use crate::encode::EncodedFile;
use crate::layout::{BatchId, PartitionValues};
use crate::s3::{open_s3_store, S3Options};
use crate::LakeError;
use bytes::Bytes;
use futures::TryStreamExt;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Opens the object store of a lake location: a local directory (created if missing), a
/// `file://` URL, or `s3://bucket/prefix` with default [`S3Options`] (credentials from the
/// default chain; use [`open_s3_store`] to pass the configured AWS settings).
pub fn open_store(location: &str) -> Result<Arc<dyn ObjectStore>, LakeError> {
    let bad = |message: String| LakeError::Location {
        location: location.to_string(),
        message,
    };
    if location.starts_with("s3://") {
        return open_s3_store(location, &S3Options::default());
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
    /// For sources whose positions are not numbers (a Kinesis shard): the shard and the first
    /// and last position as text; `first_position`/`last_position` are then 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range: Option<PositionRange>,
    /// Version of the stream schema (`schemas/<stream>.toml` `version`) the batch's files were
    /// written with, so a reader (the warehouse loader, compaction) knows their columns; absent
    /// in manifests written before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_version: Option<u32>,
    /// Set when `etl backfill` re-processed the batch (`docs/backfill.md`): the revision of its
    /// files, from the transform and schema it was re-processed with. The manifest then lives
    /// at `_commits/<stream>/<batch-id>@<revision>.json` and the warehouse loads it under that
    /// id ([`BatchCommit::load_id`]), so a re-load is told apart from the first load.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
}

/// A batch's source range when positions are text (Kinesis: `<sequence>.<sub-sequence>`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PositionRange {
    /// The partition of the source, e.g. the Kinesis stream and shard.
    pub shard: String,
    /// First position (inclusive).
    pub first: String,
    /// Last position (inclusive).
    pub last: String,
}

impl BatchCommit {
    /// The id the warehouse's load ledger records for this manifest: the batch id, followed by
    /// `@<revision>` for a batch a backfill re-processed.
    pub fn load_id(&self) -> String {
        match &self.revision {
            Some(r) => format!("{}@{r}", self.batch_id),
            None => self.batch_id.to_string(),
        }
    }

    /// Where this manifest is stored: `_commits/<stream>/<load id>.json`.
    pub fn manifest_path(&self) -> String {
        format!("_commits/{}/{}.json", self.stream, self.load_id())
    }

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
    multipart_threshold: usize,
}

/// Objects above this size are written with a multipart upload (64 MiB).
pub const MULTIPART_THRESHOLD_BYTES: usize = 64 * 1024 * 1024;
/// Part size of multipart uploads (16 MiB; S3's minimum is 5 MiB, its maximum 10,000 parts).
pub const MULTIPART_PART_BYTES: usize = 16 * 1024 * 1024;

/// Identifies a batch's source range when it is written.
#[derive(Debug, Clone)]
pub struct BatchSource<'a> {
    /// Source name.
    pub name: &'a str,
    /// First position (inclusive).
    pub first: u64,
    /// Last position (inclusive).
    pub last: u64,
    /// Version of the stream schema the files were written with (recorded in the manifest).
    pub schema_version: Option<u32>,
}

impl Lake {
    /// A lake at `location` (used in messages and catalog locations) backed by `store`.
    pub fn new(store: Arc<dyn ObjectStore>, location: impl Into<String>) -> Self {
        Lake {
            store,
            location: location.into(),
            multipart_threshold: MULTIPART_THRESHOLD_BYTES,
        }
    }

    /// Opens a local lake directory.
    pub fn open(location: &str) -> Result<Self, LakeError> {
        Ok(Lake::new(
            open_store(location)?,
            location.trim_end_matches('/'),
        ))
    }

    /// The lake's location as configured.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// The object store.
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// Opens an `s3://bucket/prefix` lake with `options` (see [`open_s3_store`]).
    pub fn open_s3(location: &str, options: &S3Options) -> Result<Self, LakeError> {
        Ok(Lake::new(
            open_s3_store(location, options)?,
            location.trim_end_matches('/'),
        ))
    }

    /// Objects larger than `bytes` are uploaded in parts of [`MULTIPART_PART_BYTES`]
    /// (default [`MULTIPART_THRESHOLD_BYTES`]; S3 needs parts of at least 5 MiB).
    pub fn with_multipart_threshold(mut self, bytes: usize) -> Self {
        self.multipart_threshold = bytes;
        self
    }

    /// Writes one object (atomically: readers see the old object or the whole new one; a
    /// multipart upload becomes visible only when it completes; parts of a failed upload stay
    /// invisible until the bucket's `AbortIncompleteMultipartUpload` lifecycle rule removes them).
    pub async fn put(&self, path: &str, bytes: Bytes) -> Result<(), LakeError> {
        let location = ObjectPath::from(path);
        let err = |source| LakeError::Write {
            path: self.display(path),
            source,
        };
        if bytes.len() > self.multipart_threshold {
            let upload = self.store.put_multipart(&location).await.map_err(err)?;
            let mut writer = WriteMultipart::new_with_chunk_size(upload, MULTIPART_PART_BYTES);
            writer.put(bytes);
            writer.finish().await.map_err(err)?;
            return Ok(());
        }
        self.store
            .put(&location, PutPayload::from_bytes(bytes))
            .await
            .map_err(err)?;
        Ok(())
    }

    /// Reads one object; `None` if it does not exist.
    pub async fn get(&self, path: &str) -> Result<Option<Bytes>, LakeError> {
        match self.store.get(&ObjectPath::from(path)).await {
            Ok(r) => Ok(Some(r.bytes().await.map_err(|source| LakeError::Read {
                path: self.display(path),
                source,
            })?)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(source) => Err(LakeError::Read {
                path: self.display(path),
                source,
            }),
        }
    }

    /// Deletes the object at `path`; one that is already gone is fine.
    pub async fn delete(&self, path: &str) -> Result<(), LakeError> {
        match self.store.delete(&ObjectPath::from(path)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(source) => Err(LakeError::Write {
                path: self.display(path),
                source,
            }),
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
            .map_err(|source| LakeError::Read {
                path: self.display(prefix),
                source,
            })?;
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
        // The same names and manifest as the delivery protocol's (one path for both); the
        // files are written in order, the manifest last.
        let (files, manifest) = crate::delivery::prepare_batch(
            stream,
            batch_id,
            source.name,
            crate::delivery::ManifestPositions::Lines {
                first: source.first,
                last: source.last,
            },
            files,
            dead_letters,
            dead_letter_dt,
            None,
            source.schema_version,
        )?;
        for f in files {
            self.put(&f.path, f.bytes).await?;
        }
        Ok(manifest)
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
