//! What recovery checks before it trusts a shard's commit log (docs/delivery.md, "When the log
//! is inconsistent"): the records are numbered `0..=h` without a hole, the highest record is the
//! one its name says, it follows its predecessor exactly (`previous_last` = the predecessor's
//! `last`) and starts after it (no overlap). Like kafka-delta-ingest's inconsistent-offsets
//! check, a log that fails is refused: the shard is not read, nothing is written.

use super::{CommitRecord, DeliveryError};
use std::cmp::Ordering;

/// Orders two positions of one source as written in commit records: dot-separated components
/// (`<sequence>.<sub-sequence>` for Kinesis, a line number for files), each compared as a
/// number when both are digits (any length: Kinesis sequence numbers exceed `u128`), else as
/// text.
pub fn compare_positions(a: &str, b: &str) -> Ordering {
    let mut left = a.split('.');
    let mut right = b.split('.');
    loop {
        match (left.next(), right.next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) => {
                let order = if is_number(x) && is_number(y) {
                    let (x, y) = (x.trim_start_matches('0'), y.trim_start_matches('0'));
                    x.len().cmp(&y.len()).then_with(|| x.cmp(y))
                } else {
                    x.cmp(y)
                };
                if order != Ordering::Equal {
                    return order;
                }
            }
        }
    }
}

fn is_number(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// The record numbers found in a log listing must be exactly `0..=h`.
pub(super) fn numbering(stream: &str, shard: &str, numbers: &[u64]) -> Result<(), DeliveryError> {
    for (expected, &n) in numbers.iter().enumerate() {
        if n != expected as u64 {
            return Err(DeliveryError::Inconsistent {
                stream: stream.into(),
                shard: shard.into(),
                n: expected as u64,
                message: format!(
                    "record {expected} is missing (the log holds {} records, the highest is {})",
                    numbers.len(),
                    numbers.last().copied().unwrap_or_default()
                ),
            });
        }
    }
    Ok(())
}

/// `record` is the one stored under its name and covers a non-empty range.
pub(super) fn identity(
    stream: &str,
    shard: &str,
    n: u64,
    record: &CommitRecord,
) -> Result<(), DeliveryError> {
    let bad = |message: String| DeliveryError::Inconsistent {
        stream: stream.into(),
        shard: shard.into(),
        n,
        message,
    };
    if record.n != n || record.stream != stream || record.shard != shard {
        return Err(bad(format!(
            "the record stored as number {n} of {stream}/{shard} says it is number {} of {}/{}",
            record.n, record.stream, record.shard
        )));
    }
    if compare_positions(&record.first, &record.last) == Ordering::Greater {
        return Err(bad(format!(
            "its range {}..={} ends before it starts",
            record.first, record.last
        )));
    }
    Ok(())
}

/// `record` continues `previous` exactly: no gap, no overlap.
pub(super) fn link(previous: &CommitRecord, record: &CommitRecord) -> Result<(), DeliveryError> {
    let bad = |message: String| DeliveryError::Inconsistent {
        stream: record.stream.clone(),
        shard: record.shard.clone(),
        n: record.n,
        message,
    };
    match &record.previous_last {
        Some(p) if *p == previous.last => {}
        Some(p) => {
            return Err(bad(format!(
                "it says it follows position {p}, but record {} ends at {}",
                previous.n, previous.last
            )))
        }
        None => {
            return Err(bad(format!(
                "it names no predecessor, but record {} ends at {}",
                previous.n, previous.last
            )))
        }
    }
    if compare_positions(&record.first, &previous.last) != Ordering::Greater {
        return Err(bad(format!(
            "its range {}..={} overlaps record {}, which ends at {}",
            record.first, record.last, previous.n, previous.last
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::compare_positions;
    use std::cmp::Ordering::*;

    #[test]
    fn positions_compare_as_numbers_of_any_length() {
        assert_eq!(compare_positions("9.0", "10.0"), Less);
        assert_eq!(
            compare_positions(
                "49590338271490256608559692538361571095921575989136588898.3",
                "49590338271490256608559692538361571095921575989136588898.12"
            ),
            Less
        );
        assert_eq!(compare_positions("12", "12"), Equal);
        assert_eq!(compare_positions("12.1", "12"), Greater);
        assert_eq!(compare_positions("007", "7"), Equal);
        assert_eq!(compare_positions("b", "a"), Greater);
    }
}
