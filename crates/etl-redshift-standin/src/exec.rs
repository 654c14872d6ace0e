//! Running one statement on PostgreSQL, including `COPY ... FORMAT AS PARQUET MANIFEST` from
//! the S3 stand-in (manifest and Parquet files read with the SDK, rows inserted by position).

use crate::sql::{parse_copy, strip_redshift_attributes, CopyParquet};
use arrow::array::{Array, RecordBatch};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use bytes::Bytes;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use tokio_postgres::types::Type;
use tokio_postgres::{Client, SimpleQueryMessage};

/// Rows per generated INSERT when executing a COPY.
const INSERT_CHUNK: usize = 500;

/// A column of a result: name and PostgreSQL type.
#[derive(Debug, Clone)]
pub(crate) struct Column {
    pub name: String,
    pub ty: Type,
}

/// What one statement produced.
#[derive(Debug, Clone, Default)]
pub(crate) struct Outcome {
    /// Columns, if the statement returns rows.
    pub columns: Option<Vec<Column>>,
    /// Rows as PostgreSQL's text values.
    pub rows: Vec<Vec<Option<String>>>,
    /// Rows returned or affected.
    pub row_count: i64,
}

/// Runs `sql` (parameters already bound) on `client`. Errors are Redshift-style messages
/// (`ERROR: …`).
pub(crate) async fn run_statement(
    client: &Client,
    s3: Option<&etl_aws::s3::Client>,
    sql: &str,
) -> Result<Outcome, String> {
    let sql = strip_redshift_attributes(sql);
    if let Some(copy) = parse_copy(&sql) {
        let copy = copy?;
        let s3 =
            s3.ok_or("ERROR: the stand-in has no S3 client configured; COPY cannot read s3://")?;
        let rows = run_copy(client, s3, &copy).await?;
        return Ok(Outcome {
            columns: None,
            rows: Vec::new(),
            row_count: rows,
        });
    }
    // Prepare first: it refuses several statements in one string (as the Data API does) and
    // gives the result's column types; it does not run anything.
    let prepared = client.prepare(&sql).await.map_err(pg_error)?;
    let columns: Vec<Column> = prepared
        .columns()
        .iter()
        .map(|c| Column {
            name: c.name().to_string(),
            ty: c.type_().clone(),
        })
        .collect();
    let messages = client.simple_query(&sql).await.map_err(pg_error)?;
    let mut outcome = Outcome {
        columns: (!columns.is_empty()).then_some(columns),
        ..Outcome::default()
    };
    for message in messages {
        match message {
            SimpleQueryMessage::Row(row) => {
                outcome.rows.push(
                    (0..row.len())
                        .map(|i| row.get(i).map(str::to_string))
                        .collect(),
                );
            }
            SimpleQueryMessage::CommandComplete(n) => {
                outcome.row_count = i64::try_from(n).unwrap_or(i64::MAX)
            }
            _ => {}
        }
    }
    Ok(outcome)
}

/// PostgreSQL's error as Redshift words it: `ERROR: <message>`.
pub(crate) fn pg_error(err: tokio_postgres::Error) -> String {
    match err.as_db_error() {
        Some(db) => format!("ERROR: {}", db.message()),
        None => format!("ERROR: {err}"),
    }
}

async fn get_object(s3: &etl_aws::s3::Client, url: &str) -> Result<Option<Bytes>, String> {
    let rest = url
        .strip_prefix("s3://")
        .ok_or_else(|| format!("ERROR: `{url}` is not an s3:// URL"))?;
    let (bucket, key) = rest
        .split_once('/')
        .ok_or_else(|| format!("ERROR: `{url}` has no key"))?;
    match s3.get_object().bucket(bucket).key(key).send().await {
        Ok(out) => {
            let body = out
                .body
                .collect()
                .await
                .map_err(|e| format!("ERROR: reading {url}: {e}"))?;
            Ok(Some(body.into_bytes()))
        }
        Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => Ok(None),
        Err(e) => Err(format!(
            "ERROR: S3 GetObject {url}: {}",
            etl_aws::describe_error(&e)
        )),
    }
}

async fn run_copy(
    client: &Client,
    s3: &etl_aws::s3::Client,
    copy: &CopyParquet,
) -> Result<i64, String> {
    let manifest_bytes = get_object(s3, &copy.manifest_url)
        .await?
        .ok_or_else(|| format!("ERROR: Manifest file is not found: {}", copy.manifest_url))?;
    let manifest: serde_json::Value = serde_json::from_slice(&manifest_bytes).map_err(|e| {
        format!(
            "ERROR: Manifest file {} is not valid JSON: {e}",
            copy.manifest_url
        )
    })?;
    let entries = manifest
        .get("entries")
        .and_then(|e| e.as_array())
        .ok_or_else(|| {
            format!(
                "ERROR: Manifest file {} has no \"entries\" array",
                copy.manifest_url
            )
        })?;
    let target_columns = if copy.columns.is_some() {
        copy.column_count
    } else {
        let probe = client
            .prepare(&format!("SELECT * FROM {} LIMIT 0", copy.target))
            .await
            .map_err(pg_error)?;
        probe.columns().len()
    };
    let mut total = 0i64;
    for entry in entries {
        let url = entry
            .get("url")
            .and_then(|u| u.as_str())
            .ok_or("ERROR: a manifest entry has no \"url\"")?;
        let mandatory = entry
            .get("mandatory")
            .and_then(|m| m.as_bool())
            .unwrap_or(false);
        let length = entry
            .pointer("/meta/content_length")
            .and_then(|l| l.as_u64())
            .ok_or_else(|| {
                format!(
                    "ERROR: manifest entry {url} has no meta.content_length (required for Parquet)"
                )
            })?;
        let Some(data) = get_object(s3, url).await? else {
            if mandatory {
                return Err(format!(
                    "ERROR: Manifest file {} lists {url}, which does not exist (mandatory)",
                    copy.manifest_url
                ));
            }
            continue;
        };
        if data.len() as u64 != length {
            return Err(format!(
                "ERROR: {url}: meta.content_length {length} is not the object size {}",
                data.len()
            ));
        }
        let reader = ParquetRecordBatchReaderBuilder::try_new(data)
            .and_then(|b| b.build())
            .map_err(|e| format!("ERROR: {url} is not a Parquet file: {e}"))?;
        for batch in reader {
            let batch = batch.map_err(|e| format!("ERROR: reading {url}: {e}"))?;
            if batch.num_columns() != target_columns {
                return Err(format!(
                    "ERROR: Spectrum Scan Error: {url} has {} columns but the target {} has {target_columns} \
                     (COPY from Parquet maps columns by position and the counts must match)",
                    batch.num_columns(),
                    copy.target
                ));
            }
            total += insert_batch(client, copy, &batch)
                .await
                .map_err(|e| format!("{e} (file {url})"))?;
        }
    }
    Ok(total)
}

async fn insert_batch(
    client: &Client,
    copy: &CopyParquet,
    batch: &RecordBatch,
) -> Result<i64, String> {
    // The statements are rendered before the first await: Arrow's formatters are not `Send`.
    let statements = insert_statements(copy, batch)?;
    let mut inserted = 0i64;
    for sql in statements {
        let n = client.execute(sql.as_str(), &[]).await.map_err(pg_error)?;
        inserted += i64::try_from(n).unwrap_or(i64::MAX);
    }
    Ok(inserted)
}

/// `INSERT … VALUES` statements of at most [`INSERT_CHUNK`] rows holding `batch`'s values as
/// text literals, by position.
fn insert_statements(copy: &CopyParquet, batch: &RecordBatch) -> Result<Vec<String>, String> {
    let options = FormatOptions::new()
        .with_null("")
        .with_date_format(Some("%Y-%m-%d"))
        .with_datetime_format(Some("%Y-%m-%d %H:%M:%S%.f"))
        .with_timestamp_format(Some("%Y-%m-%d %H:%M:%S%.f"))
        .with_timestamp_tz_format(Some("%Y-%m-%d %H:%M:%S%.f"));
    let formatters = batch
        .columns()
        .iter()
        .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("ERROR: unsupported Parquet column type: {e}"))?;
    let head = format!(
        "INSERT INTO {} {} VALUES ",
        copy.target,
        copy.columns.as_deref().unwrap_or("")
    );
    let mut statements = Vec::new();
    let mut start = 0;
    while start < batch.num_rows() {
        let end = (start + INSERT_CHUNK).min(batch.num_rows());
        let mut sql = head.clone();
        for row in start..end {
            if row > start {
                sql.push(',');
            }
            sql.push('(');
            for (i, formatter) in formatters.iter().enumerate() {
                if i > 0 {
                    sql.push(',');
                }
                if batch.column(i).is_null(row) {
                    sql.push_str("NULL");
                } else {
                    let value = formatter.value(row).to_string();
                    sql.push('\'');
                    sql.push_str(&value.replace('\'', "''"));
                    sql.push('\'');
                }
            }
            sql.push(')');
        }
        statements.push(sql);
        start = end;
    }
    Ok(statements)
}
