//! The objects of the delivery protocol: a batch's files before staging ([`BatchFile`],
//! [`prepare_batch`]), the commit record ([`CommitRecord`]) and where a shard resumes
//! ([`Resume`]).

use crate::dead_letters::{to_ndjson, DeadLetter};
use crate::encode::EncodedFile;
use crate::layout::{commit_file, data_file, dead_letter_file, BatchId, PartitionValues};
use crate::store::{BatchCommit, CommittedFile, PositionRange};
use crate::LakeError;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
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

/// Where a batch's records were, as its manifest records it.
#[derive(Debug, Clone)]
pub enum ManifestPositions {
    /// Line numbers of a file source (`first_position`, `last_position`).
    Lines { first: u64, last: u64 },
    /// A shard's range (`range`), for sources whose positions are not numbers.
    Range(PositionRange),
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
    positions: ManifestPositions,
    files: Vec<EncodedFile>,
    dead_letters: &[DeadLetter],
    dead_letter_dt: &str,
    raw: Option<BatchFile>,
    schema_version: Option<u32>,
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
    let (first_position, last_position, range) = match positions {
        ManifestPositions::Lines { first, last } => (first, last, None),
        ManifestPositions::Range(range) => (0, 0, Some(range)),
    };
    let manifest = BatchCommit {
        stream: stream.to_string(),
        batch_id: batch_id.clone(),
        source: source_name.to_string(),
        first_position,
        last_position,
        files: committed,
        dead_letter_file,
        dead_letters: dead_letters.len() as u64,
        range,
        schema_version,
        revision: None,
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
