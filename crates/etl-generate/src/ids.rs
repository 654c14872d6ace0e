//! Identifiers and phone numbers. Ids come from a bijective mix of a counter and a seed-derived
//! key, so they look random but never repeat within a run.

use crate::fmt::{below, mix64, pick, push_hex, push_padded, unit, Rng};

/// Per-run keys, derived from the seed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Keys {
    pub(crate) app_event: u64,
    pub(crate) call_event: u64,
    pub(crate) call: u64,
    pub(crate) session: u64,
    pub(crate) user: u64,
    pub(crate) account: u64,
    pub(crate) thread: u64,
}

impl Keys {
    pub(crate) fn new(seed: u64) -> Self {
        let k = |i: u64| mix64(seed ^ mix64(0x5eed_0000_0000_0000 + i));
        Keys {
            app_event: k(1),
            call_event: k(2),
            call: k(3),
            session: k(4),
            user: k(5),
            account: k(6),
            thread: k(7),
        }
    }
}

const SPREAD: u64 = 0x9e37_79b9_7f4a_7c15;

/// A UUID-v4-looking event id (36 chars); the last 64 bits are a bijection of `no`.
#[inline]
pub(crate) fn push_event_id(out: &mut Vec<u8>, no: u64, key: u64) {
    let lo = mix64(no.wrapping_add(key));
    let hi = mix64(lo ^ SPREAD);
    push_hex(out, hi >> 32, 8);
    out.push(b'-');
    push_hex(out, hi >> 16, 4);
    out.extend_from_slice(b"-4");
    push_hex(out, hi, 3);
    out.push(b'-');
    push_hex(out, lo >> 48, 4);
    out.push(b'-');
    push_hex(out, lo, 12);
}

/// `prefix` followed by 32 hex digits (Twilio-style `CA…` / `AC…` sids).
#[inline]
pub(crate) fn push_sid(out: &mut Vec<u8>, prefix: &[u8], no: u64, key: u64) {
    let a = mix64(no.wrapping_add(key));
    out.extend_from_slice(prefix);
    push_hex(out, a, 16);
    push_hex(out, mix64(a ^ SPREAD), 16);
}

/// `prefix` followed by 16 hex digits.
#[inline]
pub(crate) fn push_short_id(out: &mut Vec<u8>, prefix: &[u8], no: u64, key: u64) {
    out.extend_from_slice(prefix);
    push_hex(out, mix64(no.wrapping_add(key)), 16);
}

/// Accounts are skewed: a few big customers own most of the traffic.
#[inline]
pub(crate) fn skewed_index(r: &mut Rng, n: u32) -> u32 {
    let u = unit(r);
    ((u * u * f64::from(n)) as u32).min(n - 1)
}

/// Country calling codes: (code, national digits, first national digit range, weight, region).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Dialing {
    pub(crate) code: &'static [u8],
    pub(crate) national: u32,
    pub(crate) first_lo: u32,
    pub(crate) first_hi: u32,
    pub(crate) region: &'static str,
}

const DIALING: [(Dialing, u32); 11] = [
    (
        Dialing {
            code: b"1",
            national: 10,
            first_lo: 2,
            first_hi: 9,
            region: "us-east-1",
        },
        28,
    ),
    (
        Dialing {
            code: b"1",
            national: 10,
            first_lo: 2,
            first_hi: 9,
            region: "us-west-2",
        },
        14,
    ),
    (
        Dialing {
            code: b"44",
            national: 10,
            first_lo: 7,
            first_hi: 7,
            region: "eu-west-1",
        },
        10,
    ),
    (
        Dialing {
            code: b"49",
            national: 11,
            first_lo: 1,
            first_hi: 9,
            region: "eu-central-1",
        },
        8,
    ),
    (
        Dialing {
            code: b"33",
            national: 9,
            first_lo: 6,
            first_hi: 7,
            region: "eu-west-3",
        },
        5,
    ),
    (
        Dialing {
            code: b"34",
            national: 9,
            first_lo: 6,
            first_hi: 7,
            region: "eu-west-1",
        },
        4,
    ),
    (
        Dialing {
            code: b"91",
            national: 10,
            first_lo: 6,
            first_hi: 9,
            region: "ap-south-1",
        },
        11,
    ),
    (
        Dialing {
            code: b"61",
            national: 9,
            first_lo: 4,
            first_hi: 4,
            region: "ap-southeast-2",
        },
        5,
    ),
    (
        Dialing {
            code: b"81",
            national: 10,
            first_lo: 7,
            first_hi: 9,
            region: "ap-northeast-1",
        },
        5,
    ),
    (
        Dialing {
            code: b"55",
            national: 11,
            first_lo: 1,
            first_hi: 9,
            region: "sa-east-1",
        },
        6,
    ),
    (
        Dialing {
            code: b"52",
            national: 10,
            first_lo: 1,
            first_hi: 9,
            region: "us-east-1",
        },
        4,
    ),
];

/// An E.164 number: '+' and 8..15 digits, first digit 1-9.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Phone {
    bytes: [u8; 16],
    len: u8,
}

impl Phone {
    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    /// A random number and the media region nearest its country.
    pub(crate) fn random(r: &mut Rng) -> (Phone, &'static str) {
        let d = pick(r, &DIALING);
        let mut v = Vec::with_capacity(16);
        v.push(b'+');
        v.extend_from_slice(d.code);
        v.push(b'0' + (d.first_lo + below(r, d.first_hi - d.first_lo + 1)) as u8);
        let rest = d.national - 1;
        let n = (unit(r) * 10f64.powi(rest as i32)) as u64;
        push_padded(&mut v, n, rest as usize);
        let mut bytes = [0u8; 16];
        bytes[..v.len()].copy_from_slice(&v);
        (
            Phone {
                bytes,
                len: v.len() as u8,
            },
            d.region,
        )
    }
}
