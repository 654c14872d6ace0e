//! Query results as CSV text in PostgreSQL's `COPY ... TO STDOUT WITH (FORMAT csv, HEADER)`
//! layout, so golden files compare against DataFusion today and PostgreSQL / Redshift later.
//!
//! Layout: a header line of column names; NULL is an empty unquoted field; an empty string is
//! `""`; fields holding `,`, `"`, CR or LF are quoted with `"` doubled; timestamps are
//! `YYYY-MM-DD HH:MM:SS[.fff]` in UTC (no zone suffix, as PostgreSQL prints `timestamp`); dates
//! `YYYY-MM-DD`; decimals with their declared scale (`0.5000`); lines end with `\n`.

use arrow::array::{Array, RecordBatch};
use arrow::error::ArrowError;
use arrow::util::display::{ArrayFormatter, FormatOptions};

/// Renders `batches` as CSV (see the module doc). No batches gives an empty string.
pub fn batches_to_csv(batches: &[RecordBatch]) -> Result<String, ArrowError> {
    let Some(first) = batches.first() else {
        return Ok(String::new());
    };
    let mut out = String::new();
    let header: Vec<String> = first
        .schema()
        .fields()
        .iter()
        .map(|f| quote(f.name()))
        .collect();
    out.push_str(&header.join(","));
    out.push('\n');
    let options = FormatOptions::new()
        .with_null("")
        .with_date_format(Some("%Y-%m-%d"))
        .with_datetime_format(Some("%Y-%m-%d %H:%M:%S%.f"))
        .with_timestamp_format(Some("%Y-%m-%d %H:%M:%S%.f"))
        .with_timestamp_tz_format(Some("%Y-%m-%d %H:%M:%S%.f"));
    for batch in batches {
        let formatters = batch
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
            .collect::<Result<Vec<_>, _>>()?;
        for row in 0..batch.num_rows() {
            for (i, formatter) in formatters.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                if batch.column(i).is_null(row) {
                    continue;
                }
                out.push_str(&quote(&formatter.value(row).to_string()));
            }
            out.push('\n');
        }
    }
    Ok(out)
}

fn quote(field: &str) -> String {
    if field.is_empty() || field.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field.to_string()
    }
}
