//! Shard positions: what a committed batch covers, the commit-store interface, and a store that
//! keeps positions as objects in the lake.
//!
//! A position is `(shard, sequence number, sub-sequence number)`: the last user record of the
//! shard that is durably in the lake. Resuming re-reads the shard **at** that sequence number and
//! skips every user record at or before the position, so a restart in the middle of a KPL
//! aggregate neither loses nor repeats a child record.

use crate::KinesisError;
use async_trait::async_trait;
use etl_lake::Lake;
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::collections::HashMap;

/// A Kinesis sequence number: a decimal string (the API allows up to 129 digits; real ones have
/// about 56, more than 128 bits), compared numerically.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SequenceNumber(String);

impl SequenceNumber {
    /// Wraps a sequence number as Kinesis returns it (leading zeros dropped); `None` unless it is
    /// 1 to 129 decimal digits.
    pub fn parse(text: &str) -> Option<Self> {
        let ok = !text.is_empty() && text.len() <= 129 && text.bytes().all(|b| b.is_ascii_digit());
        let trimmed = text.trim_start_matches('0');
        ok.then(|| SequenceNumber(if trimmed.is_empty() { "0" } else { trimmed }.to_string()))
    }
    /// The decimal text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Ord for SequenceNumber {
    fn cmp(&self, other: &Self) -> Ordering {
        let (a, b) = (&self.0, &other.0);
        a.len().cmp(&b.len()).then_with(|| a.cmp(b))
    }
}

impl PartialOrd for SequenceNumber {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl std::fmt::Display for SequenceNumber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where one user record sits in a shard.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RecordPosition {
    /// Sequence number of the Kinesis record.
    pub sequence_number: SequenceNumber,
    /// Index of the user record inside a KPL aggregate (0 for a plain record).
    pub sub_sequence: u64,
}

impl RecordPosition {
    /// `<sequence>.<sub-sequence>`: how positions are written in commit records, manifests and
    /// dead letters.
    pub fn to_text(&self) -> String {
        format!("{}.{}", self.sequence_number, self.sub_sequence)
    }

    /// Parses [`RecordPosition::to_text`]; `None` if `text` is not `<digits>.<digits>`.
    pub fn from_text(text: &str) -> Option<Self> {
        let (seq, sub) = text.split_once('.')?;
        Some(RecordPosition {
            sequence_number: SequenceNumber::parse(seq)?,
            sub_sequence: sub.parse().ok()?,
        })
    }
}

impl Ord for RecordPosition {
    fn cmp(&self, other: &Self) -> Ordering {
        (&self.sequence_number, self.sub_sequence)
            .cmp(&(&other.sequence_number, other.sub_sequence))
    }
}

impl PartialOrd for RecordPosition {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// The committed position of one shard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardPosition {
    /// The shard, e.g. `shardId-000000000003`.
    pub shard_id: String,
    /// Last user record durably in the lake; `None` if none was read yet.
    pub last: Option<RecordPosition>,
    /// The shard is closed and was read to its end (`NextShardIterator` was null): its children
    /// may be read.
    pub finished: bool,
}

/// Where the ends of shards are marked. The position a shard resumes from lives in its delivery
/// commit log (`etl_lake::delivery`), written together with the data; this store only records
/// that a closed shard was read to its end and everything of it committed (`finished`), which
/// lets its children be read. `commit` is called only after that shard's last batch committed.
#[async_trait]
pub trait PositionStore: Send + Sync {
    /// Every committed shard position of `stream`, by shard id.
    async fn load(&self, stream: &str) -> Result<HashMap<String, ShardPosition>, KinesisError>;
    /// Records new positions of some shards of `stream` (others keep theirs).
    async fn commit(&self, stream: &str, positions: &[ShardPosition]) -> Result<(), KinesisError>;
}

/// Keeps positions in the lake as `_positions/kinesis/<stream>/<shard>.json`, one object per
/// shard, each written atomically (the lake's object writes replace whole objects).
#[derive(Debug, Clone)]
pub struct LakePositionStore {
    lake: Lake,
}

impl LakePositionStore {
    /// A store in `lake`.
    pub fn new(lake: Lake) -> Self {
        LakePositionStore { lake }
    }

    fn prefix(stream: &str) -> String {
        format!("_positions/kinesis/{stream}")
    }
}

#[async_trait]
impl PositionStore for LakePositionStore {
    async fn load(&self, stream: &str) -> Result<HashMap<String, ShardPosition>, KinesisError> {
        let mut out = HashMap::new();
        for path in self.lake.list(&Self::prefix(stream)).await? {
            let Some(bytes) = self.lake.get(&path).await? else {
                continue;
            };
            let position: ShardPosition = serde_json::from_slice(&bytes).map_err(|e| {
                KinesisError::Positions(format!(
                    "{} is not a shard position: {e}",
                    self.lake.display(&path)
                ))
            })?;
            out.insert(position.shard_id.clone(), position);
        }
        Ok(out)
    }

    async fn commit(&self, stream: &str, positions: &[ShardPosition]) -> Result<(), KinesisError> {
        for p in positions {
            let path = format!("{}/{}.json", Self::prefix(stream), p.shard_id);
            let bytes =
                serde_json::to_vec_pretty(p).map_err(|e| KinesisError::Positions(e.to_string()))?;
            self.lake.put(&path, bytes.into()).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pos(seq: &str, sub: u64) -> RecordPosition {
        RecordPosition {
            sequence_number: SequenceNumber::parse(seq).expect("number"),
            sub_sequence: sub,
        }
    }

    #[test]
    fn sequence_numbers_compare_numerically() {
        let long = "49590338271490256608559692538361571095921575989136588898";
        let longer = "49590338271490256608559692538361571095921575989136588899";
        assert!(pos(long, 0) < pos(longer, 0), "56 digits, beyond 128 bits");
        assert!(pos("9", 0) < pos("10", 0), "numeric, not lexical");
        assert!(pos("009", 3) < pos("10", 0));
        assert_eq!(pos("010", 0), pos("10", 0));
        assert!(pos("10", 1) > pos("10", 0));
        assert!(SequenceNumber::parse("12a").is_none() && SequenceNumber::parse("").is_none());
        let p = pos(long, 7);
        assert_eq!(p.to_text(), format!("{long}.7"));
        assert_eq!(RecordPosition::from_text(&p.to_text()), Some(p));
        assert!(RecordPosition::from_text("12").is_none());
        assert!(RecordPosition::from_text("12.x").is_none());
    }

    #[tokio::test]
    async fn lake_store_round_trip() -> Result<(), KinesisError> {
        let dir = tempfile::tempdir().map_err(|e| KinesisError::Positions(e.to_string()))?;
        let lake = Lake::open(&dir.path().to_string_lossy())?;
        let store = LakePositionStore::new(lake);
        assert!(store.load("s").await?.is_empty());
        let a = ShardPosition {
            shard_id: "shardId-000000000000".into(),
            last: Some(pos("123", 4)),
            finished: false,
        };
        let b = ShardPosition {
            shard_id: "shardId-000000000001".into(),
            last: None,
            finished: true,
        };
        store.commit("s", &[a.clone(), b.clone()]).await?;
        let a2 = ShardPosition {
            last: Some(pos("456", 0)),
            ..a
        };
        store.commit("s", std::slice::from_ref(&a2)).await?;
        let loaded = store.load("s").await?;
        assert_eq!(loaded.len(), 2);
        assert_eq!(loaded["shardId-000000000000"], a2);
        assert_eq!(loaded["shardId-000000000001"], b);
        assert!(store.load("other").await?.is_empty());
        Ok(())
    }
}
