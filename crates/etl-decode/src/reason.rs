//! Why a record was rejected: stable snake_case codes for dead-letter metadata and metrics.

use std::fmt;

/// The reason a record was rejected. [`RejectReason::as_str`] is a stable code: it is written
/// with dead letters and used as a metric label, so existing codes never change meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RejectReason {
    /// Longer than [`crate::DecodeOptions::max_record_bytes`]; checked before anything else.
    TooLarge,
    /// The bytes are not UTF-8.
    InvalidUtf8,
    /// Not parseable JSON: syntax error, empty record, trailing characters, nesting deeper than 128.
    InvalidJson,
    /// Valid JSON, but not an object.
    NotAnObject,
    /// The same key twice in the top-level object or in a struct field's object.
    DuplicateKey,
    /// A required field is absent or null.
    MissingField,
    /// A value of the wrong JSON type (string for an integer, fraction for an integer, int64
    /// overflow, non-finite double, unknown key inside a struct field, ...).
    WrongType,
    /// An enum field's value is not one of its `values` (exact, case-sensitive).
    UnknownEnumValue,
    /// A timestamp that is neither RFC 3339 text nor integer epoch milliseconds, or outside the
    /// years 1970..=9999 UTC.
    InvalidTimestamp,
    /// A phone field that is not E.164 (`+`, then 8 to 15 digits, the first one 1-9).
    InvalidPhone,
    /// A string longer than its field's `max_length` (in bytes).
    TooLong,
    /// An open enum field's value is not a known value and does not match its `pattern`.
    PatternMismatch,
}

impl RejectReason {
    /// Every reason, in declaration order.
    pub const ALL: [RejectReason; 12] = [
        RejectReason::TooLarge,
        RejectReason::InvalidUtf8,
        RejectReason::InvalidJson,
        RejectReason::NotAnObject,
        RejectReason::DuplicateKey,
        RejectReason::MissingField,
        RejectReason::WrongType,
        RejectReason::UnknownEnumValue,
        RejectReason::InvalidTimestamp,
        RejectReason::InvalidPhone,
        RejectReason::TooLong,
        RejectReason::PatternMismatch,
    ];

    /// The stable snake_case code, e.g. `"missing_field"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            RejectReason::TooLarge => "too_large",
            RejectReason::InvalidUtf8 => "invalid_utf8",
            RejectReason::InvalidJson => "invalid_json",
            RejectReason::NotAnObject => "not_an_object",
            RejectReason::DuplicateKey => "duplicate_key",
            RejectReason::MissingField => "missing_field",
            RejectReason::WrongType => "wrong_type",
            RejectReason::UnknownEnumValue => "unknown_enum_value",
            RejectReason::InvalidTimestamp => "invalid_timestamp",
            RejectReason::InvalidPhone => "invalid_phone",
            RejectReason::TooLong => "too_long",
            RejectReason::PatternMismatch => "pattern_mismatch",
        }
    }

    /// The reason with code `code`, if any.
    pub fn from_code(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == code)
    }
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One rejected record: its index in the input, why, and a message naming the field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reject {
    /// Position of the record in the input of [`crate::Decoder::decode`].
    pub index: u32,
    /// The stable reason code.
    pub reason: RejectReason,
    /// Human-readable detail, e.g. "field `duration_ms`: expected an integer, got a string".
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_round_trip() {
        let mut seen = std::collections::HashSet::new();
        for r in RejectReason::ALL {
            assert!(seen.insert(r.as_str()));
            assert_eq!(RejectReason::from_code(r.as_str()), Some(r));
            assert_eq!(r.to_string(), r.as_str());
        }
        assert_eq!(RejectReason::from_code("nope"), None);
    }
}
