//! The idempotent batch load end to end: fixture rows as Parquet in moto's S3, a manifest,
//! `COPY ... FORMAT AS PARQUET MANIFEST` + dedup + MERGE + ledger in one Data API batch run by
//! the stand-in on PostgreSQL; loading twice changes nothing, a failed load leaves nothing.

use std::collections::BTreeSet;

use etl_aws::s3::primitives::ByteStream;
use etl_redshift::ddl::TableDef;
use etl_redshift::load::{load_sqls, LoadSpec};
use etl_redshift::{Ident, LoadOutcome, RedshiftDataWarehouse, LEDGER_TABLE};
use etl_warehouse::{LoadFile, LoadRequest, Warehouse};
use tokio_postgres::Client;

use crate::redshift_suite::data_api::{bed, settings};
use crate::redshift_suite::fixture;
use crate::redshift_suite::views::{render, views_dir};
use crate::{Context, Failure, TestResult};

fn boxed<T>(r: Result<T, Box<dyn std::error::Error>>) -> Result<T, Failure> {
    r.map_err(|e| Failure(e.to_string()))
}

/// Writes the fixture rows of `table` as Parquet (one file per partition) to `bucket` and
/// returns the load request of that "batch".
async fn upload_fixture(
    s3: &etl_aws::s3::Client,
    bucket: &str,
    table: &str,
    batch_id: &str,
) -> Result<LoadRequest, Failure> {
    let dir = tempfile::tempdir().context("tempdir")?;
    let batch = fixture_batch(table)?;
    let files = boxed(fixture::write_lake(
        dir.path(),
        table,
        &batch,
        &format!("{batch_id}.parquet"),
    ))?;
    let mut request = LoadRequest {
        table: table.into(),
        batch_id: batch_id.into(),
        files: Vec::new(),
        batches: Vec::new(),
        columns: Vec::new(),
    };
    for path in files {
        let key = format!(
            "lake/{}",
            path.strip_prefix(dir.path())
                .context("relative path")?
                .display()
        );
        let bytes = std::fs::read(&path).context("reading parquet")?;
        let rows = parquet_rows(&bytes)?;
        let size = bytes.len() as u64;
        s3.put_object()
            .bucket(bucket)
            .key(&key)
            .body(ByteStream::from(bytes))
            .send()
            .await
            .context("PutObject")?;
        request.files.push(LoadFile {
            uri: format!("s3://{bucket}/{key}"),
            rows,
            bytes: size,
        });
    }
    Ok(request)
}

/// The fixture rows of `table` with the lake schema (the support module's `fixture_batch`
/// resolves paths from etl-warehouse's manifest directory, so it is redone here).
fn fixture_batch(table: &str) -> Result<arrow::array::RecordBatch, Failure> {
    use arrow::array::{ArrayRef, StringArray};
    use arrow::compute::{cast_with_options, CastOptions};
    let text = std::fs::read_to_string(views_dir().join("fixtures").join(format!("{table}.csv")))
        .context("fixture")?;
    let csv = boxed(fixture::parse_csv(&text))?;
    let schemas = etl_schema::embedded()?;
    let lake = schemas
        .iter()
        .find(|s| s.stream == table)
        .context("schema")?
        .lake_arrow_schema();
    let names: Vec<&str> = lake.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(csv.header, names, "{table}.csv header = lake columns");
    let options = CastOptions {
        safe: false,
        ..Default::default()
    };
    let mut arrays: Vec<ArrayRef> = Vec::new();
    for (i, field) in lake.fields().iter().enumerate() {
        let column: StringArray = csv.rows.iter().map(|r| r[i].as_deref()).collect();
        arrays.push(cast_with_options(&column, field.data_type(), &options).context(field.name())?);
    }
    arrow::array::RecordBatch::try_new(lake, arrays).context("fixture batch")
}

fn parquet_rows(bytes: &[u8]) -> Result<u64, Failure> {
    let reader = datafusion::parquet::file::serialized_reader::SerializedFileReader::new(
        bytes::Bytes::copy_from_slice(bytes),
    )
    .context("parquet footer")?;
    use datafusion::parquet::file::reader::FileReader;
    Ok(reader.metadata().file_metadata().num_rows() as u64)
}

async fn count(client: &Client, sql: &str) -> Result<i64, Failure> {
    Ok(client
        .query_one(sql, &[])
        .await
        .context(sql)?
        .get::<_, i64>(0))
}

fn fixture_event_ids(table: &str) -> Result<usize, Failure> {
    let text = std::fs::read_to_string(views_dir().join("fixtures").join(format!("{table}.csv")))
        .context("fixture")?;
    let csv = boxed(fixture::parse_csv(&text))?;
    Ok(csv
        .rows
        .iter()
        .filter_map(|r| r[0].clone())
        .collect::<BTreeSet<_>>()
        .len())
}

#[tokio::test]
async fn a_batch_loads_exactly_once_and_feeds_the_views() -> TestResult {
    let moto = etl_testbed::moto().await?;
    let s3 = moto.clients().await?.s3();
    let bucket = etl_testbed::unique_name("rsload");
    s3.create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .context("CreateBucket")?;
    let bed = bed("rsload", Some(s3.clone()), 1000).await?;
    let schemas = etl_schema::embedded()?;
    let views = etl_warehouse::embedded_views()?;
    let warehouse = RedshiftDataWarehouse::with_clients(
        settings(&bed.db, "lake_wh", &format!("s3://{bucket}/_manifests")),
        bed.client.clone(),
        s3.clone(),
        &schemas,
    )?;
    let wh: &dyn Warehouse = &warehouse;
    wh.migrate(&schemas, &views).await?;

    let calls = upload_fixture(&s3, &bucket, "call_events", "calls-1-38").await?;
    let apps = upload_fixture(&s3, &bucket, "app_events", "apps-1-17").await?;
    assert!(
        calls.files.len() > 1,
        "the fixture spans several partitions: {:?}",
        calls.files
    );
    assert_eq!(warehouse.load_batch(&calls).await?, LoadOutcome::Loaded);
    assert_eq!(warehouse.load_batch(&apps).await?, LoadOutcome::Loaded);

    let db = &bed.db.client;
    let expected_calls = fixture_event_ids("call_events")? as i64;
    let expected_apps = fixture_event_ids("app_events")? as i64;
    assert_eq!(
        count(db, "SELECT COUNT(*) FROM lake_wh.call_events").await?,
        expected_calls
    );
    assert_eq!(
        count(db, "SELECT COUNT(*) FROM lake_wh.app_events").await?,
        expected_apps
    );
    let ledger = format!("SELECT COUNT(*) FROM lake_wh.{LEDGER_TABLE}");
    assert_eq!(count(db, &ledger).await?, 2);
    let manifest = s3
        .get_object()
        .bucket(&bucket)
        .key("_manifests/call_events/calls-1-38.manifest")
        .send()
        .await
        .context("manifest written")?;
    let manifest = manifest
        .body
        .collect()
        .await
        .context("manifest body")?
        .into_bytes();
    let manifest: serde_json::Value = serde_json::from_slice(&manifest).context("manifest JSON")?;
    assert_eq!(
        manifest["entries"][0]["meta"]["content_length"],
        serde_json::json!(calls.files[0].bytes)
    );
    assert_eq!(manifest["entries"][0]["mandatory"], serde_json::json!(true));

    // Every view over the loaded tables matches its golden file.
    let schema = Ident::new("schema", "lake_wh")?;
    for view in &views {
        let got = render(db, &schema, view).await?;
        let expected = std::fs::read_to_string(
            views_dir()
                .join("expected")
                .join(format!("{}.csv", view.name)),
        )
        .context("golden")?;
        assert_eq!(
            got, expected,
            "view {} over the loaded warehouse",
            view.name
        );
    }

    // Loading the same batch again: the ledger says done, nothing changes.
    assert_eq!(
        warehouse.load_batch(&calls).await?,
        LoadOutcome::AlreadyLoaded
    );
    // Even the load transaction run again (two loaders racing past the ledger check) changes nothing.
    let table = TableDef::from_schema(
        schemas
            .iter()
            .find(|s| s.stream == "call_events")
            .context("schema")?,
    )?;
    let manifest_url = format!("s3://{bucket}/_manifests/call_events/calls-1-38.manifest");
    let spec = LoadSpec {
        schema: &schema,
        request: &calls,
        manifest_url: &manifest_url,
        iam_role_arn: "arn:aws:iam::123456789012:role/EtlCopy",
        loaded_at: "2024-05-02 00:00:00",
    };
    let before = bed
        .db
        .client
        .query("SELECT * FROM lake_wh.call_events ORDER BY event_id", &[])
        .await
        .context("rows")?
        .len();
    warehouse
        .data_api()
        .batch(&load_sqls(&table, &spec)?)
        .await?;
    assert_eq!(
        count(db, "SELECT COUNT(*) FROM lake_wh.call_events").await?,
        expected_calls
    );
    assert_eq!(before as i64, expected_calls);
    assert_eq!(
        count(db, &ledger).await?,
        2,
        "the ledger row is inserted once"
    );

    // A failing load (wrong content_length in the manifest) leaves nothing behind and is an error.
    let mut broken = calls.clone();
    broken.batch_id = "calls-broken".into();
    broken.files[0].bytes += 1;
    let err = warehouse
        .load_batch(&broken)
        .await
        .expect_err("content_length mismatch must fail the COPY");
    assert!(err.to_string().contains("content_length"), "{err}");
    assert_eq!(
        count(db, "SELECT COUNT(*) FROM lake_wh.call_events").await?,
        expected_calls
    );
    assert_eq!(
        count(db, &ledger).await?,
        2,
        "no ledger row for a failed load"
    );
    let leftovers = count(
        db,
        "SELECT COUNT(*) FROM pg_tables WHERE tablename LIKE 'stage_%'",
    )
    .await?;
    assert_eq!(leftovers, 0, "no staging table survives");
    Ok(())
}
