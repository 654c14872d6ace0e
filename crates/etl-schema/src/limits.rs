//! The warehouse's size limits, declared once: what the decoder enforces at ingest so that
//! every row in the lake also fits its Redshift column.
//!
//! Contract: every text column of the lake is at most [`WAREHOUSE_TEXT_MAX_BYTES`] bytes
//! (Redshift's largest `VARCHAR`, counted in bytes of UTF-8), and a `string` field with
//! `max_length` at most that many bytes. `json` fields and the `extras` column are stored as
//! text (`VARCHAR(65535)`), not `SUPER`: QuickSight cannot read `SUPER`, COPY of a Parquet text
//! column into `SUPER` is not documented to parse it, and a `SUPER` string is itself limited
//! to 65,535 bytes on most of Redshift's pages. A record over a limit is dead-lettered with
//! reason `too_long` naming the field, never truncated: a COPY of an over-long value fails the
//! whole batch, which would stop that table's loading.

use crate::model::{Field, FieldType};

/// Largest text value (bytes) a warehouse column holds: Redshift's `VARCHAR(65535)`.
pub const WAREHOUSE_TEXT_MAX_BYTES: usize = 65_535;

/// The most bytes a value of `field` may have so that it fits its warehouse column: the
/// `max_length` of a `string` (clamped to [`WAREHOUSE_TEXT_MAX_BYTES`]) or that limit, the
/// limit for `json`; `None` for types without a length (numbers, timestamps, booleans; enums
/// and phones are bounded by their values and their hash).
pub fn max_text_bytes(field: &Field) -> Option<usize> {
    match &field.ty {
        FieldType::String => Some(field.max_length.map_or(WAREHOUSE_TEXT_MAX_BYTES, |n| {
            n.clamp(1, WAREHOUSE_TEXT_MAX_BYTES)
        })),
        FieldType::Json => Some(WAREHOUSE_TEXT_MAX_BYTES),
        _ => None,
    }
}
