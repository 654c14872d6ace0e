//! Printing a [`QueryResult`](crate::QueryResult): the same for both engines.

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, SchemaRef};
use arrow::error::ArrowError;
use arrow::util::display::{ArrayFormatter, FormatOptions};

/// `--format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// A boxed text table (arrow's pretty printer).
    #[default]
    Table,
    /// CSV with a header line, in PostgreSQL `COPY … CSV HEADER` layout
    /// (`etl_warehouse::batches_to_csv`): NULL empty, timestamps `YYYY-MM-DD HH:MM:SS[.fff]`.
    Csv,
    /// A JSON array of objects, one per row: integers, floats and booleans as JSON numbers and
    /// booleans, NULL as `null`, everything else (decimals included, to keep their digits) as
    /// the text the CSV format prints.
    Json,
}

/// Renders `batches` (with columns `schema`, also for zero rows) in `format`.
pub fn render(
    schema: &SchemaRef,
    batches: &[RecordBatch],
    format: Format,
) -> Result<String, ArrowError> {
    match format {
        Format::Table => Ok(arrow::util::pretty::pretty_format_batches_with_schema(
            schema.clone(),
            batches,
        )?
        .to_string()),
        Format::Csv => {
            if batches.iter().all(|b| b.num_rows() == 0) {
                let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
                return Ok(format!("{}\n", names.join(",")));
            }
            etl_warehouse::batches_to_csv(batches)
        }
        Format::Json => json(batches).map(|v| {
            let mut text = serde_json::to_string_pretty(&v).unwrap_or_else(|_| "[]".into());
            text.push('\n');
            text
        }),
    }
}

fn json(batches: &[RecordBatch]) -> Result<serde_json::Value, ArrowError> {
    let options = FormatOptions::new()
        .with_null("")
        .with_date_format(Some("%Y-%m-%d"))
        .with_timestamp_format(Some("%Y-%m-%d %H:%M:%S%.f"))
        .with_timestamp_tz_format(Some("%Y-%m-%d %H:%M:%S%.f"));
    let mut rows = Vec::new();
    for batch in batches {
        let schema = batch.schema();
        let formatters = batch
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
            .collect::<Result<Vec<_>, _>>()?;
        for row in 0..batch.num_rows() {
            let mut object = serde_json::Map::new();
            for (i, column) in batch.columns().iter().enumerate() {
                let value = if column.is_null(row) {
                    serde_json::Value::Null
                } else {
                    match column.data_type() {
                        DataType::Boolean => column.as_boolean().value(row).into(),
                        DataType::Int8
                        | DataType::Int16
                        | DataType::Int32
                        | DataType::Int64
                        | DataType::UInt8
                        | DataType::UInt16
                        | DataType::UInt32
                        | DataType::UInt64 => formatters[i]
                            .value(row)
                            .to_string()
                            .parse::<serde_json::Number>()
                            .map(serde_json::Value::Number)
                            .unwrap_or_else(|_| formatters[i].value(row).to_string().into()),
                        DataType::Float32 | DataType::Float64 => {
                            let text = formatters[i].value(row).to_string();
                            text.parse::<f64>()
                                .ok()
                                .and_then(serde_json::Number::from_f64)
                                .map(serde_json::Value::Number)
                                .unwrap_or(serde_json::Value::String(text))
                        }
                        _ => formatters[i].value(row).to_string().into(),
                    }
                };
                object.insert(schema.field(i).name().clone(), value);
            }
            rows.push(serde_json::Value::Object(object));
        }
    }
    Ok(serde_json::Value::Array(rows))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Float64Array, Int64Array, StringArray};
    use arrow::datatypes::{Field, Schema};
    use std::sync::Arc;

    #[test]
    fn the_three_formats_print_typed_values() {
        let schema: SchemaRef = Arc::new(Schema::new(vec![
            Field::new("n", DataType::Int64, true),
            Field::new("x", DataType::Float64, true),
            Field::new("s", DataType::Utf8, true),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from(vec![Some(1), None])),
                Arc::new(Float64Array::from(vec![Some(2.5), Some(0.0)])),
                Arc::new(StringArray::from(vec![Some("a,b"), None])),
            ],
        )
        .unwrap();
        let csv = render(&schema, std::slice::from_ref(&batch), Format::Csv).unwrap();
        assert_eq!(csv, "n,x,s\n1,2.5,\"a,b\"\n,0.0,\n");
        let json: serde_json::Value = serde_json::from_str(
            &render(&schema, std::slice::from_ref(&batch), Format::Json).unwrap(),
        )
        .unwrap();
        assert_eq!(
            json,
            serde_json::json!([{"n": 1, "x": 2.5, "s": "a,b"}, {"n": null, "x": 0.0, "s": null}])
        );
        let table = render(&schema, &[batch], Format::Table).unwrap();
        assert!(table.contains("| 1 | 2.5 | a,b |"), "{table}");
        // No rows: the header still says what the columns are.
        assert_eq!(render(&schema, &[], Format::Csv).unwrap(), "n,x,s\n");
        assert!(render(&schema, &[], Format::Table)
            .unwrap()
            .contains("| n | x | s |"));
    }
}
