//! Parquet encoding of transformed batches, split by partition.

use crate::layout::PartitionValues;
use crate::LakeError;
use arrow::array::{Array, AsArray, RecordBatch, UInt32Array};
use arrow::compute::take_record_batch;
use arrow::datatypes::{DataType, SchemaRef};
use bytes::Bytes;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression as PqCompression, Encoding, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;
use std::collections::BTreeMap;

/// Compression codec of the Parquet files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case", tag = "codec", deny_unknown_fields)]
pub enum Compression {
    /// zstd at `level` (1..=22). Level 1 costs little in size for event data and is much faster.
    Zstd { level: i32 },
    /// Snappy (what Firehose writes by default).
    Snappy,
    /// No compression.
    None,
}

/// Which min/max statistics the Parquet files carry (readers skip row groups and pages with
/// them; the lake's rows are sorted by `occurred_at` within a file, so time ranges prune well).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Statistics {
    /// Per column chunk and per page (the page index: column and offset index), so a reader
    /// (Athena/Trino, DataFusion, DuckDB) can skip pages inside a row group.
    Page,
    /// Per column chunk (row group) only.
    Chunk,
    /// None.
    None,
}

/// How Parquet files are written.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ParquetOptions {
    /// Codec. Default: zstd level 1.
    pub compression: Compression,
    /// Most rows in one row group. Default: 131072.
    pub row_group_rows: usize,
    /// A file is closed and the next one started once it reaches about this many bytes.
    /// Default: 128 MiB.
    pub target_file_bytes: usize,
    /// Columns written without dictionary encoding: those whose values are nearly all distinct,
    /// where building a dictionary costs time and saves nothing. Default: `["event_id"]`.
    pub plain_columns: Vec<String>,
    /// Statistics written: `page`, `chunk` or `none`. Default: `page` (chunk statistics and the
    /// page index; +0.25% bytes).
    pub statistics: Statistics,
    /// Writes floating-point columns with the BYTE_STREAM_SPLIT encoding instead of a
    /// dictionary. Default: false: the call-quality columns have few distinct values, and split
    /// by byte they took 2.4x the bytes of their dictionary (docs/pipeline.md, "Parquet
    /// settings"); readers older than Parquet format 2.8 cannot decode it either.
    pub byte_stream_split_floats: bool,
}

impl Default for ParquetOptions {
    fn default() -> Self {
        ParquetOptions {
            compression: Compression::Zstd { level: 1 },
            row_group_rows: 128 * 1024,
            target_file_bytes: 128 << 20,
            plain_columns: vec!["event_id".to_string()],
            statistics: Statistics::Page,
            byte_stream_split_floats: false,
        }
    }
}

impl ParquetOptions {
    /// The writer properties for files of `schema`.
    fn properties(&self, schema: &SchemaRef) -> Result<WriterProperties, LakeError> {
        if self.row_group_rows == 0 {
            return Err(LakeError::Option {
                field: "parquet.row_group_rows",
                message: "must be at least 1".into(),
            });
        }
        let compression = match self.compression {
            Compression::Zstd { level } => {
                PqCompression::ZSTD(ZstdLevel::try_new(level).map_err(|e| LakeError::Option {
                    field: "parquet.compression.level",
                    message: format!("{e}; use 1 to 22"),
                })?)
            }
            Compression::Snappy => PqCompression::SNAPPY,
            Compression::None => PqCompression::UNCOMPRESSED,
        };
        let mut builder = WriterProperties::builder();
        for column in &self.plain_columns {
            builder =
                builder.set_column_dictionary_enabled(ColumnPath::from(column.as_str()), false);
        }
        if self.byte_stream_split_floats {
            let floats = schema
                .fields()
                .iter()
                .filter(|f| matches!(f.data_type(), DataType::Float32 | DataType::Float64));
            for field in floats {
                let column = ColumnPath::from(field.name().as_str());
                builder = builder
                    .set_column_dictionary_enabled(column.clone(), false)
                    .set_column_encoding(column, Encoding::BYTE_STREAM_SPLIT);
            }
        }
        let statistics = match self.statistics {
            Statistics::Page => EnabledStatistics::Page,
            Statistics::Chunk => EnabledStatistics::Chunk,
            Statistics::None => EnabledStatistics::None,
        };
        Ok(builder
            .set_compression(compression)
            .set_max_row_group_row_count(Some(self.row_group_rows))
            .set_statistics_enabled(statistics)
            .set_created_by(format!("etl {}", env!("CARGO_PKG_VERSION")))
            .build())
    }
}

/// One encoded Parquet file of one partition.
#[derive(Debug, Clone)]
pub struct EncodedFile {
    /// Its partition.
    pub partition: PartitionValues,
    /// Its number within the partition for this batch (0, 1, …).
    pub part: usize,
    /// Rows in the file.
    pub rows: usize,
    /// The file's bytes.
    pub bytes: Bytes,
}

/// Splits transformed batches (lake columns + `dt` + `hour`) by partition, keeping row order,
/// and encodes each partition as one or more Parquet files with the lake schema (without the
/// partition columns). Output is ordered by partition, so it is deterministic.
pub fn encode_partitions(
    table: &str,
    lake_schema: &SchemaRef,
    batches: &[RecordBatch],
    options: &ParquetOptions,
) -> Result<Vec<EncodedFile>, LakeError> {
    let props = options.properties(lake_schema)?;
    // Row indices of each partition, per batch, in order.
    let mut groups: BTreeMap<PartitionValues, Vec<(usize, Vec<u32>)>> = BTreeMap::new();
    for (b, batch) in batches.iter().enumerate() {
        let dt = partition_column(batch, "dt")?;
        let hour = partition_column(batch, "hour")?;
        let mut current: Option<(PartitionValues, Vec<u32>)> = None;
        for row in 0..batch.num_rows() {
            let (d, h) = (dt.value(row), hour.value(row));
            match &mut current {
                Some((p, rows)) if p.dt == d && p.hour == h => rows.push(row as u32),
                _ => {
                    if let Some((p, rows)) = current.take() {
                        push_rows(&mut groups, p, b, rows);
                    }
                    current = Some((
                        PartitionValues {
                            dt: d.to_string(),
                            hour: h.to_string(),
                        },
                        vec![row as u32],
                    ));
                }
            }
        }
        if let Some((p, rows)) = current {
            push_rows(&mut groups, p, b, rows);
        }
    }
    let width = lake_schema.fields().len();
    let parquet_err = |source| LakeError::Parquet {
        table: table.to_string(),
        source,
    };
    let mut out = Vec::new();
    for (partition, parts) in groups {
        let mut part = 0;
        let mut writer = ArrowWriter::try_new(Vec::new(), lake_schema.clone(), Some(props.clone()))
            .map_err(parquet_err)?;
        let mut rows_in_file = 0;
        for (b, rows) in parts {
            let batch = &batches[b];
            let first = rows.first().map_or(0, |&r| r as usize);
            let last = rows.last().map_or(0, |&r| r as usize);
            let selected = if rows.len() == batch.num_rows() {
                batch.clone()
            } else if !rows.is_empty() && last + 1 - first == rows.len() {
                // Rows come sorted by event time, so a partition is usually one run: no copy.
                batch.slice(first, rows.len())
            } else {
                take_record_batch(batch, &UInt32Array::from(rows))?
            };
            let lake_batch =
                RecordBatch::try_new(lake_schema.clone(), selected.columns()[..width].to_vec())?;
            writer.write(&lake_batch).map_err(parquet_err)?;
            rows_in_file += lake_batch.num_rows();
            if writer.bytes_written() + writer.in_progress_size() >= options.target_file_bytes {
                let next =
                    ArrowWriter::try_new(Vec::new(), lake_schema.clone(), Some(props.clone()))
                        .map_err(parquet_err)?;
                let full = std::mem::replace(&mut writer, next);
                let bytes = full.into_inner().map_err(parquet_err)?;
                out.push(EncodedFile {
                    partition: partition.clone(),
                    part,
                    rows: rows_in_file,
                    bytes: Bytes::from(bytes),
                });
                part += 1;
                rows_in_file = 0;
            }
        }
        if rows_in_file > 0 {
            let bytes = writer.into_inner().map_err(parquet_err)?;
            out.push(EncodedFile {
                partition,
                part,
                rows: rows_in_file,
                bytes: Bytes::from(bytes),
            });
        }
    }
    Ok(out)
}

fn push_rows(
    groups: &mut BTreeMap<PartitionValues, Vec<(usize, Vec<u32>)>>,
    p: PartitionValues,
    batch: usize,
    rows: Vec<u32>,
) {
    let entry = groups.entry(p).or_default();
    match entry.last_mut() {
        Some((b, existing)) if *b == batch => existing.extend(rows),
        _ => entry.push((batch, rows)),
    }
}

fn partition_column<'a>(
    batch: &'a RecordBatch,
    name: &str,
) -> Result<&'a arrow::array::StringArray, LakeError> {
    let col = batch
        .column_by_name(name)
        .ok_or_else(|| LakeError::MissingColumn(name.to_string()))?;
    if col.null_count() > 0 {
        return Err(LakeError::MissingColumn(format!("{name} (it has nulls)")));
    }
    col.as_string_opt::<i32>()
        .ok_or_else(|| LakeError::MissingColumn(format!("{name} (as text)")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Float64Array, StringArray};
    use arrow::datatypes::{Field, Schema};
    use parquet::file::reader::{FileReader, SerializedFileReader};
    use parquet::file::serialized_reader::ReadOptionsBuilder;
    use std::sync::Arc;

    /// Encodes 1000 rows of (event_id, mos, dt, hour) and opens the one file with its page index.
    fn encode(
        options: &ParquetOptions,
    ) -> Result<SerializedFileReader<Bytes>, Box<dyn std::error::Error>> {
        let lake = Arc::new(Schema::new(vec![
            Field::new("event_id", DataType::Utf8, false),
            Field::new("mos", DataType::Float64, true),
        ]));
        let mut fields = lake.fields().to_vec();
        fields.push(Arc::new(Field::new("dt", DataType::Utf8, false)));
        fields.push(Arc::new(Field::new("hour", DataType::Utf8, false)));
        let n = 1000;
        let batch = RecordBatch::try_new(
            Arc::new(Schema::new(fields)),
            vec![
                Arc::new(StringArray::from_iter_values(
                    (0..n).map(|i| format!("id-{i}")),
                )),
                Arc::new(Float64Array::from_iter_values(
                    (0..n).map(|i| (i % 7) as f64 / 2.0),
                )),
                Arc::new(StringArray::from_iter_values((0..n).map(|_| "2026-11-01"))),
                Arc::new(StringArray::from_iter_values((0..n).map(|_| "03"))),
            ],
        )?;
        let files = encode_partitions("t", &lake, &[batch], options)?;
        assert_eq!(files.len(), 1);
        assert_eq!(files[0].rows, n);
        let read = ReadOptionsBuilder::new().with_page_index().build();
        Ok(SerializedFileReader::new_with_options(
            files[0].bytes.clone(),
            read,
        )?)
    }

    #[test]
    fn defaults_write_the_page_index_and_dictionaries_and_bss_is_an_option(
    ) -> Result<(), Box<dyn std::error::Error>> {
        let file = encode(&ParquetOptions::default())?;
        let meta = file.metadata();
        assert!(
            meta.row_group(0).column(1).column_index_offset().is_some(),
            "page statistics (column index) written"
        );
        assert!(meta.offset_index().is_some(), "offset index written");
        let encodings = |file: &SerializedFileReader<Bytes>, col: usize| {
            file.metadata()
                .row_group(0)
                .column(col)
                .encodings()
                .collect::<Vec<_>>()
        };
        assert!(
            encodings(&file, 1).contains(&Encoding::RLE_DICTIONARY),
            "{:?}",
            encodings(&file, 1)
        );
        assert!(
            !encodings(&file, 0).contains(&Encoding::RLE_DICTIONARY),
            "event_id is plain"
        );

        let chunk = encode(&ParquetOptions {
            statistics: Statistics::Chunk,
            byte_stream_split_floats: true,
            ..Default::default()
        })?;
        assert!(
            chunk
                .metadata()
                .row_group(0)
                .column(1)
                .column_index_offset()
                .is_none(),
            "no page statistics"
        );
        assert!(
            chunk
                .metadata()
                .row_group(0)
                .column(1)
                .statistics()
                .is_some(),
            "chunk statistics"
        );
        assert!(
            encodings(&chunk, 1).contains(&Encoding::BYTE_STREAM_SPLIT),
            "{:?}",
            encodings(&chunk, 1)
        );
        Ok(())
    }
}
