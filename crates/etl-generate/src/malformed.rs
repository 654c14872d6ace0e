//! The kinds of malformed record and the faults that produce them.

use serde::Serialize;

use crate::fmt::{below, pick_uniform, Fault, Rng};
use crate::Stream;

/// Why a malformed record is invalid. Each malformed record has exactly one of these faults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MalformedKind {
    /// Not JSON: a valid line cut short (never the whole line).
    InvalidJson,
    /// A field has the wrong JSON type, e.g. `"duration_ms":"abc"` or `"occurred_at":true`.
    WrongType,
    /// A required field is absent.
    MissingRequired,
    /// `event_type` is not one of the schema's values (call events) or not a valid event name
    /// (app events, an open set: not snake_case).
    UnknownEventType,
    /// `caller` or `callee` is not E.164 (`call_events` only).
    InvalidPhone,
    /// The line contains bytes that are not UTF-8 (inside a string value).
    InvalidUtf8,
    /// Otherwise valid, but larger than 1 MiB (a 2 MiB `"debug_blob"` string).
    Oversize,
}

impl MalformedKind {
    /// Every kind, in rotation order.
    pub const ALL: [MalformedKind; 7] = [
        MalformedKind::InvalidJson,
        MalformedKind::WrongType,
        MalformedKind::MissingRequired,
        MalformedKind::UnknownEventType,
        MalformedKind::InvalidPhone,
        MalformedKind::InvalidUtf8,
        MalformedKind::Oversize,
    ];

    /// Snake-case name, as in the statistics.
    pub fn as_str(&self) -> &'static str {
        match self {
            MalformedKind::InvalidJson => "invalid_json",
            MalformedKind::WrongType => "wrong_type",
            MalformedKind::MissingRequired => "missing_required",
            MalformedKind::UnknownEventType => "unknown_event_type",
            MalformedKind::InvalidPhone => "invalid_phone",
            MalformedKind::InvalidUtf8 => "invalid_utf8",
            MalformedKind::Oversize => "oversize",
        }
    }

    /// Whether the generator produces this kind on `stream` (`app_events` has no phone fields).
    pub fn applies_to(&self, stream: Stream) -> bool {
        !(stream == Stream::AppEvents && *self == MalformedKind::InvalidPhone)
    }
}

impl std::fmt::Display for MalformedKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Size of the oversize blob: 2 MiB, well over the 1 MiB record limit.
pub const OVERSIZE_BLOB_BYTES: usize = 2 * 1024 * 1024;
/// At most one oversize record per this many records.
pub const OVERSIZE_EVERY: u64 = 200_000;

const CALL_REQUIRED: [&str; 9] = [
    "event_id",
    "call_id",
    "event_type",
    "occurred_at",
    "account_id",
    "caller",
    "callee",
    "direction",
    "channel",
];
const APP_REQUIRED: [&str; 6] = [
    "event_id",
    "event_type",
    "occurred_at",
    "user_id",
    "account_id",
    "platform",
];

const CALL_WRONG_TYPE: [(&str, &[u8]); 3] = [
    ("duration_ms", b"\"abc\""),
    ("occurred_at", b"true"),
    ("quality", b"\"good\""),
];
const APP_WRONG_TYPE: [(&str, &[u8]); 3] = [
    ("occurred_at", b"true"),
    ("user_id", b"false"),
    ("event_id", b"[1,2]"),
];

const CALL_UNKNOWN_TYPES: [&[u8]; 3] = [
    b"\"call_transferred\"",
    b"\"call_parked\"",
    b"\"dtmf_received\"",
];
// App event types are an open set (any snake_case name): these break its pattern.
const APP_UNKNOWN_TYPES: [&[u8]; 3] = [b"\"Screen Share\"", b"\"app-crash!\"", b"\"\""];

const BAD_PHONES: [&[u8]; 7] = [
    b"\"4155550100\"",        // no '+'
    b"\"+0441234567\"",       // leading zero
    b"\"+1234567\"",          // 7 digits
    b"\"+1234567890123456\"", // 16 digits
    b"\"+1-415-555-0100\"",   // punctuation
    b"\"+44 20 7946 0958\"",  // spaces
    b"\"\"",                  // empty
];

/// String values with invalid UTF-8 inside (none contains a newline byte).
const BAD_UTF8: [&[u8]; 5] = [
    b"\"AC\xc3\x28bad\"",  // bad continuation byte
    b"\"AC\xff\xfe\"",     // bytes never valid in UTF-8
    b"\"AC\xed\xa0\x80\"", // UTF-16 surrogate
    b"\"AC\xc0\xaf\"",     // overlong encoding
    b"\"AC\xe2\x82\"",     // truncated sequence
];

/// The fault that makes a record of `kind` (for `InvalidJson` the record is written whole and
/// then truncated by the caller).
pub(crate) fn fault_for(kind: MalformedKind, stream: Stream, r: &mut Rng) -> Fault<'static> {
    let call = stream == Stream::CallEvents;
    match kind {
        MalformedKind::InvalidJson => Fault::None,
        MalformedKind::WrongType => {
            let (f, v) = pick_uniform(
                r,
                if call {
                    &CALL_WRONG_TYPE
                } else {
                    &APP_WRONG_TYPE
                },
            );
            Fault::Replace(f, v)
        }
        MalformedKind::MissingRequired => Fault::Omit(if call {
            pick_uniform(r, &CALL_REQUIRED)
        } else {
            pick_uniform(r, &APP_REQUIRED)
        }),
        MalformedKind::UnknownEventType => Fault::Replace(
            "event_type",
            pick_uniform(
                r,
                if call {
                    &CALL_UNKNOWN_TYPES
                } else {
                    &APP_UNKNOWN_TYPES
                },
            ),
        ),
        MalformedKind::InvalidPhone => Fault::Replace(
            if below(r, 2) == 0 { "caller" } else { "callee" },
            pick_uniform(r, &BAD_PHONES),
        ),
        MalformedKind::InvalidUtf8 => Fault::Replace("account_id", pick_uniform(r, &BAD_UTF8)),
        MalformedKind::Oversize => Fault::Oversize(OVERSIZE_BLOB_BYTES),
    }
}

/// Cuts a complete JSON line short, keeping between a third and all-but-one of its bytes.
/// Any strict prefix of a JSON object is invalid JSON.
pub(crate) fn truncate(line: &mut Vec<u8>, r: &mut Rng) {
    let len = line.len();
    if len < 2 {
        line.clear();
        line.push(b'{');
        return;
    }
    let lo = (len / 3).max(1);
    let keep = lo + below(r, (len - lo) as u32) as usize; // lo ..= len-1
    line.truncate(keep);
}

/// Rotates through the kinds per stream, skipping kinds that do not apply or are not allowed now.
#[derive(Debug, Clone, Default)]
pub(crate) struct Rotation {
    next: [usize; 2],
}

impl Rotation {
    pub(crate) fn next(&mut self, stream: Stream, oversize_allowed: bool) -> MalformedKind {
        let slot = &mut self.next[stream.index()];
        loop {
            let kind = MalformedKind::ALL[*slot % MalformedKind::ALL.len()];
            *slot = (*slot + 1) % MalformedKind::ALL.len();
            if kind.applies_to(stream) && (kind != MalformedKind::Oversize || oversize_allowed) {
                return kind;
            }
        }
    }
}
