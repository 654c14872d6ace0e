//! The event ids of a shard's last committed batches, read back from their Parquet files: what
//! a consumer that starts reading the shard (after a restart or a lease move) seeds its dedup
//! window with, so producer duplicates are dropped across processes (`docs/leases.md`).

use super::{Delivery, DeliveryError, Resume};
use arrow::array::AsArray;
use arrow::datatypes::DataType;
use futures::{StreamExt, TryStreamExt};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ProjectionMask;

impl Delivery {
    /// The values of text column `column` in the data files (Parquet) of the shard's last
    /// `records` commit records before `resume.next`, oldest first. Files without the column
    /// give nothing.
    pub async fn recent_values(
        &self,
        resume: &Resume,
        records: u64,
        column: &str,
    ) -> Result<Vec<String>, DeliveryError> {
        // Read concurrently: on S3 each object is a round trip.
        let records: Vec<super::CommitRecord> =
            futures::stream::iter(resume.next.saturating_sub(records)..resume.next)
                .map(|n| self.read_record(n))
                .buffered(READ_AHEAD)
                .try_collect()
                .await?;
        // Owned paths: a stream borrowing the records would not be `Send` for every lifetime.
        let files: Vec<(u64, String)> = records
            .iter()
            .flat_map(|r| r.files.iter().map(move |f| (r.n, f)))
            .filter(|(_, f)| f.partition.is_some() && f.path.ends_with(".parquet"))
            .map(|(n, f)| (n, f.path.clone()))
            .collect();
        let values: Vec<Vec<String>> = futures::stream::iter(files)
            .map(|(n, path)| self.read_values(n, path, column))
            .buffered(READ_AHEAD)
            .try_collect()
            .await?;
        Ok(values.into_iter().flatten().collect())
    }
}

impl Delivery {
    /// The values of `column` in data file `path` of commit record `n`.
    async fn read_values(
        &self,
        n: u64,
        path: String,
        column: &str,
    ) -> Result<Vec<String>, DeliveryError> {
        let Some(bytes) = self.lake.get(&path).await? else {
            return Err(DeliveryError::Corrupt {
                path: self.lake.display(&path),
                message: format!("a file of commit record {n} is missing"),
            });
        };
        let mut out = Vec::new();
        read_text_column(bytes, column, &mut out).map_err(|e| DeliveryError::Corrupt {
            path: self.lake.display(&path),
            message: format!("reading column {column}: {e}"),
        })?;
        Ok(out)
    }
}

/// Objects read at once.
const READ_AHEAD: usize = 8;

/// Appends the non-null values of text column `column` of a Parquet file to `out`.
fn read_text_column(
    bytes: bytes::Bytes,
    column: &str,
    out: &mut Vec<String>,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let builder = ParquetRecordBatchReaderBuilder::try_new(bytes)?;
    let Some(index) = builder
        .parquet_schema()
        .columns()
        .iter()
        .position(|c| c.path().parts().len() == 1 && c.name() == column)
    else {
        return Ok(());
    };
    let mask = ProjectionMask::leaves(builder.parquet_schema(), [index]);
    for batch in builder.with_projection(mask).build()? {
        let batch = batch?;
        let Some(values) = batch.column_by_name(column) else {
            continue;
        };
        let text = arrow::compute::cast(values, &DataType::Utf8)?;
        let text = text
            .as_string_opt::<i32>()
            .ok_or("the column is not text")?;
        out.extend(text.iter().flatten().map(str::to_string));
    }
    Ok(())
}
