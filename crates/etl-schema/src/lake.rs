//! Lake columns: what a stream looks like in Parquet, Glue and Redshift.

use crate::model::{
    timestamp_ms, Field, FieldType, StreamSchema, ARRIVED_AT_COLUMN, EXTRAS_COLUMN,
};
use arrow_schema::{DataType, Field as ArrowField, Schema, SchemaRef};
use std::sync::Arc;

/// Hive-style partition keys of every lake table, in path order: `dt=YYYY-MM-DD/hour=HH`.
/// Both are strings (Athena's advice for partition keys) derived from `occurred_at` in UTC.
pub const PARTITION_KEYS: [&str; 2] = ["dt", "hour"];

/// Columns every lake table has after the schema's fields: `extras` and `arrived_at`.
pub const PIPELINE_COLUMNS: usize = 2;

/// One column of a lake table (partition keys excluded).
#[derive(Debug, Clone, PartialEq)]
pub struct LakeColumn {
    /// Lowercase column name, the same in Parquet, Glue and Redshift.
    pub name: String,
    /// Arrow type written to Parquet.
    pub data_type: DataType,
    /// Whether nulls may occur.
    pub nullable: bool,
    /// Glue / Hive type string (Athena reads the table with it).
    pub hive_type: &'static str,
    /// Redshift column type.
    pub redshift_type: String,
    /// Column comment.
    pub doc: String,
}

impl StreamSchema {
    /// Columns of the lake table in order: every field (structs flattened to `<name>_<child>`,
    /// phones as their keyed hash) followed by `extras` and `arrived_at`. Partition keys are not included:
    /// they live in the object path.
    pub fn lake_columns(&self) -> Vec<LakeColumn> {
        let mut out = Vec::new();
        for f in &self.fields {
            match &f.ty {
                FieldType::Struct { fields } => {
                    for c in fields {
                        let mut col = column(c, format!("{}_{}", f.name, c.name));
                        col.nullable = true;
                        out.push(col);
                    }
                }
                _ => out.push(column(f, f.name.clone())),
            }
        }
        out.push(LakeColumn {
            name: EXTRAS_COLUMN.into(),
            data_type: DataType::Utf8,
            nullable: true,
            hive_type: "string",
            redshift_type: "VARCHAR(65535)".into(),
            doc: "Keys of the event that the schema does not know, as a JSON object.".into(),
        });
        out.push(LakeColumn {
            name: ARRIVED_AT_COLUMN.into(),
            data_type: timestamp_ms(),
            nullable: true,
            hive_type: "timestamp",
            redshift_type: "TIMESTAMP".into(),
            doc: "When the record reached the source (Kinesis ApproximateArrivalTimestamp; for files, the file's modification time), UTC.".into(),
        });
        out
    }

    /// Arrow schema of the Parquet files of this stream (no partition columns).
    pub fn lake_arrow_schema(&self) -> SchemaRef {
        let fields: Vec<ArrowField> = self
            .lake_columns()
            .into_iter()
            .map(|c| ArrowField::new(c.name, c.data_type, c.nullable))
            .collect();
        Arc::new(Schema::new(fields))
    }

    /// The schema the transform SQL must produce: lake columns, then `dt` and `hour`.
    pub fn transformed_arrow_schema(&self) -> SchemaRef {
        let mut fields: Vec<ArrowField> = self
            .lake_arrow_schema()
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        for key in PARTITION_KEYS {
            fields.push(ArrowField::new(key, DataType::Utf8, false));
        }
        Arc::new(Schema::new(fields))
    }

    /// Names of the columns holding PII hashes (the phone fields).
    pub fn phone_columns(&self) -> Vec<&str> {
        self.fields
            .iter()
            .filter(|f| f.ty == FieldType::Phone)
            .map(|f| f.name.as_str())
            .collect()
    }
}

fn column(f: &Field, name: String) -> LakeColumn {
    let (data_type, hive_type, redshift_type) = match &f.ty {
        FieldType::String => (
            DataType::Utf8,
            "string",
            format!(
                "VARCHAR({})",
                f.max_length.map_or(65535, |n| n.clamp(1, 65535))
            ),
        ),
        FieldType::Enum { open: true, .. } => (
            DataType::Utf8,
            "string",
            format!(
                "VARCHAR({})",
                f.max_length.map_or(256, |n| n.clamp(1, 65535))
            ),
        ),
        FieldType::Enum { values, .. } => {
            let longest = values.iter().map(String::len).max().unwrap_or(1);
            (
                DataType::Utf8,
                "string",
                format!("VARCHAR({})", longest.max(16)),
            )
        }
        // HMAC-SHA256 as lowercase hex.
        FieldType::Phone => (DataType::Utf8, "string", "CHAR(64)".into()),
        FieldType::Json => (DataType::Utf8, "string", "VARCHAR(65535)".into()),
        FieldType::Int64 => (DataType::Int64, "bigint", "BIGINT".into()),
        FieldType::Double => (DataType::Float64, "double", "DOUBLE PRECISION".into()),
        FieldType::Boolean => (DataType::Boolean, "boolean", "BOOLEAN".into()),
        FieldType::Timestamp => (timestamp_ms(), "timestamp", "TIMESTAMP".into()),
        FieldType::Struct { .. } => unreachable_struct(),
    };
    LakeColumn {
        name,
        data_type,
        nullable: !f.required,
        hive_type,
        redshift_type,
        doc: f.doc.clone(),
    }
}

// Structs are flattened by `lake_columns` before `column` is called; one level of nesting is
// enforced when the schema is loaded. Keep a defined value rather than a panic.
fn unreachable_struct() -> (DataType, &'static str, String) {
    (DataType::Utf8, "string", "VARCHAR(65535)".into())
}
