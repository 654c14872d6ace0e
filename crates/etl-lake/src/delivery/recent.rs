//! The event ids of a shard's last committed batches, read back from their Parquet files: what
//! a consumer that starts reading the shard (after a restart or a lease move) seeds its dedup
//! window with, so producer duplicates are dropped across processes (`docs/leases.md`).

use super::{Delivery, DeliveryError, Resume};
use arrow::array::AsArray;
use arrow::datatypes::DataType;
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
        let mut out = Vec::new();
        for n in resume.next.saturating_sub(records)..resume.next {
            let record = self.read_record(n).await?;
            for f in &record.files {
                if f.partition.is_none() || !f.path.ends_with(".parquet") {
                    continue;
                }
                let Some(bytes) = self.lake.get(&f.path).await? else {
                    return Err(DeliveryError::Corrupt {
                        path: self.lake.display(&f.path),
                        message: format!("a file of commit record {n} is missing"),
                    });
                };
                let corrupt = |e: &dyn std::fmt::Display| DeliveryError::Corrupt {
                    path: self.lake.display(&f.path),
                    message: format!("reading column {column}: {e}"),
                };
                read_text_column(bytes, column, &mut out).map_err(|e| corrupt(&e))?;
            }
        }
        Ok(out)
    }
}

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
