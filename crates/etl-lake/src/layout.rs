//! Object names of the lake.

use std::fmt;

/// Identifies one micro-batch of one stream by its source position, e.g.
/// `f3c2a1b0d4e5f6a7-000000000001-000000065536` (source tag, first and last position).
/// Names of everything a batch writes derive from it, so a replay of the same source range
/// rewrites the same objects.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct BatchId(String);

impl BatchId {
    /// A batch id from a source tag (letters, digits, `-`, `_`) and the first and last
    /// position (inclusive) the batch covers.
    pub fn new(source_tag: &str, first: u64, last: u64) -> Self {
        let tag: String = source_tag
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        BatchId(format!("{tag}-{first:012}-{last:012}"))
    }

    /// A batch id from a source tag and first/last positions given as text (e.g. a Kinesis
    /// shard and `<sequence>.<sub-sequence>` positions): `<tag>-<first>-<last>`, every character
    /// other than ASCII letters, digits, `-` and `_` replaced by `_`.
    pub fn for_range(source_tag: &str, first: &str, last: &str) -> Self {
        BatchId(format!(
            "{}-{}-{}",
            object_name_safe(source_tag),
            object_name_safe(first),
            object_name_safe(last)
        ))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for BatchId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Values of the partition keys `dt` and `hour`.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct PartitionValues {
    /// `YYYY-MM-DD`, UTC.
    pub dt: String,
    /// `HH`, UTC.
    pub hour: String,
}

impl PartitionValues {
    /// `dt=…/hour=…`, the partition's path below the table.
    pub fn path(&self) -> String {
        format!("dt={}/hour={}", self.dt, self.hour)
    }
}

/// `s` with every character other than ASCII letters, digits, `-` and `_` replaced by `_`, so it
/// can stand in an object name.
pub(crate) fn object_name_safe(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

pub(crate) fn data_file(table: &str, p: &PartitionValues, batch: &BatchId, n: usize) -> String {
    format!("{table}/{}/{batch}-{n:04}.parquet", p.path())
}

pub(crate) fn dead_letter_file(stream: &str, dt: &str, batch: &BatchId) -> String {
    format!("dead-letters/{stream}/dt={dt}/{batch}.ndjson")
}

pub(crate) fn commit_file(stream: &str, batch: &BatchId) -> String {
    format!("_commits/{stream}/{batch}.json")
}

pub(crate) const CATALOG_FILE: &str = "_catalog/catalog.json";
