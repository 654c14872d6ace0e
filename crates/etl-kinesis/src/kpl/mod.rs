//! KPL aggregation format: de-aggregation for the reader, aggregation for the producer, and gzip
//! detection.
//!
//! Format (`awslabs/amazon-kinesis-producer`, `aggregation-format.md`):
//! `F3 89 9A C2` + protobuf `AggregatedRecord` + MD5 (16 bytes) of the protobuf bytes.
//!
//! ```text
//! message AggregatedRecord { repeated string partition_key_table = 1;
//!                            repeated string explicit_hash_key_table = 2;
//!                            repeated Record records = 3; }
//! message Record { required uint64 partition_key_index = 1; optional uint64 explicit_hash_key_index = 2;
//!                  required bytes data = 3; repeated Tag tags = 4; }
//! ```
//!
//! Rules, as the reference de-aggregator (`aws_kinesis_agg.deaggregator`): a record whose magic
//! does not match, that is 16 bytes or shorter after the magic, whose MD5 does not match, or whose
//! protobuf does not decode (including a missing required field) passes through **unchanged** as
//! one user record. Child records share the Kinesis sequence number and get sub-sequence numbers
//! `0..n`. Two deliberate differences: a partition-key index outside the table is a decode failure
//! (pass-through) rather than an exception, and an aggregate with no records passes through
//! (the reference yields nothing, which would drop the record silently).
//!
//! The protobuf codec is hand-written (a few dozen lines): no protoc, no build script.

use md5::{Digest, Md5};
use std::io::Read;

/// The four magic bytes that open a KPL aggregated record.
pub const KPL_MAGIC: [u8; 4] = [0xF3, 0x89, 0x9A, 0xC2];
const DIGEST_LEN: usize = 16;
/// Largest size a gzip record may decompress to; a larger one passes through compressed.
pub const MAX_DECOMPRESSED_BYTES: u64 = 10 << 20;

/// One user record out of a Kinesis record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    /// The payload (decompressed when it was gzip).
    pub data: Vec<u8>,
    /// Partition key: the aggregate's table entry, or the Kinesis record's key on pass-through.
    pub partition_key: Option<String>,
    /// Explicit hash key of an aggregated child, if any.
    pub explicit_hash_key: Option<String>,
    /// Position inside an aggregate (`0..n`); 0 for a plain record.
    pub sub_sequence: u64,
    /// Whether it came out of a valid KPL aggregate.
    pub aggregated: bool,
}

/// Splits one Kinesis record into user records (see the module doc for the rules). Never fails:
/// anything that is not a valid aggregate is one pass-through record.
pub fn deaggregate(data: &[u8], partition_key: Option<&str>) -> Vec<UserRecord> {
    let outer = gunzip_if_gzip(data);
    let bytes: &[u8] = outer.as_deref().unwrap_or(data);
    match decode_aggregate(bytes) {
        Some(agg) if !agg.records.is_empty() => agg
            .records
            .into_iter()
            .enumerate()
            .map(|(i, r)| UserRecord {
                data: gunzip_if_gzip(&r.data).unwrap_or(r.data),
                partition_key: agg.partition_keys.get(r.partition_key_index).cloned(),
                explicit_hash_key: r
                    .explicit_hash_key_index
                    .and_then(|i| agg.explicit_hash_keys.get(i).cloned()),
                sub_sequence: i as u64,
                aggregated: true,
            })
            .collect(),
        _ => vec![UserRecord {
            data: bytes.to_vec(),
            partition_key: partition_key.map(str::to_string),
            explicit_hash_key: None,
            sub_sequence: 0,
            aggregated: false,
        }],
    }
}

/// Whether `data` is a KPL aggregate that passes every check (magic, length, MD5, protobuf).
pub fn is_valid_aggregate(data: &[u8]) -> bool {
    decode_aggregate(data).is_some()
}

/// The decompressed bytes if `data` is gzip (magic `1f 8b`) and decompresses within
/// [`MAX_DECOMPRESSED_BYTES`]; `None` otherwise (the caller keeps the original bytes).
pub fn gunzip_if_gzip(data: &[u8]) -> Option<Vec<u8>> {
    if !data.starts_with(&[0x1f, 0x8b]) {
        return None;
    }
    let mut out = Vec::new();
    let mut reader = flate2::read::MultiGzDecoder::new(data).take(MAX_DECOMPRESSED_BYTES + 1);
    match reader.read_to_end(&mut out) {
        Ok(n) if (n as u64) <= MAX_DECOMPRESSED_BYTES => Some(out),
        Ok(_) => {
            tracing::warn!(
                bytes = data.len(),
                "gzip record decompresses beyond the limit; passed through compressed"
            );
            None
        }
        Err(e) => {
            tracing::warn!(error = %e, "record has the gzip magic but does not decompress; passed through");
            None
        }
    }
}

struct Aggregate {
    partition_keys: Vec<String>,
    explicit_hash_keys: Vec<String>,
    records: Vec<ChildRecord>,
}

struct ChildRecord {
    partition_key_index: usize,
    explicit_hash_key_index: Option<usize>,
    data: Vec<u8>,
}

fn decode_aggregate(data: &[u8]) -> Option<Aggregate> {
    let rest = data.strip_prefix(&KPL_MAGIC[..])?;
    if rest.len() <= DIGEST_LEN {
        return None;
    }
    let (message, digest) = rest.split_at(rest.len() - DIGEST_LEN);
    if Md5::digest(message).as_slice() != digest {
        return None;
    }
    let mut agg = Aggregate {
        partition_keys: Vec::new(),
        explicit_hash_keys: Vec::new(),
        records: Vec::new(),
    };
    let mut r = Reader(message);
    while !r.0.is_empty() {
        let (field, wire) = r.key()?;
        match (field, wire) {
            (1, 2) => agg
                .partition_keys
                .push(String::from_utf8(r.bytes()?.to_vec()).ok()?),
            (2, 2) => agg
                .explicit_hash_keys
                .push(String::from_utf8(r.bytes()?.to_vec()).ok()?),
            (3, 2) => agg.records.push(decode_record(r.bytes()?)?),
            _ => r.skip(wire)?,
        }
    }
    let pk_len = agg.partition_keys.len();
    let ehk_len = agg.explicit_hash_keys.len();
    let indexes_ok = agg.records.iter().all(|c| {
        c.partition_key_index < pk_len && c.explicit_hash_key_index.is_none_or(|i| i < ehk_len)
    });
    indexes_ok.then_some(agg)
}

fn decode_record(bytes: &[u8]) -> Option<ChildRecord> {
    let mut r = Reader(bytes);
    let (mut pk, mut ehk, mut data) = (None, None, None);
    while !r.0.is_empty() {
        match r.key()? {
            (1, 0) => pk = Some(usize::try_from(r.varint()?).ok()?),
            (2, 0) => ehk = Some(usize::try_from(r.varint()?).ok()?),
            (3, 2) => data = Some(r.bytes()?.to_vec()),
            (4, 2) => decode_tag(r.bytes()?)?,
            (_, wire) => r.skip(wire)?,
        }
    }
    Some(ChildRecord {
        partition_key_index: pk?,
        explicit_hash_key_index: ehk,
        data: data?,
    })
}

/// Checks a `Tag` (required `key`); tags are not used.
fn decode_tag(bytes: &[u8]) -> Option<()> {
    let mut r = Reader(bytes);
    let mut key = false;
    while !r.0.is_empty() {
        match r.key()? {
            (1, 2) => key = std::str::from_utf8(r.bytes()?).is_ok(),
            (_, wire) => r.skip(wire)?,
        }
    }
    key.then_some(())
}

/// A protobuf wire-format reader over a slice; every method returns `None` on malformed input.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Option<u64> {
        let mut value = 0u64;
        for i in 0..10 {
            let (&b, rest) = self.0.split_first()?;
            self.0 = rest;
            value |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Some(value);
            }
        }
        None
    }
    fn key(&mut self) -> Option<(u64, u8)> {
        let k = self.varint()?;
        let field = k >> 3;
        (field != 0).then_some((field, (k & 7) as u8))
    }
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.0.len() {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }
    fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = usize::try_from(self.varint()?).ok()?;
        self.take(n)
    }
    fn skip(&mut self, wire: u8) -> Option<()> {
        match wire {
            0 => self.varint().map(|_| ()),
            1 => self.take(8).map(|_| ()),
            2 => self.bytes().map(|_| ()),
            5 => self.take(4).map(|_| ()),
            _ => None,
        }
    }
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_bytes(out: &mut Vec<u8>, field: u64, bytes: &[u8]) {
    put_varint(out, (field << 3) | 2);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

fn varint_len(v: u64) -> usize {
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

/// Builds KPL aggregated records (what the KPL's `Aggregator` does), for `etl produce`.
///
/// Add user records with [`Aggregator::add`]; when it returns `false` the record does not fit,
/// so [`Aggregator::finish`] the current aggregate and add it again. Every output is a valid
/// aggregate, even one holding a single record.
#[derive(Debug, Default)]
pub struct Aggregator {
    keys: Vec<String>,
    message: Vec<u8>,
    records: usize,
    max_bytes: usize,
}

impl Aggregator {
    /// An aggregator whose outputs (magic + protobuf + digest + first partition key) stay within
    /// `max_bytes` (Kinesis allows 1 MiB per record by default, partition key included).
    pub fn new(max_bytes: usize) -> Self {
        Aggregator {
            max_bytes,
            ..Default::default()
        }
    }

    /// Number of user records in the current aggregate.
    pub fn len(&self) -> usize {
        self.records
    }

    /// Whether the current aggregate is empty.
    pub fn is_empty(&self) -> bool {
        self.records == 0
    }

    /// Partition key of the aggregate (its first record's key).
    pub fn partition_key(&self) -> Option<&str> {
        self.keys.first().map(String::as_str)
    }

    /// Adds a user record; `false` (nothing added) if it would make the aggregate too large while
    /// it already holds records. A lone oversized record is accepted (Kinesis will refuse it).
    pub fn add(&mut self, partition_key: &str, data: &[u8]) -> bool {
        let (index, new_key) = match self.keys.iter().position(|k| k == partition_key) {
            Some(i) => (i, false),
            None => (self.keys.len(), true),
        };
        let mut record = Vec::with_capacity(data.len() + 12);
        put_varint(&mut record, 1 << 3);
        put_varint(&mut record, index as u64);
        put_bytes(&mut record, 3, data);
        let key_cost = if new_key {
            1 + varint_len(partition_key.len() as u64) + partition_key.len()
        } else {
            0
        };
        let added = key_cost + 1 + varint_len(record.len() as u64) + record.len();
        let first_key = self.keys.first().map_or(partition_key.len(), String::len);
        let total = KPL_MAGIC.len() + self.message.len() + added + DIGEST_LEN + first_key;
        if self.records > 0 && total > self.max_bytes {
            return false;
        }
        if new_key {
            put_bytes(&mut self.message, 1, partition_key.as_bytes());
            self.keys.push(partition_key.to_string());
        }
        put_bytes(&mut self.message, 3, &record);
        self.records += 1;
        true
    }

    /// The aggregate's bytes and partition key, and a reset; `None` if empty.
    pub fn finish(&mut self) -> Option<(String, Vec<u8>)> {
        if self.records == 0 {
            return None;
        }
        let message = std::mem::take(&mut self.message);
        let key = self.keys.first().cloned().unwrap_or_default();
        self.keys.clear();
        self.records = 0;
        let mut out = Vec::with_capacity(KPL_MAGIC.len() + message.len() + DIGEST_LEN);
        out.extend_from_slice(&KPL_MAGIC);
        out.extend_from_slice(&message);
        out.extend_from_slice(Md5::digest(&message).as_slice());
        Some((key, out))
    }
}

#[cfg(test)]
mod tests;
