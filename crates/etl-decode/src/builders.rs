//! Arrow column builders derived from the decoded Arrow schema, filled from validated slots.
//!
//! Builders are only touched for accepted records. After each batch they are recreated with the
//! previous batch's row count and byte sizes as capacity, so steady-state batches do not regrow.

use crate::plan::{Plan, Ty, Val};
use crate::record::Scratch;
use arrow::array::builder::NullBufferBuilder;
use arrow::array::{
    ArrayRef, BooleanBuilder, Float64Builder, Int64Builder, StringBuilder, StructArray,
    TimestampMillisecondBuilder,
};
use arrow::datatypes::{DataType, Fields, SchemaRef};
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;
use std::sync::Arc;

/// One column being built.
enum Col {
    Utf8 {
        b: StringBuilder,
        bytes: usize,
    },
    Int(Int64Builder),
    Float(Float64Builder),
    Bool(BooleanBuilder),
    Ts {
        b: TimestampMillisecondBuilder,
        tz: Option<Arc<str>>,
    },
    Struct {
        fields: Fields,
        children: Vec<Col>,
        nulls: NullBufferBuilder,
    },
    /// A type the decoder never produces; kept as nulls so nothing panics.
    Unsupported {
        data_type: DataType,
        len: usize,
    },
}

impl Col {
    fn new(data_type: &DataType, rows: usize) -> Col {
        match data_type {
            DataType::Utf8 => Col::Utf8 {
                b: StringBuilder::with_capacity(rows, rows * 16),
                bytes: rows * 16,
            },
            DataType::Int64 => Col::Int(Int64Builder::with_capacity(rows)),
            DataType::Float64 => Col::Float(Float64Builder::with_capacity(rows)),
            DataType::Boolean => Col::Bool(BooleanBuilder::with_capacity(rows)),
            DataType::Timestamp(_, tz) => Col::Ts {
                b: TimestampMillisecondBuilder::with_capacity(rows).with_timezone_opt(tz.clone()),
                tz: tz.clone(),
            },
            DataType::Struct(fields) => Col::Struct {
                fields: fields.clone(),
                children: fields
                    .iter()
                    .map(|f| Col::new(f.data_type(), rows))
                    .collect(),
                nulls: NullBufferBuilder::new(rows),
            },
            other => Col::Unsupported {
                data_type: other.clone(),
                len: 0,
            },
        }
    }

    /// Appends one validated value. A value of an unexpected variant (impossible after
    /// validation) becomes a null.
    #[inline]
    fn append(&mut self, val: Val, rec: &str, arena: &str) {
        match (self, val) {
            (Col::Utf8 { b, .. }, Val::Str(span)) => b.append_value(span.text(rec, arena)),
            (Col::Int(b), Val::Int(v)) => b.append_value(v),
            (Col::Float(b), Val::Float(v)) => b.append_value(v),
            (Col::Bool(b), Val::Bool(v)) => b.append_value(v),
            (Col::Ts { b, .. }, Val::Int(v)) => b.append_value(v),
            (col, _) => col.append_null(),
        }
    }

    #[inline]
    fn append_null(&mut self) {
        match self {
            Col::Utf8 { b, .. } => b.append_null(),
            Col::Int(b) => b.append_null(),
            Col::Float(b) => b.append_null(),
            Col::Bool(b) => b.append_null(),
            Col::Ts { b, .. } => b.append_null(),
            Col::Struct {
                fields,
                children,
                nulls,
            } => {
                nulls.append_null();
                for (child, f) in children.iter_mut().zip(fields.iter()) {
                    if f.is_nullable() {
                        child.append_null();
                    } else {
                        child.append_default();
                    }
                }
            }
            Col::Unsupported { len, .. } => *len += 1,
        }
    }

    /// A placeholder value for a non-nullable child of a null struct (masked by the parent).
    fn append_default(&mut self) {
        match self {
            Col::Utf8 { b, .. } => b.append_value(""),
            Col::Int(b) => b.append_value(0),
            Col::Float(b) => b.append_value(0.0),
            Col::Bool(b) => b.append_value(false),
            Col::Ts { b, .. } => b.append_value(0),
            other => other.append_null(),
        }
    }

    /// Finishes the array and resets the builder with the batch's sizes as capacity.
    fn finish(&mut self, rows: usize) -> Result<ArrayRef, ArrowError> {
        Ok(match self {
            Col::Utf8 { b, bytes } => {
                let a = b.finish();
                *bytes = a.value_data().len().max(*bytes / 2);
                *b = StringBuilder::with_capacity(rows, *bytes + *bytes / 8);
                Arc::new(a)
            }
            Col::Int(b) => {
                let a = b.finish();
                *b = Int64Builder::with_capacity(rows);
                Arc::new(a)
            }
            Col::Float(b) => {
                let a = b.finish();
                *b = Float64Builder::with_capacity(rows);
                Arc::new(a)
            }
            Col::Bool(b) => {
                let a = b.finish();
                *b = BooleanBuilder::with_capacity(rows);
                Arc::new(a)
            }
            Col::Ts { b, tz } => {
                let a = b.finish();
                *b = TimestampMillisecondBuilder::with_capacity(rows).with_timezone_opt(tz.clone());
                Arc::new(a)
            }
            Col::Struct {
                fields,
                children,
                nulls,
            } => {
                let arrays = children
                    .iter_mut()
                    .map(|c| c.finish(rows))
                    .collect::<Result<Vec<_>, _>>()?;
                let n = nulls.len();
                let null_buffer = nulls.finish();
                *nulls = NullBufferBuilder::new(rows);
                Arc::new(StructArray::try_new_with_length(
                    fields.clone(),
                    arrays,
                    null_buffer,
                    n,
                )?)
            }
            Col::Unsupported { data_type, len } => {
                let a = arrow::array::new_null_array(data_type, *len);
                *len = 0;
                a
            }
        })
    }
}

/// All columns of a decoded batch: one per top-level field, then `extras`.
pub(crate) struct Columns {
    schema: SchemaRef,
    cols: Vec<Col>,
    extras: StringBuilder,
    extras_bytes: usize,
    extras_buf: String,
    rows: usize,
}

impl Columns {
    pub(crate) fn new(schema: SchemaRef) -> Self {
        let rows = 1024;
        let n = schema.fields().len().saturating_sub(1);
        let cols = schema
            .fields()
            .iter()
            .take(n)
            .map(|f| Col::new(f.data_type(), rows))
            .collect();
        Columns {
            schema,
            cols,
            extras: StringBuilder::with_capacity(rows, 0),
            extras_bytes: 0,
            extras_buf: String::new(),
            rows: 0,
        }
    }

    /// Appends the record `s` describes (it passed [`Plan::check`]).
    pub(crate) fn append(&mut self, plan: &Plan, rec: &str, s: &Scratch) {
        let arena = s.arena.as_str();
        for (i, col) in self.cols.iter_mut().enumerate() {
            let val = s.vals.get(i).copied().unwrap_or(Val::Null);
            match (col, plan.leaves.get(i).map(|l| &l.ty)) {
                (
                    Col::Struct {
                        children, nulls, ..
                    },
                    Some(Ty::Struct {
                        children: slots, ..
                    }),
                ) if val == Val::Present => {
                    nulls.append_non_null();
                    for (child, slot) in children.iter_mut().zip(slots.clone()) {
                        child.append(s.vals.get(slot).copied().unwrap_or(Val::Null), rec, arena);
                    }
                }
                (col, _) => col.append(val, rec, arena),
            }
        }
        if s.unknown.is_empty() {
            self.extras.append_null();
        } else {
            let buf = &mut self.extras_buf;
            buf.clear();
            buf.push('{');
            for (n, (k, v)) in s.unknown.iter().enumerate() {
                if n > 0 {
                    buf.push(',');
                }
                buf.push_str(rec.get(k.range()).unwrap_or("\"\""));
                buf.push(':');
                buf.push_str(rec.get(v.range()).unwrap_or("null"));
            }
            buf.push('}');
            self.extras.append_value(buf.as_str());
        }
        self.rows += 1;
    }

    /// Rows appended since the last [`Columns::finish`].
    pub(crate) fn rows(&self) -> usize {
        self.rows
    }

    /// Builds the batch of everything appended and resets for the next one.
    pub(crate) fn finish(&mut self) -> Result<RecordBatch, ArrowError> {
        let rows = std::mem::take(&mut self.rows);
        let cap = rows.max(64);
        let mut arrays = Vec::with_capacity(self.cols.len() + 1);
        let mut first_err = None;
        for col in &mut self.cols {
            // Finish every column even after an error so all builders are reset.
            match col.finish(cap) {
                Ok(a) => arrays.push(a),
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        let extras = self.extras.finish();
        self.extras_bytes = extras.value_data().len().max(self.extras_bytes / 2);
        self.extras = StringBuilder::with_capacity(cap, self.extras_bytes);
        if let Some(e) = first_err {
            return Err(e);
        }
        arrays.push(Arc::new(extras));
        RecordBatch::try_new(self.schema.clone(), arrays)
    }

    /// Drops everything appended since the last finish (after an internal error).
    pub(crate) fn discard(&mut self) {
        let _ = self.finish();
    }
}
