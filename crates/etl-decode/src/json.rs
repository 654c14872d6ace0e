//! A strict, allocation-free JSON scanner over one UTF-8 record.
//!
//! It validates the full RFC 8259 grammar (strings with their escapes, numbers, literals and nested
//! containers) and reports where each value sits in the input, so callers borrow strings and raw
//! JSON text straight from the record instead of building a value tree. Escaped strings are only
//! decoded ([`unescape`]) when a typed field needs their text.
//!
//! The input must already be valid UTF-8 (the decoder checks that first), which is why the scanner
//! only has to look at ASCII bytes: every byte >= 0x80 inside a string is accepted as is.

/// Deepest nesting of arrays/objects accepted inside a record (as serde_json).
pub(crate) const MAX_DEPTH: usize = 128;

/// A JSON syntax error. A zero-sized marker so that `Result<Raw, SyntaxError>` stays small
/// enough to be returned in registers; the position and description are kept in the
/// [`Cursor`] (`err_pos`, `err_what`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SyntaxError;

/// What kind of JSON value a [`Raw`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// The key was not in the record (never produced by the scanner itself).
    Absent,
    Null,
    True,
    False,
    /// A number; `is_int` when written without fraction and exponent.
    Number {
        is_int: bool,
    },
    /// A string; `escaped` when it contains at least one backslash escape.
    String {
        escaped: bool,
    },
    Array,
    Object,
}

impl Kind {
    /// Name used in reject messages ("got a string").
    pub(crate) fn describe(self) -> &'static str {
        match self {
            Kind::Absent => "nothing",
            Kind::Null => "null",
            Kind::True | Kind::False => "a boolean",
            Kind::Number { is_int: true } => "an integer",
            Kind::Number { is_int: false } => "a number with a fraction or exponent",
            Kind::String { .. } => "a string",
            Kind::Array => "an array",
            Kind::Object => "an object",
        }
    }
}

/// One scanned value: its kind and its raw text `start..end` in the record (strings include
/// their quotes). Offsets are `u32` (records are capped at 1 GiB) to keep it at 12 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Raw {
    pub kind: Kind,
    pub start: u32,
    pub end: u32,
}

impl Raw {
    pub(crate) const ABSENT: Raw = Raw {
        kind: Kind::Absent,
        start: 0,
        end: 0,
    };

    #[inline(always)]
    pub(crate) fn new(kind: Kind, start: usize, end: usize) -> Self {
        Raw {
            kind,
            start: start as u32,
            end: end as u32,
        }
    }

    /// The raw text's byte range.
    #[inline(always)]
    pub(crate) fn range(&self) -> std::ops::Range<usize> {
        self.start as usize..self.end as usize
    }

    /// The text between the quotes of a string value.
    #[inline(always)]
    pub(crate) fn inner(&self) -> (usize, usize) {
        let start = self.start as usize + 1;
        (start, (self.end as usize).saturating_sub(1).max(start))
    }
}

/// A cursor over one record.
pub(crate) struct Cursor<'a> {
    pub b: &'a [u8],
    pub pos: usize,
    /// Where the last syntax error was found.
    pub err_pos: usize,
    /// What was expected there.
    pub err_what: &'static str,
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// Bit 7 of each byte of the result is set for bytes of `x` that end or interrupt a plain string
/// run: `"`, `\` or a control character. The lowest flagged byte is always a true match.
#[inline(always)]
fn special_bytes(x: u64) -> u64 {
    let quote = x ^ (ONES * b'"' as u64);
    let bslash = x ^ (ONES * b'\\' as u64);
    let zero_q = quote.wrapping_sub(ONES) & !quote;
    let zero_b = bslash.wrapping_sub(ONES) & !bslash;
    let ctrl = x.wrapping_sub(ONES * 0x20) & !x;
    (zero_q | zero_b | ctrl) & HIGHS
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(b: &'a [u8]) -> Self {
        Cursor {
            b,
            pos: 0,
            err_pos: 0,
            err_what: "",
        }
    }

    #[inline(always)]
    pub(crate) fn peek(&self) -> Option<u8> {
        self.b.get(self.pos).copied()
    }

    #[inline(always)]
    pub(crate) fn at_end(&self) -> bool {
        self.pos >= self.b.len()
    }

    #[inline(always)]
    pub(crate) fn err(&mut self, what: &'static str) -> SyntaxError {
        self.err_pos = self.pos;
        self.err_what = what;
        SyntaxError
    }

    #[inline(always)]
    pub(crate) fn skip_ws(&mut self) {
        while let Some(c) = self.peek() {
            if matches!(c, b' ' | b'\n' | b'\r' | b'\t') {
                self.pos += 1;
            } else {
                break;
            }
        }
    }

    /// Consumes `c` (after optional whitespace) or fails with `what`.
    #[inline(always)]
    pub(crate) fn expect(&mut self, c: u8, what: &'static str) -> Result<(), SyntaxError> {
        self.skip_ws();
        if self.peek() == Some(c) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.err(what))
        }
    }

    /// Scans a string starting at the opening quote under the cursor.
    pub(crate) fn scan_string(&mut self) -> Result<Raw, SyntaxError> {
        let start = self.pos;
        if self.peek() != Some(b'"') {
            return Err(self.err("expected a string"));
        }
        self.pos += 1;
        let mut escaped = false;
        loop {
            // Fast path: eight bytes at a time until a quote, backslash or control byte.
            while let Some(chunk) = self.b.get(self.pos..self.pos + 8) {
                let mut word = [0u8; 8];
                word.copy_from_slice(chunk);
                let mask = special_bytes(u64::from_le_bytes(word));
                if mask == 0 {
                    self.pos += 8;
                } else {
                    self.pos += (mask.trailing_zeros() / 8) as usize;
                    break;
                }
            }
            let Some(c) = self.peek() else {
                return Err(self.err("unterminated string"));
            };
            match c {
                b'"' => {
                    self.pos += 1;
                    return Ok(Raw::new(Kind::String { escaped }, start, self.pos));
                }
                b'\\' => {
                    escaped = true;
                    self.pos += 1;
                    self.scan_escape()?;
                }
                0x00..=0x1f => return Err(self.err("control character in string")),
                _ => self.pos += 1,
            }
        }
    }

    /// Validates one escape; the cursor is just past the backslash.
    fn scan_escape(&mut self) -> Result<(), SyntaxError> {
        match self.peek() {
            Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => {
                self.pos += 1;
                Ok(())
            }
            Some(b'u') => {
                self.pos += 1;
                let unit = self.hex4()?;
                if (0xD800..0xDC00).contains(&unit) {
                    if self.b.get(self.pos..self.pos + 2) != Some(b"\\u") {
                        return Err(self.err("lone surrogate in \\u escape"));
                    }
                    self.pos += 2;
                    let low = self.hex4()?;
                    if !(0xDC00..0xE000).contains(&low) {
                        return Err(self.err("lone surrogate in \\u escape"));
                    }
                } else if (0xDC00..0xE000).contains(&unit) {
                    return Err(self.err("lone surrogate in \\u escape"));
                }
                Ok(())
            }
            _ => Err(self.err("invalid escape in string")),
        }
    }

    fn hex4(&mut self) -> Result<u32, SyntaxError> {
        let Some(digits) = self.b.get(self.pos..self.pos + 4) else {
            return Err(self.err("truncated \\u escape"));
        };
        let mut v = 0u32;
        for &d in digits {
            let n = match d {
                b'0'..=b'9' => d - b'0',
                b'a'..=b'f' => d - b'a' + 10,
                b'A'..=b'F' => d - b'A' + 10,
                _ => return Err(self.err("invalid \\u escape")),
            };
            v = v * 16 + n as u32;
        }
        self.pos += 4;
        Ok(v)
    }

    /// Scans a number at the cursor.
    pub(crate) fn scan_number(&mut self) -> Result<Raw, SyntaxError> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => self.digits(),
            _ => return Err(self.err("invalid number")),
        }
        let mut is_int = true;
        if self.peek() == Some(b'.') {
            is_int = false;
            self.pos += 1;
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return Err(self.err("expected a digit after the decimal point"));
            }
            self.digits();
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            is_int = false;
            self.pos += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return Err(self.err("expected a digit in the exponent"));
            }
            self.digits();
        }
        Ok(Raw::new(Kind::Number { is_int }, start, self.pos))
    }

    #[inline(always)]
    fn digits(&mut self) {
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.pos += 1;
        }
    }

    fn literal(&mut self, word: &'static [u8], kind: Kind) -> Result<Raw, SyntaxError> {
        let start = self.pos;
        if self.b.get(self.pos..self.pos + word.len()) == Some(word) {
            self.pos += word.len();
            Ok(Raw::new(kind, start, self.pos))
        } else {
            Err(self.err("invalid literal"))
        }
    }

    /// Scans any value at the cursor (no leading whitespace), validating nested containers.
    /// `depth` is the nesting level of the container holding this value.
    #[inline]
    pub(crate) fn scan_value(&mut self, depth: usize) -> Result<Raw, SyntaxError> {
        match self.peek() {
            Some(b'"') => self.scan_string(),
            Some(b'-' | b'0'..=b'9') => self.scan_number(),
            Some(b't') => self.literal(b"true", Kind::True),
            Some(b'f') => self.literal(b"false", Kind::False),
            Some(b'n') => self.literal(b"null", Kind::Null),
            Some(b'{') => self.skip_object(depth + 1),
            Some(b'[') => self.skip_array(depth + 1),
            Some(_) => Err(self.err("expected a JSON value")),
            None => Err(self.err("unexpected end of input")),
        }
    }

    #[inline(never)]
    fn skip_object(&mut self, depth: usize) -> Result<Raw, SyntaxError> {
        if depth > MAX_DEPTH {
            return Err(self.err("nesting too deep"));
        }
        let start = self.pos;
        self.pos += 1;
        self.skip_ws();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(Raw::new(Kind::Object, start, self.pos));
        }
        loop {
            self.skip_ws();
            self.scan_string()?;
            self.expect(b':', "expected `:` after an object key")?;
            self.skip_ws();
            self.scan_value(depth)?;
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(Raw::new(Kind::Object, start, self.pos));
                }
                _ => return Err(self.err("expected `,` or `}` in an object")),
            }
        }
    }

    #[inline(never)]
    fn skip_array(&mut self, depth: usize) -> Result<Raw, SyntaxError> {
        if depth > MAX_DEPTH {
            return Err(self.err("nesting too deep"));
        }
        let start = self.pos;
        self.pos += 1;
        self.skip_ws();
        if self.peek() == Some(b']') {
            self.pos += 1;
            return Ok(Raw::new(Kind::Array, start, self.pos));
        }
        loop {
            self.skip_ws();
            self.scan_value(depth)?;
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    return Ok(Raw::new(Kind::Array, start, self.pos));
                }
                _ => return Err(self.err("expected `,` or `]` in an array")),
            }
        }
    }
}

/// Appends the decoded text of a validated string body (between the quotes) to `out`.
/// Malformed escapes cannot occur after [`Cursor::scan_string`]; should one slip through it is
/// replaced by U+FFFD rather than panicking.
pub(crate) fn unescape(body: &str, out: &mut String) {
    let mut rest = body;
    while let Some(i) = rest.find('\\') {
        out.push_str(rest.get(..i).unwrap_or(""));
        let esc = rest.get(i + 1..).unwrap_or("");
        let mut chars = esc.chars();
        let consumed = match chars.next() {
            Some('"') => {
                out.push('"');
                1
            }
            Some('\\') => {
                out.push('\\');
                1
            }
            Some('/') => {
                out.push('/');
                1
            }
            Some('b') => {
                out.push('\u{8}');
                1
            }
            Some('f') => {
                out.push('\u{c}');
                1
            }
            Some('n') => {
                out.push('\n');
                1
            }
            Some('r') => {
                out.push('\r');
                1
            }
            Some('t') => {
                out.push('\t');
                1
            }
            Some('u') => {
                let hi = esc.get(1..5).and_then(|h| u32::from_str_radix(h, 16).ok());
                match hi {
                    Some(hi @ 0xD800..=0xDBFF) => {
                        let lo = esc
                            .get(5..7)
                            .filter(|p| *p == "\\u")
                            .and_then(|_| esc.get(7..11))
                            .and_then(|h| u32::from_str_radix(h, 16).ok())
                            .filter(|lo| (0xDC00..0xE000).contains(lo));
                        match lo {
                            Some(lo) => {
                                let c = 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00);
                                out.push(char::from_u32(c).unwrap_or('\u{FFFD}'));
                                11
                            }
                            None => {
                                out.push('\u{FFFD}');
                                5
                            }
                        }
                    }
                    Some(c) => {
                        out.push(char::from_u32(c).unwrap_or('\u{FFFD}'));
                        5
                    }
                    None => {
                        out.push('\u{FFFD}');
                        1
                    }
                }
            }
            Some(other) => {
                out.push(other);
                other.len_utf8()
            }
            None => 0,
        };
        rest = esc.get(consumed..).unwrap_or("");
    }
    out.push_str(rest);
}

/// Parses an integer literal validated by [`Cursor::scan_number`] (`is_int`); `None` on overflow.
pub(crate) fn parse_i64(text: &[u8]) -> Option<i64> {
    let (neg, digits) = match text.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, text),
    };
    if digits.is_empty() || digits.len() > 19 {
        return None;
    }
    let mut v: u64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add((d - b'0') as u64)?;
    }
    if neg {
        if v <= i64::MAX as u64 + 1 {
            Some((v as i64).wrapping_neg())
        } else {
            None
        }
    } else {
        i64::try_from(v).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(s: &str) -> Result<Raw, SyntaxError> {
        let mut c = Cursor::new(s.as_bytes());
        let r = c.scan_value(0)?;
        if c.at_end() {
            Ok(r)
        } else {
            Err(c.err("trailing"))
        }
    }

    #[test]
    fn accepts_valid_json() {
        for s in [
            "0",
            "-0",
            "12",
            "-1.5e10",
            "1E+2",
            "0.25",
            "true",
            "false",
            "null",
            "\"\"",
            "\"a\\\"b\\\\c\\/\\b\\f\\n\\r\\t\\u00e9\\ud83d\\ude00\"",
            "[]",
            "{}",
            "[1,[2,{\"a\":[]}]]",
            "{ \"a\" : 1 , \"b\" : [ true , null ] }",
            "\"héllo wörld, a long string beyond eight bytes\"",
        ] {
            assert!(scan(s).is_ok(), "{s}");
        }
    }

    #[test]
    fn rejects_invalid_json() {
        for s in [
            "",
            "01",
            "-",
            "1.",
            ".5",
            "1e",
            "+1",
            "tru",
            "nul",
            "\"abc",
            "\"a\\x\"",
            "\"\\u12\"",
            "\"\\ud800\"",
            "\"\\udc00\"",
            "\"\\ud800\\u0041\"",
            "\"tab\there\"",
            "[1,]",
            "{\"a\":1,}",
            "{\"a\"}",
            "{a:1}",
            "[1 2]",
            "{\"a\":1 \"b\":2}",
            "NaN",
            "[",
            "{",
        ] {
            assert!(scan(s).is_err(), "{s:?}");
        }
    }

    #[test]
    fn depth_is_limited() {
        let deep = "[".repeat(MAX_DEPTH + 1) + &"]".repeat(MAX_DEPTH + 1);
        assert!(scan(&deep).is_err());
        let ok = "[".repeat(MAX_DEPTH) + &"]".repeat(MAX_DEPTH);
        assert!(scan(&ok).is_ok());
    }

    #[test]
    fn string_kinds_and_spans() {
        let r = scan("\"plain text here!\"").unwrap();
        assert_eq!(r.kind, Kind::String { escaped: false });
        assert_eq!((r.start, r.end), (0, 18));
        assert_eq!(
            scan("\"a\\nb\"").unwrap().kind,
            Kind::String { escaped: true }
        );
        assert_eq!(scan("1.0").unwrap().kind, Kind::Number { is_int: false });
        assert_eq!(scan("-7").unwrap().kind, Kind::Number { is_int: true });
    }

    #[test]
    fn unescapes() {
        let mut out = String::new();
        unescape(r#"a\"b\\c\/d\n\t\u00e9\ud83d\ude00z"#, &mut out);
        assert_eq!(out, "a\"b\\c/d\n\té😀z");
    }

    #[test]
    fn parses_i64() {
        assert_eq!(parse_i64(b"0"), Some(0));
        assert_eq!(parse_i64(b"-0"), Some(0));
        assert_eq!(parse_i64(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(parse_i64(b"-9223372036854775808"), Some(i64::MIN));
        assert_eq!(parse_i64(b"9223372036854775808"), None);
        assert_eq!(parse_i64(b"-9223372036854775809"), None);
        assert_eq!(parse_i64(b"99999999999999999999999"), None);
    }
}
