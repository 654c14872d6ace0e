//! The partition state object: the commit point of a compaction.

use crate::CompactError;
use bytes::Bytes;
use etl_lake::{Lake, PartitionValues};
use etl_warehouse::partitions::{generation_dir, state_path};
use serde::{Deserialize, Serialize};

/// One file of a compacted generation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateFile {
    /// Object path below the lake root.
    pub path: String,
    /// Rows in it.
    pub rows: u64,
    /// Its size in bytes.
    pub bytes: u64,
}

/// A writer file folded into a generation, as it was when it was read: a file whose object
/// changed since (a backfill wrote it again) is read again by the next run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Covered {
    /// Object path below the lake root.
    pub path: String,
    /// The object's ETag when it was read (S3: the content's MD5 for single-part uploads).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e_tag: Option<String>,
    /// The object's last-modified time when it was read (ms since the epoch).
    pub written_ms: i64,
}

impl Covered {
    /// Whether `file` is a different object than the one read: another ETag (or, without
    /// ETags, another last-modified time).
    pub fn changed(&self, file: &crate::plan::InputFile) -> bool {
        match (&self.e_tag, &file.e_tag) {
            (Some(a), Some(b)) => a != b,
            _ => self.written_ms != file.written_ms,
        }
    }
}

/// An object the switch to a newer generation retired: deleted once the grace period has
/// passed (and, for a writer's file, once its batch is loaded).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retired {
    /// Object path below the lake root.
    pub path: String,
    /// When it was retired (ms since the epoch): the commit of the generation that replaced it.
    pub retired_at_ms: i64,
    /// The batch that wrote it (a writer's file), `None` for a compacted file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<String>,
}

/// `_catalog/partitions/<table>/dt=…/hour=….json`: which generation readers read, and what the
/// compactor needs to go on (what is folded in, what waits for deletion).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionState {
    /// Table (stream) name.
    pub table: String,
    /// `YYYY-MM-DD`.
    pub dt: String,
    /// `HH`.
    pub hour: String,
    /// The generation readers read (1, 2, …).
    pub generation: u64,
    /// Its directory below the lake root, `_compacted/<table>/dt=…/hour=…/g=<n>/`.
    pub location: String,
    /// Its files.
    pub files: Vec<StateFile>,
    /// Every writer file (below `<table>/dt=…/hour=…/`) folded into this or an earlier
    /// generation; files of the partition not listed here are late and go into the next one.
    pub covers: Vec<Covered>,
    /// Rows in the generation.
    pub rows: u64,
    /// Repeated `event_id`s dropped when this generation was written.
    pub duplicates_dropped: u64,
    /// When the generation was committed (ms since the epoch).
    pub committed_at_ms: i64,
    /// Version of the stream schema the generation was written with (its columns: older
    /// files' missing columns are NULL in it).
    #[serde(default)]
    pub schema_version: u32,
    /// Objects waiting for deletion.
    #[serde(default)]
    pub retired: Vec<Retired>,
}

impl PartitionState {
    /// The state object's path.
    pub fn path(&self) -> String {
        state_path(&self.table, &self.dt, &self.hour)
    }

    /// The partition.
    pub fn partition(&self) -> PartitionValues {
        PartitionValues {
            dt: self.dt.clone(),
            hour: self.hour.clone(),
        }
    }

    /// Reads the state of one partition; `None` if it was never compacted.
    pub async fn read(
        lake: &Lake,
        table: &str,
        partition: &PartitionValues,
    ) -> Result<Option<Self>, CompactError> {
        let path = state_path(table, &partition.dt, &partition.hour);
        let Some(bytes) = lake.get(&path).await? else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| CompactError::CorruptState {
                path: lake.display(&path),
                message: e.to_string(),
            })
    }

    /// Writes the state object (one PUT: atomic for every reader).
    pub async fn write(&self, lake: &Lake) -> Result<(), CompactError> {
        let bytes = serde_json::to_vec_pretty(self).map_err(|e| CompactError::CorruptState {
            path: self.path(),
            message: e.to_string(),
        })?;
        lake.put(&self.path(), Bytes::from(bytes)).await?;
        Ok(())
    }
}

/// The directory of generation `generation` of a partition.
pub(crate) fn generation_location(
    table: &str,
    partition: &PartitionValues,
    generation: u64,
) -> String {
    generation_dir(table, &partition.dt, &partition.hour, generation)
}

/// The batch id of a writer's data file `<table>/dt=…/hour=…/<batch>-<nnnn>.parquet`.
pub(crate) fn batch_of(path: &str) -> Option<String> {
    let name = path.rsplit('/').next()?.strip_suffix(".parquet")?;
    let (batch, part) = name.rsplit_once('-')?;
    (!batch.is_empty() && !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()))
        .then(|| batch.to_string())
}
