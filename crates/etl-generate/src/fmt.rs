//! Low-level helpers shared by the record writers: cheap random draws, integer / hex / fixed-point
//! / timestamp formatting straight into a byte buffer, and a tiny JSON object writer that can
//! inject the faults used for malformed records.
//!
//! Everything here writes ASCII that needs no JSON escaping; callers only pass such values.

use rand::RngCore;
use rand_chacha::ChaCha8Rng;

pub(crate) type Rng = ChaCha8Rng;

/// Uniform in `[0, 1)`.
#[inline]
pub(crate) fn unit(r: &mut Rng) -> f64 {
    (r.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// Uniform in `0..n` (multiply-shift; the bias is far below anything a test could see).
#[inline]
pub(crate) fn below(r: &mut Rng, n: u32) -> u32 {
    ((u64::from(r.next_u32()) * u64::from(n)) >> 32) as u32
}

/// Uniform in `lo..hi` (`hi > lo`).
#[inline]
pub(crate) fn range_i64(r: &mut Rng, lo: i64, hi: i64) -> i64 {
    lo + ((r.next_u64() >> 1) % ((hi - lo) as u64)) as i64
}

/// Uniform in `[lo, hi)`.
#[inline]
pub(crate) fn range_f64(r: &mut Rng, lo: f64, hi: f64) -> f64 {
    lo + unit(r) * (hi - lo)
}

/// `true` with probability `p`.
#[inline]
pub(crate) fn chance(r: &mut Rng, p: f64) -> bool {
    unit(r) < p
}

/// Pick from a small weighted table.
#[inline]
pub(crate) fn pick<T: Copy>(r: &mut Rng, items: &[(T, u32)]) -> T {
    let total: u32 = items.iter().map(|(_, w)| *w).sum();
    let mut x = below(r, total);
    for (item, w) in items {
        if x < *w {
            return *item;
        }
        x -= *w;
    }
    items[items.len() - 1].0
}

/// Uniformly pick from a slice.
#[inline]
pub(crate) fn pick_uniform<T: Copy>(r: &mut Rng, items: &[T]) -> T {
    items[below(r, items.len() as u32) as usize]
}

/// SplitMix64 finaliser: a bijection on u64, so distinct inputs give distinct ids.
#[inline]
pub(crate) fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[inline]
pub(crate) fn push_u64(out: &mut Vec<u8>, mut v: u64) {
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&tmp[i..]);
}

#[inline]
pub(crate) fn push_i64(out: &mut Vec<u8>, v: i64) {
    if v < 0 {
        out.push(b'-');
    }
    push_u64(out, v.unsigned_abs());
}

/// Zero-padded to `width` digits (`v` must fit).
#[inline]
pub(crate) fn push_padded(out: &mut Vec<u8>, mut v: u64, width: usize) {
    let start = out.len();
    out.resize(start + width, b'0');
    let mut i = start + width;
    while v > 0 && i > start {
        i -= 1;
        out[i] = b'0' + (v % 10) as u8;
        v /= 10;
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// The low `nibbles` hex digits of `v`, most significant first.
#[inline]
pub(crate) fn push_hex(out: &mut Vec<u8>, v: u64, nibbles: u32) {
    let mut tmp = [0u8; 16];
    let n = nibbles.min(16) as usize;
    for (i, b) in tmp[..n].iter_mut().enumerate() {
        *b = HEX[((v >> ((n - 1 - i) * 4)) & 0xf) as usize];
    }
    out.extend_from_slice(&tmp[..n]);
}

/// A non-negative value with a fixed number of decimals (`decimals` <= 4).
#[inline]
pub(crate) fn push_fixed(out: &mut Vec<u8>, v: f64, decimals: u32) {
    let scale = 10u64.pow(decimals);
    let n = (v.max(0.0) * scale as f64).round() as u64;
    push_u64(out, n / scale);
    out.push(b'.');
    push_padded(out, n % scale, decimals as usize);
}

pub(crate) use etl_schema::calendar::civil_from_days;

/// How a timestamp is spelled in the JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TsStyle {
    /// `"2026-11-01T00:00:01.234Z"`
    Millis,
    /// `"2026-11-01T00:00:01Z"` (the milliseconds are dropped)
    Seconds,
    /// `"2026-11-01T02:00:01.234+02:00"`, offset in minutes
    Offset(i16),
    /// `1793491201234`
    Epoch,
}

const OFFSETS: [i16; 7] = [120, -300, 330, 540, -180, 60, -420];

impl TsStyle {
    /// Mostly millisecond UTC strings; 5% each without fraction, with an offset, as epoch millis.
    #[inline]
    pub(crate) fn pick(r: &mut Rng) -> TsStyle {
        match below(r, 100) {
            0..=84 => TsStyle::Millis,
            85..=89 => TsStyle::Seconds,
            90..=94 => TsStyle::Offset(pick_uniform(r, &OFFSETS)),
            _ => TsStyle::Epoch,
        }
    }
}

/// Writes timestamps; caches the `YYYY-MM-DDT` prefix of the last day written.
#[derive(Debug, Clone)]
pub(crate) struct TsWriter {
    day: i64,
    prefix: [u8; 11],
}

impl TsWriter {
    pub(crate) fn new() -> Self {
        TsWriter {
            day: i64::MIN,
            prefix: [0; 11],
        }
    }

    fn push_datetime(&mut self, out: &mut Vec<u8>, ms: i64, fraction: bool) {
        let secs = ms.div_euclid(1000);
        let day = secs.div_euclid(86_400);
        if day != self.day {
            let (y, m, d) = civil_from_days(day);
            let mut p = Vec::with_capacity(11);
            push_padded(&mut p, y.clamp(0, 9999) as u64, 4);
            p.push(b'-');
            push_padded(&mut p, u64::from(m), 2);
            p.push(b'-');
            push_padded(&mut p, u64::from(d), 2);
            p.push(b'T');
            self.prefix.copy_from_slice(&p);
            self.day = day;
        }
        out.extend_from_slice(&self.prefix);
        let sod = secs.rem_euclid(86_400) as u64;
        push_two(out, sod / 3600);
        out.push(b':');
        push_two(out, (sod / 60) % 60);
        out.push(b':');
        push_two(out, sod % 60);
        if fraction {
            out.push(b'.');
            push_padded(out, ms.rem_euclid(1000) as u64, 3);
        }
    }

    /// Writes the JSON value (quoted unless epoch) and returns the instant it denotes.
    pub(crate) fn push(&mut self, out: &mut Vec<u8>, ms: i64, style: TsStyle) -> i64 {
        match style {
            TsStyle::Millis => {
                out.push(b'"');
                self.push_datetime(out, ms, true);
                out.extend_from_slice(b"Z\"");
                ms
            }
            TsStyle::Seconds => {
                out.push(b'"');
                self.push_datetime(out, ms, false);
                out.extend_from_slice(b"Z\"");
                ms - ms.rem_euclid(1000)
            }
            TsStyle::Offset(minutes) => {
                out.push(b'"');
                self.push_datetime(out, ms + i64::from(minutes) * 60_000, true);
                out.push(if minutes < 0 { b'-' } else { b'+' });
                let abs = u64::from(minutes.unsigned_abs());
                push_two(out, abs / 60);
                out.push(b':');
                push_two(out, abs % 60);
                out.push(b'"');
                ms
            }
            TsStyle::Epoch => {
                push_i64(out, ms);
                ms
            }
        }
    }
}

#[inline]
fn push_two(out: &mut Vec<u8>, v: u64) {
    out.push(b'0' + (v / 10) as u8);
    out.push(b'0' + (v % 10) as u8);
}

/// A fault to inject while writing one record (malformed records only).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Fault<'a> {
    /// Write the record as it is.
    None,
    /// Leave this top-level field out.
    Omit(&'static str),
    /// Write these raw bytes as the value of this top-level field (added if the record lacks it).
    Replace(&'static str, &'a [u8]),
    /// Add a `"debug_blob"` string of this many bytes, making the record oversize.
    Oversize(usize),
}

/// Writes one JSON object field by field, applying a [`Fault`].
pub(crate) struct JsonObj<'o, 'f> {
    out: &'o mut Vec<u8>,
    fault: Fault<'f>,
    first: bool,
    replaced: bool,
}

impl<'o, 'f> JsonObj<'o, 'f> {
    #[inline]
    pub(crate) fn begin(out: &'o mut Vec<u8>, fault: Fault<'f>) -> Self {
        out.push(b'{');
        JsonObj {
            out,
            fault,
            first: true,
            replaced: false,
        }
    }

    #[inline]
    fn key(&mut self, name: &str) {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        self.out.push(b'"');
        self.out.extend_from_slice(name.as_bytes());
        self.out.extend_from_slice(b"\":");
    }

    /// Writes `"name":<value>` where `value` writes the JSON value, unless the fault says otherwise.
    #[inline]
    pub(crate) fn field(&mut self, name: &'static str, value: impl FnOnce(&mut Vec<u8>)) {
        match self.fault {
            Fault::None | Fault::Oversize(_) => {}
            Fault::Omit(n) if n == name => return,
            Fault::Replace(n, raw) if n == name => {
                self.key(name);
                self.out.extend_from_slice(raw);
                self.replaced = true;
                return;
            }
            _ => {}
        }
        self.key(name);
        value(self.out);
    }

    /// A string field; `v` must need no escaping.
    #[inline]
    pub(crate) fn str(&mut self, name: &'static str, v: &[u8]) {
        self.field(name, |o| {
            o.push(b'"');
            o.extend_from_slice(v);
            o.push(b'"');
        });
    }

    /// A raw, already-encoded extra field (`"key":value` without separators).
    #[inline]
    pub(crate) fn raw_member(&mut self, member: &[u8]) {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        self.out.extend_from_slice(member);
    }

    /// Closes the object, adding a replacement the record did not have and any oversize blob.
    #[inline]
    pub(crate) fn finish(mut self) {
        match self.fault {
            Fault::Replace(name, raw) if !self.replaced => {
                self.key(name);
                self.out.extend_from_slice(raw);
            }
            Fault::Oversize(n) => {
                self.key("debug_blob");
                self.out.push(b'"');
                let start = self.out.len();
                self.out.resize(start + n, b'x');
                self.out.push(b'"');
            }
            _ => {}
        }
        self.out.push(b'}');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_392), (2025, 10, 31));
        assert_eq!(civil_from_days(20_758), (2026, 11, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }

    #[test]
    fn timestamps() {
        let mut w = TsWriter::new();
        let ms = 1_793_491_201_234; // 2026-11-01T00:00:01.234Z
        let mut out = Vec::new();
        assert_eq!(w.push(&mut out, ms, TsStyle::Millis), ms);
        assert_eq!(out, b"\"2026-11-01T00:00:01.234Z\"");
        out.clear();
        assert_eq!(w.push(&mut out, ms, TsStyle::Seconds), ms - 234);
        assert_eq!(out, b"\"2026-11-01T00:00:01Z\"");
        out.clear();
        w.push(&mut out, ms, TsStyle::Offset(-300));
        assert_eq!(out, b"\"2026-10-31T19:00:01.234-05:00\"");
        out.clear();
        w.push(&mut out, ms, TsStyle::Offset(330));
        assert_eq!(out, b"\"2026-11-01T05:30:01.234+05:30\"");
        out.clear();
        w.push(&mut out, ms, TsStyle::Epoch);
        assert_eq!(out, b"1793491201234");
    }

    #[test]
    fn numbers() {
        let mut out = Vec::new();
        push_fixed(&mut out, 4.256, 2);
        out.push(b' ');
        push_fixed(&mut out, 0.04, 2);
        out.push(b' ');
        push_i64(&mut out, -42);
        out.push(b' ');
        push_hex(&mut out, 0xab, 4);
        assert_eq!(out, b"4.26 0.04 -42 00ab");
    }
}
