//! `etl_compact` on an S3 lake with its partitions in Glue (moto): the partition's Glue location
//! moves to the compacted generation in one `UpdatePartition`; what Glue points at holds each
//! row once at every crash point; a rerun finishes; projected tables are refused.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{
    Array, AsArray, Float64Array, RecordBatch, StringArray, TimestampMillisecondArray,
};
use etl_compact::{CompactError, CompactOptions, Compactor, CrashPoint, GlueLocations};
use etl_glue::{GlueCatalog, Projection};
use etl_lake::catalog::Catalog;
use etl_lake::{encode_partitions, BatchId, BatchSource, Lake, ParquetOptions, PartitionValues};
use etl_schema::StreamSchema;
use etl_testbed::unique_ident;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::lake_delivery::new_bucket_lake;
use crate::{Context, Failure, TestResult};

const SCHEMA: &str = r#"
stream = "cmp_events"
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

/// 2024-05-01T10:00:00Z.
const TEN: i64 = 1_714_557_600_000;

fn hour_10() -> PartitionValues {
    PartitionValues {
        dt: "2024-05-01".into(),
        hour: "10".into(),
    }
}

/// One batch of `(event_id, minute)` rows in hour 10.
async fn write(lake: &Lake, schema: &StreamSchema, first: u64, rows: &[(&str, i64)]) -> TestResult {
    let n = rows.len();
    let batch = RecordBatch::try_new(
        schema.transformed_arrow_schema(),
        vec![
            Arc::new(StringArray::from(
                rows.iter().map(|r| r.0).collect::<Vec<_>>(),
            )),
            Arc::new(
                TimestampMillisecondArray::from(
                    rows.iter().map(|r| TEN + r.1 * 60_000).collect::<Vec<_>>(),
                )
                .with_timezone("UTC"),
            ),
            Arc::new(Float64Array::from(vec![first as f64; n])),
            Arc::new(StringArray::from(vec![None::<&str>; n])),
            Arc::new(TimestampMillisecondArray::from(vec![None::<i64>; n]).with_timezone("UTC")),
            Arc::new(StringArray::from(vec!["2024-05-01"; n])),
            Arc::new(StringArray::from(vec!["10"; n])),
        ],
    )?;
    let files = encode_partitions(
        "cmp_events",
        &schema.lake_arrow_schema(),
        &[batch],
        &ParquetOptions::default(),
    )?;
    let last = first + n as u64 - 1;
    lake.write_batch(
        "cmp_events",
        &BatchId::new("t", first, last),
        BatchSource {
            name: "t",
            first,
            last,
            schema_version: Some(1),
        },
        files,
        &[],
        "2024-05-01",
    )
    .await?;
    tokio::time::sleep(Duration::from_millis(20)).await;
    Ok(())
}

/// Every event id of the Parquet files directly under a Glue location (what Athena reads).
async fn rows_at(
    lake: &Lake,
    lake_location: &str,
    glue_location: &str,
) -> Result<Vec<String>, Failure> {
    let prefix = glue_location
        .strip_prefix(&format!("{}/", lake_location.trim_end_matches('/')))
        .context("location under the lake")?;
    let mut ids = Vec::new();
    for path in lake.list(prefix).await? {
        let rest = &path[prefix.len()..];
        if rest.contains('/') || !rest.ends_with(".parquet") {
            continue;
        }
        let bytes = lake.get(&path).await?.context("object")?;
        for batch in ParquetRecordBatchReaderBuilder::try_new(bytes)?.build()? {
            let batch = batch?;
            let col = batch.column(0).as_string::<i32>();
            ids.extend((0..col.len()).map(|i| col.value(i).to_string()));
        }
    }
    ids.sort();
    Ok(ids)
}

async fn glue_location(catalog: &GlueCatalog) -> Result<String, Failure> {
    catalog
        .partition_location("cmp_events", &hour_10())
        .await?
        .context("partition registered")
}

fn options(crash_at: Option<CrashPoint>) -> CompactOptions {
    CompactOptions {
        parquet: ParquetOptions::default(),
        older_than: Duration::ZERO,
        grace_period: Duration::ZERO,
        dry_run: false,
        now_ms: None,
        crash_at,
    }
}

async fn setup(
    moto: &etl_testbed::Moto,
) -> Result<(String, Lake, GlueCatalog, StreamSchema), Failure> {
    let (location, lake) = new_bucket_lake(moto).await?;
    let glue = moto.clients().await?.glue();
    let catalog = GlueCatalog::new(glue, unique_ident("cmp"), &location);
    let schema = StreamSchema::from_toml_str(SCHEMA, "compaction test")?;
    catalog.sync_table(&schema).await?;
    write(&lake, &schema, 1, &[("e1", 1), ("e2", 2)]).await?;
    write(&lake, &schema, 3, &[("e3", 3), ("e1", 1)]).await?;
    write(&lake, &schema, 5, &[("e4", 4)]).await?;
    catalog.add_partitions("cmp_events", &[hour_10()]).await?;
    Ok((location, lake, catalog, schema))
}

fn ids(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[tokio::test]
async fn compaction_switches_the_glue_partition_and_every_crash_point_stays_readable() -> TestResult
{
    let moto = etl_testbed::moto().await?;
    let before = ids(&["e1", "e1", "e2", "e3", "e4"]);
    let after = ids(&["e1", "e2", "e3", "e4"]);
    for point in CrashPoint::ALL {
        let (location, lake, catalog, schema) = setup(&moto).await?;
        let base = glue_location(&catalog).await?;
        assert!(
            base.ends_with("/cmp_events/dt=2024-05-01/hour=10/"),
            "{base}"
        );
        assert_eq!(rows_at(&lake, &location, &base).await?, before);

        let locations = GlueLocations(GlueCatalog::new(
            moto.clients().await?.glue(),
            catalog.database(),
            &location,
        ));
        let err = Compactor::new(&lake, options(Some(point)))
            .with_locations(&locations)
            .run(&schema)
            .await
            .expect_err("injected crash");
        assert!(
            matches!(err, CompactError::Crash(p) if p == point),
            "{point:?}: {err}"
        );
        // What Athena would read now: the old files or the new generation, each row once.
        let now = glue_location(&catalog).await?;
        let seen = rows_at(&lake, &location, &now).await?;
        assert!(
            seen == before || seen == after,
            "{point:?}: {now} holds {seen:?}"
        );

        let report = Compactor::new(&lake, options(None))
            .with_locations(&locations)
            .run(&schema)
            .await
            .map_err(|e| Failure(format!("{point:?}: rerun: {e}")))?;
        let compacted = glue_location(&catalog).await?;
        assert!(
            compacted.ends_with("/_compacted/cmp_events/dt=2024-05-01/hour=10/g=1/"),
            "{point:?}: {compacted}"
        );
        assert_eq!(
            rows_at(&lake, &location, &compacted).await?,
            after,
            "{point:?}"
        );
        // A writer registering the hour again (a late batch, a new process) leaves it alone.
        let writer = GlueCatalog::new(moto.clients().await?.glue(), catalog.database(), &location);
        writer.add_partitions("cmp_events", &[hour_10()]).await?;
        assert_eq!(glue_location(&catalog).await?, compacted, "{point:?}");
        // The writer's files are gone (grace 0, no ledger): the old location is empty.
        assert!(
            rows_at(&lake, &location, &base).await?.is_empty(),
            "{point:?}: {report:?}"
        );

        // The local engine over the same S3 lake agrees.
        let (bucket, _) = etl_lake::parse_s3_url(&location)?;
        let options = etl_glue::s3_options(
            &etl_testbed::settings_for(moto.endpoint()),
            etl_lake::S3Encryption::S3Managed,
        );
        let bucket_store = etl_lake::open_s3_store(&format!("s3://{bucket}"), &options)?;
        let warehouse = etl_warehouse::LocalWarehouse::open(
            etl_warehouse::LakeLocation::Url {
                url: location.clone(),
                store: bucket_store,
            },
            &[schema.clone()],
            &[],
        )
        .await?;
        let out = warehouse
            .query("SELECT count(*) AS n, count(DISTINCT event_id) AS d FROM cmp_events")
            .await?;
        let n = out[0]
            .column(0)
            .as_primitive::<arrow::datatypes::Int64Type>()
            .value(0);
        let d = out[0]
            .column(1)
            .as_primitive::<arrow::datatypes::Int64Type>()
            .value(0);
        assert_eq!((n, d), (4, 4), "{point:?}");
    }
    Ok(())
}

#[tokio::test]
async fn a_projected_table_is_refused_and_left_alone() -> TestResult {
    let moto = etl_testbed::moto().await?;
    let (location, lake) = new_bucket_lake(&moto).await?;
    let glue = moto.clients().await?.glue();
    let database = unique_ident("cmpproj");
    let catalog =
        GlueCatalog::new(glue.clone(), &database, &location).with_projection(Projection {
            dt_start: "2024-01-01".into(),
        });
    let schema = StreamSchema::from_toml_str(SCHEMA, "compaction test")?;
    catalog.sync_table(&schema).await?;
    write(&lake, &schema, 1, &[("e1", 1)]).await?;
    write(&lake, &schema, 2, &[("e2", 2)]).await?;
    let before: BTreeSet<String> = lake.list("").await?.into_iter().collect();
    let locations = GlueLocations(GlueCatalog::new(glue, &database, &location));
    let err = Compactor::new(&lake, options(None))
        .with_locations(&locations)
        .run(&schema)
        .await
        .expect_err("projection refused");
    assert!(err.to_string().contains("partition projection"), "{err}");
    let after: BTreeSet<String> = lake.list("").await?.into_iter().collect();
    assert_eq!(before, after);
    Ok(())
}
