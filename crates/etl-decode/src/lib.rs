//! Validates NDJSON event records against their [`StreamSchema`] and decodes the accepted ones
//! straight into an Arrow [`RecordBatch`] shaped like [`StreamSchema::decoded_arrow_schema`].
//!
//! Each record (one JSON object, without its newline) is checked in this order: size
//! (`too_large`, before anything is read), UTF-8 (`invalid_utf8`), JSON syntax of the whole record
//! (`invalid_json`, `not_an_object`), duplicate keys, then every field in schema order. A record
//! that fails gets a [`Reject`] with a stable [`RejectReason`] code and a message naming the field;
//! bad input is never an `Err` and never panics. Accepted records become rows in input order and
//! [`DecodedBatch::rows`] maps each row back to its input index.
//!
//! How values land:
//! - `string`, `enum`, `phone`: the unescaped text (`max_length` is in bytes, after unescaping).
//! - `int64`: a JSON integer (no fraction or exponent) within the int64 range.
//! - `double`: any finite JSON number.
//! - `timestamp`: RFC 3339 text or integer epoch milliseconds, stored as UTC epoch ms.
//! - `json`: the raw JSON text of the value, exactly as written.
//! - `struct`: a JSON object typed per the struct's fields; absent or `null` is a null struct.
//!   A key the struct does not declare is a `wrong_type` reject (its data would otherwise be lost).
//! - unknown top-level keys: kept in `extras` as a JSON object text `{"key":<raw value>,...}` in
//!   input order (keys as written, values raw); `extras` is null when there are none.
//! - `null` counts as absent: fine for optional fields, `missing_field` for required ones.
//!
//! It does not hash phone numbers, deduplicate events, transform, or write Parquet: those are
//! `etl-transform` and `etl-lake`. It does not split NDJSON text into lines: callers pass one
//! record per slice (and never empty lines; an empty record is `invalid_json`).
//!
//! The parser is a strict hand-written JSON scanner (RFC 8259, nesting limited to 128) that borrows strings
//! from the record and keeps raw spans, so no JSON value tree is built per record. A record is
//! fully validated into per-field scratch slots before anything is appended to the builders.

mod builders;
mod json;
mod plan;
mod reason;
mod record;
mod timestamp;

pub use reason::{Reject, RejectReason};

/// RFC 3339 text (`2026-11-01T00:00:01.250Z`, with or without fraction, `Z` or an offset) as UTC
/// epoch milliseconds, if it is one and falls in the years 1970..=9999: the project's one
/// timestamp parser (the decoder validates `timestamp` fields with it).
pub fn parse_rfc3339_ms(text: &[u8]) -> Option<i64> {
    timestamp::parse_rfc3339(text).ok()
}

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use builders::Columns;
use etl_schema::StreamSchema;
use plan::Plan;
use record::{Fail, Scratch};
use std::sync::Arc;

/// Decoder settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeOptions {
    /// Longest accepted record in bytes; longer ones are rejected as `too_large` unread.
    /// Values above 1 GiB act as 1 GiB.
    pub max_record_bytes: usize,
}

impl Default for DecodeOptions {
    /// 1 MiB, the Kinesis record limit.
    fn default() -> Self {
        DecodeOptions {
            max_record_bytes: 1 << 20,
        }
    }
}

/// Internal failures of [`Decoder::decode`]. Bad input is never one of these: it is a [`Reject`].
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// Arrow refused to assemble the batch (a bug in this crate, or a schema it cannot build).
    #[error("building the Arrow batch failed: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    /// The accepted records of one call hold more text than one Arrow string column can
    /// (2 GiB); decode the input in smaller chunks.
    #[error(
        "one decode call got more than {limit} bytes of accepted records; decode smaller chunks"
    )]
    BatchTooLarge { limit: usize },
    /// More than `u32::MAX` records in one call.
    #[error("one decode call got more than u32::MAX records; decode smaller chunks")]
    TooManyRecords,
}

/// The result of one [`Decoder::decode`] call.
#[derive(Debug, Clone)]
pub struct DecodedBatch {
    /// Accepted records in input order; its schema is `schema.decoded_arrow_schema()`.
    pub batch: RecordBatch,
    /// Input index of each batch row (`rows.len() == batch.num_rows()`), ascending.
    pub rows: Vec<u32>,
    /// Rejected records in input order.
    pub rejects: Vec<Reject>,
}

/// Bytes of accepted records one call may hold: Arrow `Utf8` offsets are `i32`. Kept below
/// `i32::MAX` to leave room for the few bytes `extras` adds per record.
const MAX_BATCH_BYTES: usize = (i32::MAX as usize / 4) * 3;

/// Records above this are `too_large` whatever the options say (offsets inside a record are u32).
const HARD_MAX_RECORD_BYTES: usize = 1 << 30;

/// Decodes the records of one stream. Reuses its buffers across calls; one per thread.
pub struct Decoder {
    schema: Arc<StreamSchema>,
    arrow_schema: SchemaRef,
    options: DecodeOptions,
    plan: Plan,
    scratch: Scratch,
    columns: Columns,
}

impl std::fmt::Debug for Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decoder")
            .field("stream", &self.schema.stream)
            .field("version", &self.schema.version)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl Decoder {
    /// A decoder for `schema`'s stream.
    pub fn new(schema: Arc<StreamSchema>, options: DecodeOptions) -> Self {
        let arrow_schema = schema.decoded_arrow_schema();
        let plan = Plan::new(&schema);
        let scratch = Scratch::new(&plan);
        let columns = Columns::new(arrow_schema.clone());
        Decoder {
            schema,
            arrow_schema,
            options,
            plan,
            scratch,
            columns,
        }
    }

    /// The stream schema this decoder validates against.
    pub fn schema(&self) -> &Arc<StreamSchema> {
        &self.schema
    }

    /// The Arrow schema of every batch (`schema.decoded_arrow_schema()`).
    pub fn arrow_schema(&self) -> &SchemaRef {
        &self.arrow_schema
    }

    /// The options in force.
    pub fn options(&self) -> DecodeOptions {
        self.options
    }

    /// Decodes records in order. Accepted records become rows in input order.
    pub fn decode<'a>(
        &mut self,
        records: impl IntoIterator<Item = &'a [u8]>,
    ) -> Result<DecodedBatch, DecodeError> {
        let mut rows = Vec::with_capacity(self.columns.rows().max(64));
        let mut rejects = Vec::new();
        let mut accepted_bytes = 0usize;
        for (idx, record) in records.into_iter().enumerate() {
            let Ok(index) = u32::try_from(idx) else {
                self.columns.discard();
                return Err(DecodeError::TooManyRecords);
            };
            match self.check(record) {
                Ok(text) => {
                    accepted_bytes += record.len() + 2;
                    if accepted_bytes > MAX_BATCH_BYTES {
                        self.columns.discard();
                        return Err(DecodeError::BatchTooLarge {
                            limit: MAX_BATCH_BYTES,
                        });
                    }
                    self.columns.append(&self.plan, text, &self.scratch);
                    rows.push(index);
                }
                Err(fail) => rejects.push(Reject {
                    index,
                    reason: fail.reason,
                    message: fail.message,
                }),
            }
        }
        let batch = self.columns.finish()?;
        Ok(DecodedBatch {
            batch,
            rows,
            rejects,
        })
    }

    /// Validates one record without decoding it: `Ok` when [`Decoder::decode`] would accept it.
    pub fn validate(&mut self, record: &[u8]) -> Result<(), (RejectReason, String)> {
        self.check(record)
            .map(|_| ())
            .map_err(|f| (f.reason, f.message))
    }

    /// Size, UTF-8 and schema checks; on success the scratch describes the record.
    fn check<'r>(&mut self, record: &'r [u8]) -> Result<&'r str, Fail> {
        let max = self.options.max_record_bytes.min(HARD_MAX_RECORD_BYTES);
        if record.len() > max {
            let n = record.len();
            return Err(Fail::new(
                RejectReason::TooLarge,
                format!("record is {n} bytes, more than the limit of {max}"),
            ));
        }
        let text = match simdutf8::basic::from_utf8(record) {
            Ok(text) => text,
            Err(_) => {
                let at = std::str::from_utf8(record)
                    .err()
                    .map_or(0, |e| e.valid_up_to());
                return Err(Fail::new(
                    RejectReason::InvalidUtf8,
                    format!("invalid UTF-8 at byte {at}"),
                ));
            }
        };
        self.plan.check(text, &mut self.scratch)?;
        Ok(text)
    }
}
