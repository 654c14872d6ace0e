//! Test fixture: the hand-made rows of `queries/views/fixtures/*.csv`, written as Parquet in the
//! lake layout `<root>/<table>/dt=YYYY-MM-DD/hour=HH/part-0.parquet`.
//!
//! The fixture files are plain CSV (header = lake column names, empty field = NULL, timestamps
//! `YYYY-MM-DD HH:MM:SS` in UTC) so a PostgreSQL / Redshift test can `COPY` the same rows.

#![allow(dead_code)]

use arrow::array::{ArrayRef, RecordBatch, StringArray, UInt32Array};
use arrow::compute::{cast_with_options, take, CastOptions};
use datafusion::parquet::arrow::ArrowWriter;
use etl_schema::StreamSchema;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub type TestResult<T = ()> = Result<T, Box<dyn std::error::Error>>;

pub fn repo_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn views_dir() -> PathBuf {
    repo_dir().join("queries/views")
}

pub fn schemas() -> TestResult<Vec<StreamSchema>> {
    Ok(etl_schema::embedded()?)
}

pub fn schema(name: &str) -> TestResult<StreamSchema> {
    schemas()?
        .into_iter()
        .find(|s| s.stream == name)
        .ok_or_else(|| format!("no schema {name}").into())
}

/// One CSV file: header and rows; `None` is an empty unquoted field.
pub struct Csv {
    pub header: Vec<String>,
    pub rows: Vec<Vec<Option<String>>>,
}

/// Parses RFC 4180 CSV (quoted fields, `""` inside quotes), one record per line.
pub fn parse_csv(text: &str) -> TestResult<Csv> {
    let mut lines = text.lines().filter(|l| !l.is_empty());
    let header = parse_line(lines.next().ok_or("empty CSV")?)?
        .into_iter()
        .map(|f| f.unwrap_or_default())
        .collect::<Vec<_>>();
    let mut rows = Vec::new();
    for (n, line) in lines.enumerate() {
        let row = parse_line(line)?;
        if row.len() != header.len() {
            return Err(format!(
                "CSV line {} has {} fields, the header {}",
                n + 2,
                row.len(),
                header.len()
            )
            .into());
        }
        rows.push(row);
    }
    Ok(Csv { header, rows })
}

fn parse_line(line: &str) -> TestResult<Vec<Option<String>>> {
    let mut fields = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        if chars.peek() == Some(&'"') {
            chars.next();
            let mut value = String::new();
            loop {
                match chars.next() {
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        value.push('"');
                    }
                    Some('"') => break,
                    Some(c) => value.push(c),
                    None => return Err(format!("unterminated quote in `{line}`").into()),
                }
            }
            fields.push(Some(value));
            match chars.next() {
                Some(',') => continue,
                None => return Ok(fields),
                Some(c) => return Err(format!("`{c}` after a closing quote in `{line}`").into()),
            }
        }
        let mut value = String::new();
        loop {
            match chars.next() {
                Some(',') => break,
                Some(c) => value.push(c),
                None => {
                    fields.push((!value.is_empty()).then_some(value));
                    return Ok(fields);
                }
            }
        }
        fields.push((!value.is_empty()).then_some(value));
    }
}

/// The fixture rows of `table` as one batch with the lake schema.
pub fn fixture_batch(table: &str) -> TestResult<RecordBatch> {
    let path = views_dir().join("fixtures").join(format!("{table}.csv"));
    let csv = parse_csv(
        &std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?,
    )?;
    let lake_schema = schema(table)?.lake_arrow_schema();
    let columns: Vec<&str> = lake_schema
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .collect();
    if csv.header != columns {
        return Err(format!(
            "{}: header {:?} is not the lake columns {columns:?}",
            path.display(),
            csv.header
        )
        .into());
    }
    let options = CastOptions {
        safe: false,
        ..Default::default()
    };
    let mut arrays: Vec<ArrayRef> = Vec::new();
    for (i, field) in lake_schema.fields().iter().enumerate() {
        let text: StringArray = csv.rows.iter().map(|r| r[i].as_deref()).collect();
        let array = cast_with_options(&text, field.data_type(), &options)
            .map_err(|e| format!("{}: column {}: {e}", path.display(), field.name()))?;
        arrays.push(array);
    }
    Ok(RecordBatch::try_new(lake_schema, arrays)?)
}

/// Writes `batch` of `table` under `root` in the lake layout, one file per `dt`/`hour`
/// (derived from `occurred_at`, UTC). Returns the files written.
pub fn write_lake(
    root: &Path,
    table: &str,
    batch: &RecordBatch,
    file_name: &str,
) -> TestResult<Vec<PathBuf>> {
    let occurred = cast_with_options(
        batch
            .column_by_name("occurred_at")
            .ok_or("no occurred_at")?,
        &arrow::datatypes::DataType::Utf8,
        &CastOptions::default(),
    )?;
    let occurred = occurred
        .as_any()
        .downcast_ref::<StringArray>()
        .ok_or("occurred_at as text")?;
    let mut groups: BTreeMap<(String, String), Vec<u32>> = BTreeMap::new();
    for row in 0..batch.num_rows() {
        // Arrow renders the UTC timestamp as `YYYY-MM-DDTHH:MM:SS...`.
        let ts = occurred.value(row);
        let key = (
            ts.get(0..10).ok_or("short ts")?.to_string(),
            ts.get(11..13).ok_or("short ts")?.to_string(),
        );
        groups.entry(key).or_default().push(row as u32);
    }
    let mut written = Vec::new();
    for ((dt, hour), rows) in groups {
        let indices = UInt32Array::from(rows);
        let columns = batch
            .columns()
            .iter()
            .map(|c| take(c.as_ref(), &indices, None))
            .collect::<Result<Vec<_>, _>>()?;
        let part = RecordBatch::try_new(batch.schema(), columns)?;
        let dir = root
            .join(table)
            .join(format!("dt={dt}"))
            .join(format!("hour={hour}"));
        std::fs::create_dir_all(&dir)?;
        let path = dir.join(file_name);
        let mut writer = ArrowWriter::try_new(
            std::fs::File::create(&path)?,
            Arc::clone(&part.schema()),
            None,
        )?;
        writer.write(&part)?;
        writer.close()?;
        written.push(path);
    }
    Ok(written)
}

/// Writes both fixture tables under `root`.
pub fn write_fixture_lake(root: &Path) -> TestResult {
    for table in ["app_events", "call_events"] {
        write_lake(root, table, &fixture_batch(table)?, "part-0.parquet")?;
    }
    Ok(())
}
