//! Reading a partition's files, dropping repeated event ids, ordering and re-encoding the rows.

use crate::CompactError;
use arrow::array::{
    new_null_array, Array, ArrayRef, AsArray, BooleanArray, RecordBatch, StringArray,
};
use arrow::compute::{
    cast, concat_batches, filter_record_batch, lexsort_to_indices, take_record_batch, SortColumn,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use etl_lake::{encode_partitions, EncodedFile, Lake, ParquetOptions, PartitionValues};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use std::collections::HashSet;
use std::sync::Arc;

/// The column that identifies an event.
pub(crate) const EVENT_ID: &str = "event_id";
/// The column of the event time.
pub(crate) const OCCURRED_AT: &str = "occurred_at";

/// A merged partition, encoded.
pub(crate) struct Merged {
    pub files: Vec<EncodedFile>,
    pub rows_in: u64,
    pub rows: u64,
    pub duplicates_dropped: u64,
}

/// Reads `inputs` (object paths, in arrival order), keeps the first row of every `event_id`,
/// orders the rows by `(occurred_at, event_id)` and encodes them with `options` (files near
/// `target_file_bytes`, row groups of `row_group_rows`).
pub(crate) async fn merge(
    lake: &Lake,
    table: &str,
    schema: &SchemaRef,
    partition: &PartitionValues,
    inputs: &[String],
    options: &ParquetOptions,
) -> Result<Merged, CompactError> {
    let mut seen: HashSet<String> = HashSet::new();
    let mut kept: Vec<RecordBatch> = Vec::new();
    let (mut rows_in, mut dropped) = (0u64, 0u64);
    for path in inputs {
        let bytes = lake.get(path).await?.ok_or_else(|| CompactError::Read {
            path: lake.display(path),
            message: "the file is gone; another process changed the partition: run again".into(),
        })?;
        let read_err = |e: &dyn std::fmt::Display| CompactError::Read {
            path: lake.display(path),
            message: e.to_string(),
        };
        let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)
            .map_err(|e| read_err(&e))?
            .with_batch_size(8192)
            .build()
            .map_err(|e| read_err(&e))?;
        for batch in reader {
            let batch = batch.map_err(|e| read_err(&e))?;
            let batch = conform(&batch, schema, table, &lake.display(path))?;
            rows_in += batch.num_rows() as u64;
            let ids = event_ids(&batch)?;
            let keep: BooleanArray = (0..ids.len())
                .map(|i| Some(ids.is_null(i) || seen.insert(ids.value(i).to_string())))
                .collect();
            let batch = filter_record_batch(&batch, &keep)?;
            dropped += (keep.len() - batch.num_rows()) as u64;
            if batch.num_rows() > 0 {
                kept.push(batch);
            }
        }
    }
    let all = concat_batches(schema, &kept)?;
    drop(kept);
    let sorted = if all.num_rows() > 1 {
        let by = |name: &str| -> Result<SortColumn, CompactError> {
            Ok(SortColumn {
                values: all
                    .column_by_name(name)
                    .ok_or_else(|| CompactError::Option {
                        field: "schema",
                        message: format!("table `{table}` has no column `{name}`"),
                    })?
                    .clone(),
                options: None,
            })
        };
        let indices = lexsort_to_indices(&[by(OCCURRED_AT)?, by(EVENT_ID)?], None)?;
        take_record_batch(&all, &indices)?
    } else {
        all
    };
    let rows = sorted.num_rows() as u64;
    let files = encode_partitions(
        table,
        schema,
        &[with_partition(&sorted, partition)?],
        options,
    )?;
    Ok(Merged {
        files,
        rows_in,
        rows,
        duplicates_dropped: dropped,
    })
}

/// `batch` with the table's columns, matched by name (Parquet's rule): a column the file lacks
/// (written before the field was added) is NULL; a column the table lacks is an error.
fn conform(
    batch: &RecordBatch,
    schema: &SchemaRef,
    table: &str,
    path: &str,
) -> Result<RecordBatch, CompactError> {
    if let Some(extra) = batch
        .schema()
        .fields()
        .iter()
        .find(|f| schema.field_with_name(f.name()).is_err())
    {
        return Err(CompactError::UnknownColumn {
            path: path.to_string(),
            table: table.to_string(),
            column: extra.name().clone(),
        });
    }
    let columns: Vec<ArrayRef> = schema
        .fields()
        .iter()
        .map(|field| match batch.column_by_name(field.name()) {
            Some(c) if c.data_type() == field.data_type() => Ok(c.clone()),
            Some(c) => cast(c, field.data_type()),
            None => Ok(new_null_array(field.data_type(), batch.num_rows())),
        })
        .collect::<Result<_, _>>()?;
    Ok(RecordBatch::try_new(schema.clone(), columns)?)
}

fn event_ids(batch: &RecordBatch) -> Result<StringArray, CompactError> {
    let column = batch
        .column_by_name(EVENT_ID)
        .ok_or_else(|| CompactError::Option {
            field: "schema",
            message: format!("the table has no `{EVENT_ID}` column to deduplicate on"),
        })?;
    match column.as_string_opt::<i32>() {
        Some(s) => Ok(s.clone()),
        None => Ok(cast(column, &DataType::Utf8)?.as_string::<i32>().clone()),
    }
}

/// `batch` plus the constant partition columns `dt` and `hour` that the encoder splits on.
fn with_partition(batch: &RecordBatch, p: &PartitionValues) -> Result<RecordBatch, CompactError> {
    let n = batch.num_rows();
    let mut fields: Vec<Arc<Field>> = batch.schema().fields().iter().cloned().collect();
    fields.push(Arc::new(Field::new("dt", DataType::Utf8, false)));
    fields.push(Arc::new(Field::new("hour", DataType::Utf8, false)));
    let mut columns = batch.columns().to_vec();
    columns.push(Arc::new(StringArray::from(vec![p.dt.as_str(); n])));
    columns.push(Arc::new(StringArray::from(vec![p.hour.as_str(); n])));
    Ok(RecordBatch::try_new(
        Arc::new(Schema::new(fields)),
        columns,
    )?)
}
