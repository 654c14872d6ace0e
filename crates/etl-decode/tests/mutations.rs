//! Property-style test: random byte mutations of valid records never panic, every record is
//! either a row or a reject, and the JSON verdict agrees with serde_json.

use crate::common::*;
use arrow::array::AsArray;
use etl_decode::RejectReason;

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const INTERESTING: &[u8] =
    b"{}[]\",:\\u0123456789eE+-.tfn \t\r\n\x00\x1f\x7f\xc3\xa9\xed\xa0\x80\xff";

fn mutate(rng: &mut Rng, base: &[u8]) -> Vec<u8> {
    let mut v = base.to_vec();
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(v.len() + 1);
        let byte = if rng.below(2) == 0 {
            INTERESTING[rng.below(INTERESTING.len())]
        } else {
            rng.next() as u8
        };
        match rng.below(5) {
            0 if at < v.len() => v[at] = byte,
            1 => v.insert(at, byte),
            2 if at < v.len() => {
                v.remove(at);
            }
            3 => v.truncate(at),
            _ => {
                // Duplicate a slice somewhere else (repeats keys, nests values).
                let from = rng.below(v.len() + 1);
                let len = rng.below(24).min(v.len() - from);
                let piece = v[from..from + len].to_vec();
                let at = at.min(v.len());
                v.splice(at..at, piece);
            }
        }
    }
    v
}

fn run(stream: &str, base: &str, seed: u64, n: usize) {
    let mut rng = Rng(seed);
    let records: Vec<Vec<u8>> = (0..n).map(|_| mutate(&mut rng, base.as_bytes())).collect();
    let mut d = decoder(stream);
    let out = d
        .decode(records.iter().map(Vec::as_slice))
        .expect("no internal error");
    assert_eq!(out.rows.len() + out.rejects.len(), n);
    assert_eq!(out.batch.num_rows(), out.rows.len());
    assert_eq!(out.batch.schema(), schema(stream).decoded_arrow_schema());
    let mut accepted = vec![false; n];
    for &r in &out.rows {
        accepted[r as usize] = true;
    }
    for r in &out.rejects {
        assert!(
            !accepted[r.index as usize],
            "index {} both accepted and rejected",
            r.index
        );
        assert!(!r.message.is_empty());
    }
    for (i, rec) in records.iter().enumerate() {
        // serde_json refuses numbers beyond f64 into a Value; they are valid JSON all the same.
        let serde_ok = match serde_json::from_slice::<serde_json::Value>(rec) {
            Ok(_) => true,
            Err(e) => {
                e.to_string().contains("number out of range")
                    && serde_json::from_slice::<serde::de::IgnoredAny>(rec).is_ok()
            }
        };
        let reason = out
            .rejects
            .iter()
            .find(|r| r.index as usize == i)
            .map(|r| r.reason);
        match reason {
            Some(RejectReason::InvalidJson | RejectReason::InvalidUtf8) => {
                assert!(
                    !serde_ok,
                    "we call valid JSON invalid: {:?}",
                    String::from_utf8_lossy(rec)
                )
            }
            _ => assert!(
                serde_ok,
                "we accept invalid JSON: {:?} ({reason:?})",
                String::from_utf8_lossy(rec)
            ),
        }
    }
    // Every extras / json text we produced is valid JSON.
    for name in ["extras", "properties"] {
        if let Some(col) = out.batch.column_by_name(name) {
            for text in col.as_string::<i32>().iter().flatten() {
                assert!(
                    serde_json::from_str::<serde_json::Value>(text).is_ok(),
                    "{name}: {text}"
                );
            }
        }
    }
}

#[test]
fn mutated_app_events_never_panic() {
    run("app_events", APP_OK, 0x9E37_79B9_7F4A_7C15, 20_000);
}

#[test]
fn mutated_call_events_never_panic() {
    run("call_events", CALL_OK, 0xD1B5_4A32_D192_ED03, 20_000);
}
