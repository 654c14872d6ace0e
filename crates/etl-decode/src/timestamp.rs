//! Timestamps: RFC 3339 text or epoch milliseconds to UTC epoch milliseconds, without chrono.
//!
//! Accepted text: `YYYY-MM-DD` + `T`/`t`/space + `hh:mm:ss`, an optional fraction of 1 to 9
//! digits, then `Z`/`z` or a `+hh:mm`/`-hh:mm` offset. Digits beyond milliseconds are truncated
//! toward negative infinity (the instant is never before 1970, so that is plain truncation).
//! Leap seconds (`:60`) are refused. The resulting UTC instant must lie in the years
//! 1970..=9999, checked after applying the offset.

/// First millisecond after the accepted range: 10000-01-01T00:00:00Z.
pub(crate) const MAX_MS_EXCLUSIVE: i64 = 253_402_300_800_000;

/// Whether epoch milliseconds lie in the accepted range (years 1970..=9999 UTC).
#[inline]
pub(crate) fn epoch_ms_in_range(ms: i64) -> bool {
    (0..MAX_MS_EXCLUSIVE).contains(&ms)
}

/// Why a timestamp text was refused; used in reject messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TsError {
    /// Not of the RFC 3339 shape.
    Format,
    /// A field out of range (month 13, Feb 30, hour 24, offset 24:00, ...).
    Field,
    /// Outside the years 1970..=9999 UTC.
    Range,
}

impl TsError {
    pub(crate) fn describe(self) -> &'static str {
        match self {
            TsError::Format => "not an RFC 3339 timestamp (e.g. 2026-11-01T00:00:01.250Z)",
            TsError::Field => "a date or time part is out of range",
            TsError::Range => "outside the years 1970..=9999 UTC",
        }
    }
}

#[inline(always)]
fn d2(b: &[u8], at: usize) -> Option<u32> {
    let hi = b.get(at)?.wrapping_sub(b'0');
    let lo = b.get(at + 1)?.wrapping_sub(b'0');
    if hi < 10 && lo < 10 {
        Some(hi as u32 * 10 + lo as u32)
    } else {
        None
    }
}

#[inline(always)]
fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(y) => 29,
        2 => 28,
        _ => 0,
    }
}

pub(crate) use etl_schema::calendar::days_from_civil;

/// Parses RFC 3339 text to UTC epoch milliseconds.
pub(crate) fn parse_rfc3339(s: &[u8]) -> Result<i64, TsError> {
    use TsError::*;
    // YYYY-MM-DDThh:mm:ss is 19 bytes; the shortest valid text adds `Z`.
    if s.len() < 20 {
        return Err(Format);
    }
    let year = match (d2(s, 0), d2(s, 2)) {
        (Some(a), Some(b)) => (a * 100 + b) as i64,
        _ => return Err(Format),
    };
    if s.get(4) != Some(&b'-')
        || s.get(7) != Some(&b'-')
        || s.get(13) != Some(&b':')
        || s.get(16) != Some(&b':')
    {
        return Err(Format);
    }
    if !matches!(s.get(10), Some(b'T' | b't' | b' ')) {
        return Err(Format);
    }
    let (Some(month), Some(day), Some(hour), Some(minute), Some(second)) =
        (d2(s, 5), d2(s, 8), d2(s, 11), d2(s, 14), d2(s, 17))
    else {
        return Err(Format);
    };
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return Err(Field);
    }
    if hour > 23 || minute > 59 || second > 59 {
        return Err(Field);
    }
    let mut pos = 19;
    let mut millis: u32 = 0;
    if s.get(pos) == Some(&b'.') {
        pos += 1;
        let frac_start = pos;
        while let Some(d) = s.get(pos).filter(|d| d.is_ascii_digit()) {
            if pos - frac_start < 3 {
                millis = millis * 10 + (d - b'0') as u32;
            }
            pos += 1;
        }
        let n = pos - frac_start;
        if n == 0 || n > 9 {
            return Err(Format);
        }
        for _ in n..3 {
            millis *= 10;
        }
    }
    let offset_min: i64 = match s.get(pos) {
        Some(b'Z' | b'z') => {
            pos += 1;
            0
        }
        Some(&sign @ (b'+' | b'-')) => {
            let (Some(oh), Some(om)) = (d2(s, pos + 1), d2(s, pos + 4)) else {
                return Err(Format);
            };
            if s.get(pos + 3) != Some(&b':') {
                return Err(Format);
            }
            if oh > 23 || om > 59 {
                return Err(Field);
            }
            pos += 6;
            let m = (oh * 60 + om) as i64;
            if sign == b'-' {
                -m
            } else {
                m
            }
        }
        _ => return Err(Format),
    };
    if pos != s.len() {
        return Err(Format);
    }
    let days = days_from_civil(year, month, day);
    let local_secs = days * 86_400 + (hour * 3600 + minute * 60 + second) as i64;
    let ms = (local_secs - offset_min * 60) * 1000 + millis as i64;
    if epoch_ms_in_range(ms) {
        Ok(ms)
    } else {
        Err(Range)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<i64, TsError> {
        parse_rfc3339(s.as_bytes())
    }

    #[test]
    fn basic_forms() {
        assert_eq!(p("1970-01-01T00:00:00Z"), Ok(0));
        assert_eq!(p("2026-11-01T00:00:01Z"), Ok(1_793_491_201_000));
        assert_eq!(p("2026-11-01t00:00:01z"), Ok(1_793_491_201_000));
        assert_eq!(p("2026-11-01 00:00:01Z"), Ok(1_793_491_201_000));
        assert_eq!(p("2026-11-01T00:00:01.5Z"), Ok(1_793_491_201_500));
        assert_eq!(p("2026-11-01T00:00:01.25Z"), Ok(1_793_491_201_250));
        assert_eq!(p("2026-11-01T00:00:01.123Z"), Ok(1_793_491_201_123));
        assert_eq!(p("2026-11-01T00:00:01.123999999Z"), Ok(1_793_491_201_123));
        assert_eq!(p("2026-11-01T00:00:01.999999Z"), Ok(1_793_491_201_999));
        assert_eq!(p("9999-12-31T23:59:59.999Z"), Ok(MAX_MS_EXCLUSIVE - 1));
    }

    #[test]
    fn offsets_cross_midnight_and_years() {
        // 01:30 at +02:00 is 23:30 the previous day in UTC.
        assert_eq!(p("2026-11-01T01:30:00+02:00"), p("2026-10-31T23:30:00Z"));
        // 22:15 at -05:30 is 03:45 the next day.
        assert_eq!(p("2026-10-31T22:15:00-05:30"), p("2026-11-01T03:45:00Z"));
        // New year's eve crossing into the next year, and back.
        assert_eq!(p("2025-12-31T20:00:00-08:00"), p("2026-01-01T04:00:00Z"));
        assert_eq!(p("2026-01-01T00:30:00+01:00"), p("2025-12-31T23:30:00Z"));
        assert_eq!(p("2026-01-01T00:00:00+23:59"), p("2025-12-31T00:01:00Z"));
        assert_eq!(p("2026-11-01T00:00:00-00:00"), p("2026-11-01T00:00:00Z"));
    }

    #[test]
    fn leap_years() {
        assert!(p("2024-02-29T12:00:00Z").is_ok());
        assert!(p("2000-02-29T12:00:00Z").is_ok());
        assert_eq!(p("2023-02-29T12:00:00Z"), Err(TsError::Field));
        assert_eq!(p("2100-02-29T12:00:00Z"), Err(TsError::Field));
        // Offset crossing into Feb 29 and out of it.
        assert_eq!(p("2024-03-01T00:30:00+01:00"), p("2024-02-29T23:30:00Z"));
        assert_eq!(p("2024-02-29T23:30:00-01:00"), p("2024-03-01T00:30:00Z"));
        assert_eq!(
            p("2024-03-01T00:00:00Z").unwrap() - p("2024-02-28T00:00:00Z").unwrap(),
            2 * 86_400_000
        );
        assert_eq!(
            p("2023-03-01T00:00:00Z").unwrap() - p("2023-02-28T00:00:00Z").unwrap(),
            86_400_000
        );
    }

    #[test]
    fn refuses_bad_text() {
        use TsError::*;
        for (s, e) in [
            ("", Format),
            ("2026-11-01", Format),
            ("2026-11-01T00:00:01", Format),
            ("2026-11-01T00:00Z", Format),
            ("2026/11/01T00:00:01Z", Format),
            ("2026-11-01X00:00:01Z", Format),
            ("2026-11-01T00:00:01.Z", Format),
            ("2026-11-01T00:00:01.1234567891Z", Format),
            ("2026-11-01T00:00:01+0200", Format),
            ("2026-11-01T00:00:01+02", Format),
            ("2026-11-01T00:00:01Z ", Format),
            ("+2026-11-01T00:00:01Z", Format),
            ("2026-1-01T00:00:01Z", Format),
            ("2026-11-01T00:00:01UTC", Format),
            ("2026-13-01T00:00:01Z", Field),
            ("2026-00-01T00:00:01Z", Field),
            ("2026-04-31T00:00:01Z", Field),
            ("2026-11-00T00:00:01Z", Field),
            ("2026-11-01T24:00:00Z", Field),
            ("2026-11-01T00:60:00Z", Field),
            ("2026-11-01T00:00:60Z", Field),
            ("2026-11-01T00:00:00+24:00", Field),
            ("1969-12-31T23:59:59Z", Range),
            ("1970-01-01T00:30:00+01:00", Range),
            ("0000-01-01T00:00:00Z", Range),
            ("9999-12-31T23:59:59-00:01", Range),
        ] {
            assert_eq!(p(s), Err(e), "{s:?}");
        }
        // Local 1969 that is 1970 in UTC is fine.
        assert_eq!(p("1969-12-31T23:00:00-02:00"), Ok(3_600_000));
    }

    #[test]
    fn matches_a_brute_force_calendar() {
        // Walk day by day from 1970 to 2400 and compare with a running counter.
        let mut days = 0i64;
        for y in 1970..2400i64 {
            for m in 1..=12u32 {
                for d in 1..=days_in_month(y, m) {
                    assert_eq!(days_from_civil(y, m, d), days, "{y}-{m}-{d}");
                    days += 1;
                }
            }
        }
    }
}
