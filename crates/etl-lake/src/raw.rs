//! The raw archive: the records a consumer read, exactly as read, one gzip NDJSON file per batch
//! under `raw/<table>/dt=YYYY-MM-DD/hour=HH/<batch-id>.ndjson.gz` (the source for a later
//! `etl backfill`). The file is one of the files of the batch's commit record
//! ([`crate::delivery`]), so it is published exactly once with the batch.
//!
//! Determinism (a re-read of the same shard range gives the same name and the same bytes): the
//! partition is the arrival time of the batch's **first** record, the lines follow the batch
//! order, and the gzip stream has a fixed header (no file name, `mtime` 0) and a fixed level.

use crate::layout::{BatchId, PartitionValues};
use crate::LakeError;
use base64::Engine;
use bytes::Bytes;
use flate2::{Compression, GzBuilder};
use serde::{Deserialize, Serialize};
use std::io::{Read, Write};

/// gzip level of raw files (fixed: part of what makes the bytes deterministic).
pub const RAW_GZIP_LEVEL: u32 = 6;

/// One line of a raw file: a record's position, its arrival time and its bytes (`data` when
/// they are UTF-8, `data_base64` otherwise; exactly one of the two is present).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RawLine {
    /// Shard id, e.g. `shardId-000000000001`.
    pub shard: String,
    /// Kinesis sequence number of the (aggregate) record.
    pub sequence: String,
    /// Index of the user record inside a KPL aggregate (0 for a plain record).
    pub sub_sequence: u64,
    /// `ApproximateArrivalTimestamp` of the Kinesis record, epoch milliseconds.
    pub arrival_ms: Option<i64>,
    /// The record, if UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
    /// The record, base64, if not UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_base64: Option<String>,
}

impl RawLine {
    /// A line for `bytes`, choosing `data` or `data_base64`.
    pub fn new(
        shard: &str,
        sequence: &str,
        sub_sequence: u64,
        arrival_ms: Option<i64>,
        bytes: &[u8],
    ) -> Self {
        let (data, data_base64) = match std::str::from_utf8(bytes) {
            Ok(s) => (Some(s.to_string()), None),
            Err(_) => (
                None,
                Some(base64::engine::general_purpose::STANDARD.encode(bytes)),
            ),
        };
        RawLine {
            shard: shard.into(),
            sequence: sequence.into(),
            sub_sequence,
            arrival_ms,
            data,
            data_base64,
        }
    }

    /// The record's original bytes (`None` if `data_base64` is not valid base64).
    pub fn bytes(&self) -> Option<Vec<u8>> {
        match (&self.data, &self.data_base64) {
            (Some(s), _) => Some(s.as_bytes().to_vec()),
            (None, Some(b)) => base64::engine::general_purpose::STANDARD.decode(b).ok(),
            (None, None) => Some(Vec::new()),
        }
    }
}

/// `dt`/`hour` (UTC) of an epoch-millisecond instant.
pub fn partition_of(epoch_ms: i64) -> PartitionValues {
    let secs = epoch_ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let hour = secs.rem_euclid(86_400) / 3_600;
    let (year, month, day) = etl_schema::calendar::civil_from_days(days);
    PartitionValues {
        dt: format!("{year:04}-{month:02}-{day:02}"),
        hour: format!("{hour:02}"),
    }
}

/// `raw/<table>/dt=…/hour=…/<batch-id>.ndjson.gz`, partitioned by the arrival time of the
/// batch's first record (`None`: 1970-01-01 hour 00, still deterministic).
pub fn raw_file(table: &str, first_arrival_ms: Option<i64>, batch: &BatchId) -> String {
    let p = partition_of(first_arrival_ms.unwrap_or(0));
    format!("raw/{table}/{}/{batch}.ndjson.gz", p.path())
}

fn gzip_error(path: &str, source: std::io::Error) -> LakeError {
    LakeError::Gzip {
        path: path.to_string(),
        source,
    }
}

/// The gzip NDJSON bytes of `lines` (one JSON object per line, `\n` after each), with a fixed
/// gzip header and level so the same lines always give the same bytes. `path` names the file
/// in errors.
pub fn encode_raw(path: &str, lines: &[RawLine]) -> Result<Bytes, LakeError> {
    let mut encoder = GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), Compression::new(RAW_GZIP_LEVEL));
    for line in lines {
        let mut json = serde_json::to_vec(line)?;
        json.push(b'\n');
        encoder.write_all(&json).map_err(|e| gzip_error(path, e))?;
    }
    let bytes = encoder.finish().map_err(|e| gzip_error(path, e))?;
    Ok(Bytes::from(bytes))
}

/// The lines of a raw file (the inverse of [`encode_raw`]).
pub fn decode_raw(path: &str, gz: &[u8]) -> Result<Vec<RawLine>, LakeError> {
    let mut text = Vec::new();
    flate2::read::GzDecoder::new(gz)
        .read_to_end(&mut text)
        .map_err(|e| gzip_error(path, e))?;
    text.split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).map_err(LakeError::from))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_of_known_instants() {
        assert_eq!(partition_of(0).path(), "dt=1970-01-01/hour=00");
        // 2026-11-26T13:05:00Z
        assert_eq!(
            partition_of(1_795_698_300_000).path(),
            "dt=2026-11-26/hour=13"
        );
        // 2024-02-29T23:59:59.999Z (leap day)
        assert_eq!(
            partition_of(1_709_251_199_999).path(),
            "dt=2024-02-29/hour=23"
        );
        assert_eq!(partition_of(-1).path(), "dt=1969-12-31/hour=23");
    }

    #[test]
    fn encoding_is_deterministic_and_round_trips() {
        let lines = vec![
            RawLine::new("shardId-000000000000", "4959", 0, Some(1_000), b"{\"a\":1}"),
            RawLine::new("shardId-000000000000", "4960", 2, None, b"\xff\xfeno"),
        ];
        assert!(lines[1].data.is_none() && lines[1].data_base64.is_some());
        let a = encode_raw("x", &lines).expect("encode");
        let b = encode_raw("x", &lines).expect("encode");
        assert_eq!(a, b, "same lines, same bytes");
        // gzip header: magic, deflate, no flags, mtime 0.
        assert_eq!(&a[..8], &[0x1f, 0x8b, 8, 0, 0, 0, 0, 0]);
        let back = decode_raw("x", &a).expect("decode");
        assert_eq!(back, lines);
        assert_eq!(back[1].bytes().as_deref(), Some(&b"\xff\xfeno"[..]));
        let text = {
            let mut t = String::new();
            flate2::read::GzDecoder::new(&a[..])
                .read_to_string(&mut t)
                .expect("gunzip");
            t
        };
        assert!(text.starts_with(
            "{\"shard\":\"shardId-000000000000\",\"sequence\":\"4959\",\"sub_sequence\":0,\"arrival_ms\":1000,\"data\":\"{\\\"a\\\":1}\"}\n"
        ));
    }
}
