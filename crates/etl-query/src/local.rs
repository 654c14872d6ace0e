//! The local engine: DataFusion over the lake in place, local directory or S3.
//!
//! The tables are the ones the catalog holds (`etl catalog sync`: one per stream schema) at the
//! catalog's location `<lake>/<table>/`, with the string partition columns `dt` and `hour` read
//! from the `dt=YYYY-MM-DD/hour=HH/` folders, i.e. what Athena's partition projection
//! (`storage.location.template = <table location>dt=${dt}/hour=${hour}/`) and the registered
//! Glue partitions name. A filter on `dt` / `hour` prunes whole partitions: DataFusion lists and
//! opens only the matching folders (a test puts an unreadable file in another partition to show
//! it is never opened). The curated views are there too.

use crate::{QueryError, QueryResult};
use etl_lake::S3Options;
use etl_schema::StreamSchema;
use etl_warehouse::{LakeLocation, LocalWarehouse, ViewDef};
use std::path::PathBuf;
use std::sync::Arc;

/// Where the local engine reads the lake.
#[derive(Debug, Clone)]
pub enum LocalLake {
    /// A local lake directory.
    Dir(PathBuf),
    /// An `s3://bucket/prefix` lake, read with these options (same endpoint and credentials as
    /// the lake writer).
    S3 {
        /// `s3://bucket/prefix`.
        location: String,
        /// How to reach S3.
        options: S3Options,
    },
}

/// Opens the lake with the tables of `schemas` and the `views`.
pub async fn open(
    lake: LocalLake,
    schemas: &[StreamSchema],
    views: &[ViewDef],
) -> Result<LocalWarehouse, QueryError> {
    let location = match lake {
        LocalLake::Dir(dir) => LakeLocation::Dir(dir),
        LocalLake::S3 { location, options } => {
            let (bucket, _prefix) =
                etl_lake::parse_s3_url(&location).map_err(|e| QueryError::Lake(e.to_string()))?;
            // DataFusion resolves `s3://bucket/…` URLs against a store for the bucket root.
            let store = etl_lake::open_s3_store(&format!("s3://{bucket}"), &options)
                .map_err(|e| QueryError::Lake(e.to_string()))?;
            LakeLocation::Url {
                url: location,
                store: Arc::clone(&store),
            }
        }
    };
    Ok(LocalWarehouse::open(location, schemas, views).await?)
}

/// Runs one read-only statement and returns its rows with their columns (also for no rows).
pub async fn run(warehouse: &LocalWarehouse, sql: &str) -> Result<QueryResult, QueryError> {
    let batches = warehouse.query(sql).await?;
    let schema = match batches.first() {
        Some(b) => b.schema(),
        None => {
            // The statement already passed the read-only check above, so planning it again
            // changes nothing; it only yields the column list of an empty result.
            let frame = warehouse.session().sql(sql).await.map_err(|e| {
                QueryError::Lake(format!("planning the query again for its columns: {e}"))
            })?;
            Arc::new(frame.schema().as_arrow().clone())
        }
    };
    Ok(QueryResult {
        schema,
        batches,
        athena: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{new_null_array, ArrayRef, Int64Array, RecordBatch, StringArray};
    use arrow::datatypes::DataType;

    /// `rows` call_events rows (every column NULL but `event_id`) as one Parquet file.
    fn parquet_file(schema: &StreamSchema, rows: usize) -> Vec<u8> {
        let arrow_schema = schema.lake_arrow_schema();
        let columns: Vec<ArrayRef> = arrow_schema
            .fields()
            .iter()
            .map(|f| match f.data_type() {
                _ if f.is_nullable() => new_null_array(f.data_type(), rows),
                DataType::Utf8 => Arc::new(StringArray::from(
                    (0..rows).map(|i| format!("e{i}")).collect::<Vec<_>>(),
                )) as ArrayRef,
                other => {
                    arrow::compute::cast(&Int64Array::from(vec![1_714_557_600_000; rows]), other)
                        .unwrap()
                }
            })
            .collect();
        let batch = RecordBatch::try_new(arrow_schema.clone(), columns).unwrap();
        let mut out = Vec::new();
        let mut writer =
            parquet::arrow::ArrowWriter::try_new(&mut out, arrow_schema, None).unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
        out
    }

    #[tokio::test]
    async fn filters_on_dt_and_hour_never_open_other_partitions() {
        let schemas = etl_schema::embedded().unwrap();
        let calls = schemas.iter().find(|s| s.stream == "call_events").unwrap();
        let lake = tempfile::tempdir().unwrap();
        let put = |partition: &str, name: &str, bytes: &[u8]| {
            let dir = lake.path().join("call_events").join(partition);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join(name), bytes).unwrap();
        };
        put(
            "dt=2024-05-01/hour=10",
            "a.parquet",
            &parquet_file(calls, 3),
        );
        put(
            "dt=2024-05-01/hour=11",
            "b.parquet",
            &parquet_file(calls, 2),
        );
        // Not Parquet at all: any query that opens it fails.
        put("dt=2024-05-02/hour=09", "broken.parquet", b"not parquet");
        let warehouse = open(LocalLake::Dir(lake.path().to_path_buf()), &schemas, &[])
            .await
            .unwrap();
        let count = |sql: &'static str| {
            let warehouse = &warehouse;
            async move {
                let result = run(warehouse, sql).await?;
                let csv = crate::output::render(
                    &result.schema,
                    &result.batches,
                    crate::output::Format::Csv,
                )?;
                Ok::<String, QueryError>(csv)
            }
        };
        assert_eq!(
            count("SELECT count(*) AS n FROM call_events WHERE dt = '2024-05-01'")
                .await
                .unwrap(),
            "n\n5\n"
        );
        assert_eq!(
            count("SELECT count(*) AS n FROM call_events WHERE dt = '2024-05-01' AND hour = '11'")
                .await
                .unwrap(),
            "n\n2\n"
        );
        let unpruned = count("SELECT count(event_id) AS n FROM call_events").await;
        assert!(
            unpruned.is_err(),
            "the broken partition was not read: {unpruned:?}"
        );
        // An empty result still has its columns.
        assert_eq!(
            count("SELECT event_id FROM call_events WHERE dt = '2030-01-01'")
                .await
                .unwrap(),
            "event_id\n"
        );
    }
}
