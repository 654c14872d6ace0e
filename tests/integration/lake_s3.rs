//! The lake on S3 (moto): batches written through `etl_lake::Lake` to `s3://bucket/prefix`,
//! read back with the S3 SDK client and a Parquet reader; partitions registered in Glue for
//! every dt/hour written; SSE and multipart uploads.

use std::collections::BTreeSet;
use std::sync::Arc;

use arrow::array::{Array, Float64Array, RecordBatch, StringArray, TimestampMillisecondArray};
use arrow::datatypes::{DataType, TimeUnit};
use bytes::Bytes;
use etl_aws::s3::types::ServerSideEncryption;
use etl_glue::GlueCatalog;
use etl_lake::catalog::Catalog;
use etl_lake::{
    encode_partitions, BatchId, BatchSource, Lake, ParquetOptions, PartitionValues, S3Encryption,
};
use etl_schema::StreamSchema;
use etl_testbed::unique_name;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::{Context, Failure, TestResult};

const SCHEMA: &str = r#"
stream = "s3_events"
version = 1
[[fields]]
name = "event_id"
type = "string"
required = true
doc = "id"
[[fields]]
name = "occurred_at"
type = "timestamp"
required = true
doc = "when"
[[fields]]
name = "amount"
type = "double"
doc = "how much"
"#;

/// Rows at 2024-05-01T09:59:59.999Z, 10:00:00.000Z, 10:30:00.123Z and 2024-05-02T00:00:00.000Z:
/// three partitions.
fn transformed(schema: &StreamSchema) -> Result<RecordBatch, Failure> {
    let ts = [
        1_714_557_599_999i64,
        1_714_557_600_000,
        1_714_559_400_123,
        1_714_608_000_000,
    ];
    let batch = RecordBatch::try_new(
        schema.transformed_arrow_schema(),
        vec![
            Arc::new(StringArray::from(vec!["e1", "e2", "e3", "e4"])),
            Arc::new(TimestampMillisecondArray::from(ts.to_vec()).with_timezone("UTC")),
            Arc::new(Float64Array::from(vec![
                Some(1.5),
                None,
                Some(3.0),
                Some(4.25),
            ])),
            Arc::new(StringArray::from(vec![
                None::<&str>,
                Some("{\"k\":1}"),
                None,
                None,
            ])),
            Arc::new(TimestampMillisecondArray::from(ts.to_vec()).with_timezone("UTC")),
            Arc::new(StringArray::from(vec![
                "2024-05-01",
                "2024-05-01",
                "2024-05-01",
                "2024-05-02",
            ])),
            Arc::new(StringArray::from(vec!["09", "10", "10", "00"])),
        ],
    )?;
    Ok(batch)
}

#[tokio::test]
async fn batches_written_to_s3_read_back_and_partitions_reach_glue() -> TestResult {
    let moto = etl_testbed::moto().await?;
    let clients = moto.clients().await?;
    let s3 = clients.s3();
    let bucket = unique_name("lake");
    s3.create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .context("CreateBucket")?;
    let location = format!("s3://{bucket}/warehouse/lake");
    let options = etl_glue::s3_options(&moto.settings(), S3Encryption::S3Managed);
    let lake = Lake::open_s3(&location, &options)?;

    let schema = StreamSchema::from_toml_str(SCHEMA, "lake_s3 test")?;
    let files = encode_partitions(
        "s3_events",
        &schema.lake_arrow_schema(),
        &[transformed(&schema)?],
        &ParquetOptions::default(),
    )?;
    let batch_id = BatchId::new("test", 1, 4);
    let commit = lake
        .write_batch(
            "s3_events",
            &batch_id,
            BatchSource {
                name: "test",
                first: 1,
                last: 4,
                schema_version: Some(1),
            },
            files,
            &[],
            "2024-05-01",
        )
        .await?;
    assert_eq!(commit.rows(), 4);
    assert_eq!(commit.files.len(), 3);

    // Independent read path: the SDK client lists and reads the objects under the prefix.
    let listed = s3
        .list_objects_v2()
        .bucket(&bucket)
        .prefix("warehouse/lake/")
        .send()
        .await
        .context("ListObjectsV2")?;
    let keys: BTreeSet<&str> = listed.contents().iter().filter_map(|o| o.key()).collect();
    let expected_keys: BTreeSet<String> = commit
        .files
        .iter()
        .map(|f| format!("warehouse/lake/{}", f.path))
        .chain([format!("warehouse/lake/_commits/s3_events/{batch_id}.json")])
        .collect();
    assert_eq!(keys, expected_keys.iter().map(String::as_str).collect());
    assert!(
        keys.contains(
            format!("warehouse/lake/s3_events/dt=2024-05-01/hour=10/{batch_id}-0000.parquet")
                .as_str()
        ),
        "{keys:?}"
    );

    let mut ids = Vec::new();
    for f in &commit.files {
        let key = format!("warehouse/lake/{}", f.path);
        let object = s3
            .get_object()
            .bucket(&bucket)
            .key(&key)
            .send()
            .await
            .context("GetObject")?;
        assert_eq!(
            object.server_side_encryption(),
            Some(&ServerSideEncryption::Aes256),
            "{key} is SSE-S3"
        );
        let body: Bytes = object
            .body
            .collect()
            .await
            .context("object body")?
            .into_bytes();
        assert_eq!(body.len() as u64, f.bytes);
        let reader = ParquetRecordBatchReaderBuilder::try_new(body)?;
        // Athena contract: INT64 TIMESTAMP(MILLIS, UTC), lowercase names, no INT96.
        let descr = reader.parquet_schema();
        for column in descr.columns() {
            assert_eq!(column.name(), column.name().to_lowercase());
            assert_ne!(
                column.physical_type(),
                parquet::basic::Type::INT96,
                "{}",
                column.name()
            );
        }
        let arrow_schema = reader.schema().clone();
        let names: Vec<&str> = arrow_schema
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .collect();
        assert_eq!(
            names,
            ["event_id", "occurred_at", "amount", "extras", "arrived_at"],
            "no dt/hour inside the files"
        );
        assert_eq!(
            arrow_schema.field(1).data_type(),
            &DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
        );
        let mut rows = 0;
        for batch in reader.build()? {
            let batch = batch?;
            rows += batch.num_rows();
            let col = batch
                .column(0)
                .as_any()
                .downcast_ref::<StringArray>()
                .context("event_id as text")?;
            ids.extend((0..col.len()).map(|i| col.value(i).to_string()));
        }
        assert_eq!(rows as u64, f.rows);
    }
    ids.sort();
    assert_eq!(ids, ["e1", "e2", "e3", "e4"]);

    // The commit record reads back through the lake (same store) too.
    let commits = lake.commits("s3_events").await?;
    assert_eq!(commits, vec![commit.clone()]);

    // Every dt/hour written becomes a Glue partition.
    let catalog = GlueCatalog::new(clients.glue(), etl_testbed::unique_ident("lake"), &location);
    catalog.sync_table(&schema).await?;
    let written: BTreeSet<PartitionValues> =
        commit.files.iter().map(|f| f.partition.clone()).collect();
    let written: Vec<PartitionValues> = written.into_iter().collect();
    assert_eq!(catalog.add_partitions("s3_events", &written).await?, 3);
    let registered = catalog.partitions("s3_events").await?;
    assert_eq!(registered, written);
    let hours: Vec<String> = registered.iter().map(|p| p.path()).collect();
    assert_eq!(
        hours,
        [
            "dt=2024-05-01/hour=09",
            "dt=2024-05-01/hour=10",
            "dt=2024-05-02/hour=00"
        ]
    );
    Ok(())
}

#[tokio::test]
async fn large_objects_use_multipart_uploads() -> TestResult {
    let moto = etl_testbed::moto().await?;
    let s3 = moto.clients().await?.s3();
    let bucket = unique_name("lake");
    s3.create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .context("CreateBucket")?;
    let options = etl_glue::s3_options(&moto.settings(), S3Encryption::BucketDefault);
    let lake =
        Lake::open_s3(&format!("s3://{bucket}/p"), &options)?.with_multipart_threshold(1 << 20);

    let big: Vec<u8> = (0..6 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    lake.put("big/blob.bin", Bytes::from(big.clone())).await?;
    lake.put("small/blob.bin", Bytes::from_static(b"small"))
        .await?;

    let head = s3
        .head_object()
        .bucket(&bucket)
        .key("p/big/blob.bin")
        .send()
        .await
        .context("HeadObject big")?;
    let etag = head.e_tag().unwrap_or("");
    assert!(
        etag.trim_matches('"').ends_with("-1"),
        "a multipart ETag ends in -<parts>: {etag}"
    );
    let small = s3
        .head_object()
        .bucket(&bucket)
        .key("p/small/blob.bin")
        .send()
        .await
        .context("HeadObject small")?;
    assert!(
        !small.e_tag().unwrap_or("").contains('-'),
        "a small object is one PutObject: {:?}",
        small.e_tag()
    );
    let got = lake.get("big/blob.bin").await?.context("big object")?;
    assert_eq!(got.len(), big.len());
    assert!(got == big, "multipart object reads back byte for byte");
    Ok(())
}
