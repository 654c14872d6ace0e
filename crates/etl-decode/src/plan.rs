//! The decode plan: a stream schema flattened into slots, with fast key lookup.
//!
//! Top-level fields take slots `0..n_top` in schema order; the children of struct fields follow,
//! each struct owning a contiguous range. A record is scanned into one [`crate::json::Raw`] per
//! slot, validated into one [`Val`] per slot, then appended.

use etl_schema::{Field, FieldType, StreamSchema};
use std::ops::Range;

/// A field's type with what validation needs, precomputed.
#[derive(Debug)]
pub(crate) enum Ty {
    Str {
        max_len: Option<usize>,
    },
    Enum {
        values: Vec<Box<str>>,
        listing: String,
        /// Open enums: what else is accepted.
        open: Option<OpenEnum>,
    },
    Phone,
    Int,
    Double,
    Bool,
    Ts,
    /// Raw JSON text of at most `max_len` bytes (the warehouse column's size).
    Json {
        max_len: usize,
    },
    Struct {
        children: Range<usize>,
        keys: KeyTable,
        listing: String,
    },
}

/// The rule of an open enum for values that are not known ones.
#[derive(Debug)]
pub(crate) struct OpenEnum {
    pub max_len: usize,
    pub pattern: Option<Result<regex::Regex, String>>,
}

/// One slot: a top-level field or a struct child.
#[derive(Debug)]
pub(crate) struct Leaf {
    /// Name used in messages: `name` or `parent.child`.
    pub path: String,
    pub ty: Ty,
    pub required: bool,
}

/// Key lookup for one object level: candidates bucketed by key length, plus the keys in schema
/// order so that records written in schema order match on the first comparison.
#[derive(Debug, Default)]
pub(crate) struct KeyTable {
    ordered: Vec<Box<[u8]>>,
    by_len: Vec<Vec<(Box<[u8]>, usize)>>,
}

impl KeyTable {
    fn new<'a>(names: impl Iterator<Item = &'a str>) -> Self {
        let mut t = KeyTable::default();
        for (i, name) in names.enumerate() {
            let key: Box<[u8]> = name.as_bytes().into();
            if t.by_len.len() <= key.len() {
                t.by_len.resize_with(key.len() + 1, Vec::new);
            }
            if let Some(bucket) = t.by_len.get_mut(key.len()) {
                bucket.push((key.clone(), i));
            }
            t.ordered.push(key);
        }
        t
    }

    /// Local index of `key`; `hint` is the index expected next (previous match + 1).
    #[inline]
    pub(crate) fn find(&self, key: &[u8], hint: usize) -> Option<usize> {
        if self.ordered.get(hint).is_some_and(|k| eq_bytes(k, key)) {
            return Some(hint);
        }
        self.by_len
            .get(key.len())?
            .iter()
            .find(|(k, _)| eq_bytes(k, key))
            .map(|&(_, i)| i)
    }
}

/// A stream schema compiled for decoding.
#[derive(Debug)]
pub(crate) struct Plan {
    pub leaves: Vec<Leaf>,
    pub n_top: usize,
    pub keys: KeyTable,
}

impl Plan {
    pub(crate) fn new(schema: &StreamSchema) -> Self {
        let n_top = schema.fields.len();
        let mut leaves: Vec<Leaf> = Vec::with_capacity(n_top);
        let mut pending_children: Vec<(usize, &[Field])> = Vec::new();
        for (i, f) in schema.fields.iter().enumerate() {
            if let FieldType::Struct { fields } = &f.ty {
                pending_children.push((i, fields));
            }
            leaves.push(leaf(f, f.name.clone()));
        }
        // Children get slots after all top-level fields, one contiguous range per struct.
        for (parent, children) in pending_children {
            let start = leaves.len();
            for c in children {
                let path = format!(
                    "{}.{}",
                    schema.fields.get(parent).map_or("", |p| p.name.as_str()),
                    c.name
                );
                leaves.push(leaf(c, path));
            }
            let range = start..leaves.len();
            if let Some(Leaf {
                ty: Ty::Struct { children: r, .. },
                ..
            }) = leaves.get_mut(parent)
            {
                *r = range;
            }
        }
        let keys = KeyTable::new(schema.fields.iter().map(|f| f.name.as_str()));
        Plan {
            leaves,
            n_top,
            keys,
        }
    }
}

fn leaf(f: &Field, path: String) -> Leaf {
    let ty = match &f.ty {
        FieldType::String => Ty::Str {
            max_len: etl_schema::max_text_bytes(f),
        },
        FieldType::Enum {
            values,
            open,
            pattern,
        } => Ty::Enum {
            values: values.iter().map(|v| v.as_str().into()).collect(),
            listing: values.join(", "),
            // The schema was validated when loaded (the pattern compiles); should it not, the
            // field accepts no unknown value rather than every one.
            open: open.then(|| OpenEnum {
                max_len: f.max_length.unwrap_or(256),
                pattern: pattern
                    .as_deref()
                    .map(|p| regex::Regex::new(p).map_err(|e| e.to_string())),
            }),
        },
        FieldType::Phone => Ty::Phone,
        FieldType::Int64 => Ty::Int,
        FieldType::Double => Ty::Double,
        FieldType::Boolean => Ty::Bool,
        FieldType::Timestamp => Ty::Ts,
        FieldType::Json => Ty::Json {
            max_len: etl_schema::max_text_bytes(f).unwrap_or(etl_schema::WAREHOUSE_TEXT_MAX_BYTES),
        },
        FieldType::Struct { fields } => Ty::Struct {
            children: 0..0,
            keys: KeyTable::new(fields.iter().map(|c| c.name.as_str())),
            listing: fields
                .iter()
                .map(|c| c.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        },
    };
    Leaf {
        path,
        ty,
        required: f.required,
    }
}

/// A validated value of one slot. Strings point into the record or the scratch arena.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Val {
    Null,
    Str(Span),
    Int(i64),
    Float(f64),
    Bool(bool),
    /// A struct that is present (its children have their own slots).
    Present,
}

/// Where a string's text is: `start..end` of the record, or of the arena when `arena`.
/// Offsets are `u32` to keep [`Val`] at 16 bytes (records are capped at 1 GiB, see
/// `HARD_MAX_RECORD_BYTES`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Span {
    pub start: u32,
    pub end: u32,
    pub arena: bool,
}

impl Span {
    #[inline(always)]
    pub(crate) fn in_record(start: usize, end: usize) -> Self {
        Span {
            start: start as u32,
            end: end as u32,
            arena: false,
        }
    }

    #[inline(always)]
    pub(crate) fn in_arena(start: usize, end: usize) -> Self {
        Span {
            start: start as u32,
            end: end as u32,
            arena: true,
        }
    }

    #[inline(always)]
    pub(crate) fn text<'a>(self, rec: &'a str, arena: &'a str) -> &'a str {
        let src = if self.arena { arena } else { rec };
        src.get(self.start as usize..self.end as usize)
            .unwrap_or("")
    }

    #[inline(always)]
    pub(crate) fn len(self) -> usize {
        self.end.saturating_sub(self.start) as usize
    }
}

/// Byte equality for short keys and enum values, inlined (a `memcmp` call costs more than the
/// comparison itself at these lengths).
#[inline(always)]
pub(crate) fn eq_bytes(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut ac = a.chunks_exact(8);
    let mut bc = b.chunks_exact(8);
    for (x, y) in (&mut ac).zip(&mut bc) {
        if x != y {
            return false;
        }
    }
    let (ra, rb) = (ac.remainder(), bc.remainder());
    let mut x = 0u64;
    let mut y = 0u64;
    for (i, (p, q)) in ra.iter().zip(rb).enumerate() {
        x |= (*p as u64) << (i * 8);
        y |= (*q as u64) << (i * 8);
    }
    x == y
}

/// Whether `s` is E.164: `+`, then 8 to 15 digits, the first one 1-9.
pub(crate) fn is_e164(s: &[u8]) -> bool {
    match s.split_first() {
        Some((b'+', digits)) => {
            (8..=15).contains(&digits.len())
                && matches!(digits.first(), Some(b'1'..=b'9'))
                && digits.iter().all(u8::is_ascii_digit)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eq_bytes_matches_slice_eq() {
        let words: [&[u8]; 8] = [
            b"",
            b"a",
            b"ab",
            b"abcdefgh",
            b"abcdefgi",
            b"abcdefghij",
            b"abcdefghik",
            b"event_type",
        ];
        for a in words {
            for b in words {
                assert_eq!(eq_bytes(a, b), a == b, "{a:?} {b:?}");
            }
        }
    }

    #[test]
    fn val_stays_small() {
        assert_eq!(std::mem::size_of::<Val>(), 16);
    }

    #[test]
    fn e164() {
        assert!(is_e164(b"+14155550100"));
        assert!(is_e164(b"+12345678"));
        assert!(is_e164(b"+123456789012345"));
        for bad in [
            "14155550100",
            "+1234567",
            "+1234567890123456",
            "+04155550100",
            "+1 415 555 0100",
            "+1415555010a",
            "+",
            "",
        ] {
            assert!(!is_e164(bad.as_bytes()), "{bad}");
        }
    }

    #[test]
    fn plan_layout_and_lookup() {
        let schemas = etl_schema::embedded().unwrap();
        let call = schemas.iter().find(|s| s.stream == "call_events").unwrap();
        let plan = Plan::new(call);
        assert_eq!(plan.n_top, call.fields.len());
        let q = call
            .fields
            .iter()
            .position(|f| f.name == "quality")
            .unwrap();
        let Ty::Struct { children, keys, .. } = &plan.leaves[q].ty else {
            panic!()
        };
        assert_eq!(children.len(), 4);
        assert_eq!(plan.leaves[children.start].path, "quality.mos");
        assert_eq!(keys.find(b"rtt_ms", 0), Some(3));
        assert_eq!(plan.keys.find(b"call_id", 0), Some(1));
        assert_eq!(plan.keys.find(b"call_id", 1), Some(1));
        assert_eq!(plan.keys.find(b"nope", 0), None);
        assert_eq!(
            plan.keys.find(b"a_very_long_key_longer_than_any_field", 3),
            None
        );
    }
}
