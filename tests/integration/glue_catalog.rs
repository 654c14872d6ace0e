//! `etl_glue::GlueCatalog` against moto's Glue: the stored table field by field (against
//! ../shared/reference/aws-contracts.md §1), partitions, additive evolution, refused breaking changes.

use std::collections::HashMap;

use etl_glue::{GlueCatalog, Projection};
use etl_lake::catalog::{Catalog, CatalogError, TableChange};
use etl_lake::PartitionValues;
use etl_schema::{Field, FieldType, StreamSchema};
use etl_testbed::unique_ident;

use crate::{Context, Failure, TestResult};

fn schema(stream: &str) -> Result<StreamSchema, Failure> {
    etl_schema::embedded()?
        .into_iter()
        .find(|s| s.stream == stream)
        .context(stream)
}

fn partition(dt: &str, hour: &str) -> PartitionValues {
    PartitionValues {
        dt: dt.into(),
        hour: hour.into(),
    }
}

async fn catalog(database: &str) -> Result<GlueCatalog, Failure> {
    let glue = etl_testbed::moto().await?.clients().await?.glue();
    Ok(GlueCatalog::new(glue, database, "s3://lake-bucket/prefix/"))
}

#[tokio::test]
async fn sync_creates_the_database_and_tables_athena_needs() -> TestResult {
    let database = unique_ident("lake");
    let catalog = catalog(&database).await?;
    for stream in ["app_events", "call_events"] {
        assert_eq!(
            catalog.sync_table(&schema(stream)?).await?,
            TableChange::Created,
            "{stream}"
        );
        assert_eq!(
            catalog.sync_table(&schema(stream)?).await?,
            TableChange::Unchanged,
            "{stream} re-sync"
        );
    }

    let glue = etl_testbed::moto().await?.clients().await?.glue();
    glue.get_database()
        .name(&database)
        .send()
        .await
        .context("GetDatabase")?;
    let app = schema("app_events")?;
    let table = glue
        .get_table()
        .database_name(&database)
        .name("app_events")
        .send()
        .await
        .context("GetTable")?
        .table
        .context("table")?;

    // §1 TableInput, field by field.
    assert_eq!(table.name(), "app_events");
    assert_eq!(table.table_type(), Some("EXTERNAL_TABLE"));
    let params = table.parameters().context("table parameters")?;
    assert_eq!(
        params.get("classification").map(String::as_str),
        Some("parquet")
    );
    assert_eq!(params.get("EXTERNAL").map(String::as_str), Some("TRUE"));
    let embedded = schema("app_events")?.version.to_string();
    assert_eq!(
        params.get("etl.schema_version").map(String::as_str),
        Some(embedded.as_str())
    );
    assert!(
        !params.contains_key("projection.enabled"),
        "projection is off unless asked for"
    );
    let sd = table.storage_descriptor().context("StorageDescriptor")?;
    assert_eq!(sd.location(), Some("s3://lake-bucket/prefix/app_events/"));
    assert_eq!(
        sd.input_format(),
        Some("org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat")
    );
    assert_eq!(
        sd.output_format(),
        Some("org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat")
    );
    let serde = sd.serde_info().context("SerdeInfo")?;
    assert_eq!(
        serde.serialization_library(),
        Some("org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe")
    );
    assert_eq!(
        serde
            .parameters()
            .and_then(|p| p.get("serialization.format"))
            .map(String::as_str),
        Some("1")
    );
    let columns: Vec<(&str, Option<&str>)> = sd
        .columns()
        .iter()
        .map(|c| (c.name(), c.r#type()))
        .collect();
    let expected: Vec<(String, String)> = app
        .lake_columns()
        .into_iter()
        .map(|c| (c.name, c.hive_type.to_string()))
        .collect();
    let expected: Vec<(&str, Option<&str>)> = expected
        .iter()
        .map(|(n, t)| (n.as_str(), Some(t.as_str())))
        .collect();
    assert_eq!(columns, expected);
    assert!(
        columns.iter().all(|(n, _)| *n == n.to_lowercase()),
        "column names are lowercase"
    );
    assert!(
        columns.iter().any(|(_, t)| *t == Some("timestamp")),
        "occurred_at is a Hive timestamp"
    );
    let first = &sd.columns()[0];
    assert_eq!(
        first.comment(),
        Some(app.fields[0].doc.as_str()),
        "comments come from the schema docs"
    );
    let keys: Vec<(&str, Option<&str>)> = table
        .partition_keys()
        .iter()
        .map(|c| (c.name(), c.r#type()))
        .collect();
    assert_eq!(keys, [("dt", Some("string")), ("hour", Some("string"))]);
    Ok(())
}

#[tokio::test]
async fn partitions_are_batched_idempotent_and_carry_a_full_descriptor() -> TestResult {
    let database = unique_ident("lake");
    let catalog = catalog(&database).await?;
    catalog.sync_table(&schema("call_events")?).await?;

    // 7 days x 24 hours = 168 partitions: two BatchCreatePartition calls (100 + 68).
    let mut all: Vec<PartitionValues> = Vec::new();
    for day in 1..=7 {
        for hour in 0..24 {
            all.push(partition(
                &format!("2024-03-{day:02}"),
                &format!("{hour:02}"),
            ));
        }
    }
    let first_half = &all[..50];
    assert_eq!(catalog.add_partitions("call_events", first_half).await?, 50);
    assert_eq!(
        catalog.add_partitions("call_events", first_half).await?,
        0,
        "known partitions cost nothing"
    );

    // A second writer (fresh memory) registers everything: Glue answers AlreadyExists for the
    // first 50, which counts as success.
    let other = self::catalog(&database).await?;
    let mut with_duplicates = all.clone();
    with_duplicates.push(all[0].clone());
    assert_eq!(
        other
            .add_partitions("call_events", &with_duplicates)
            .await?,
        all.len() - 50
    );

    let listed = catalog.partitions("call_events").await?;
    let mut expected = all.clone();
    expected.sort();
    assert_eq!(listed, expected);

    let glue = etl_testbed::moto().await?.clients().await?.glue();
    let table = glue
        .get_table()
        .database_name(&database)
        .name("call_events")
        .send()
        .await?
        .table
        .context("table")?;
    let table_sd = table.storage_descriptor().context("table SD")?;
    let got = glue
        .get_partition()
        .database_name(&database)
        .table_name("call_events")
        .partition_values("2024-03-07")
        .partition_values("23")
        .send()
        .await
        .context("GetPartition")?
        .partition
        .context("partition")?;
    let sd = got.storage_descriptor().context("partition SD")?;
    assert_eq!(
        sd.location(),
        Some("s3://lake-bucket/prefix/call_events/dt=2024-03-07/hour=23/")
    );
    assert_eq!(sd.input_format(), table_sd.input_format());
    assert_eq!(sd.output_format(), table_sd.output_format());
    assert_eq!(sd.serde_info(), table_sd.serde_info());
    assert_eq!(sd.columns(), table_sd.columns());
    assert!(!sd.columns().is_empty());

    match catalog.add_partitions("no_such_table", &all[..1]).await {
        Err(CatalogError::UnknownTable(t)) => assert_eq!(t, "no_such_table"),
        other => return Err(Failure(format!("expected UnknownTable, got {other:?}"))),
    }
    Ok(())
}

fn optional_string(name: &str) -> Field {
    Field {
        name: name.into(),
        ty: FieldType::String,
        required: false,
        max_length: None,
        doc: format!("{name} (added in v2)"),
    }
}

async fn stored_columns(
    database: &str,
    table: &str,
) -> Result<(Vec<(String, String)>, HashMap<String, String>), Failure> {
    let glue = etl_testbed::moto().await?.clients().await?.glue();
    let t = glue
        .get_table()
        .database_name(database)
        .name(table)
        .send()
        .await
        .context("GetTable")?
        .table
        .context("table")?;
    let sd = t.storage_descriptor().context("SD")?;
    let cols = sd
        .columns()
        .iter()
        .map(|c| (c.name().to_string(), c.r#type().unwrap_or("").to_string()))
        .collect();
    Ok((cols, t.parameters().cloned().unwrap_or_default()))
}

#[tokio::test]
async fn added_field_becomes_a_column_and_breaking_changes_are_refused() -> TestResult {
    let database = unique_ident("lake");
    let catalog = catalog(&database).await?;
    let v1 = schema("app_events")?;
    catalog.sync_table(&v1).await?;
    let (v1_columns, _) = stored_columns(&database, "app_events").await?;

    let mut v2 = v1.clone();
    v2.version = v1.version + 1;
    v2.fields.push(optional_string("campaign"));
    assert_eq!(
        catalog.sync_table(&v2).await?,
        TableChange::Extended(vec!["campaign".into()])
    );
    let (v2_columns, params) = stored_columns(&database, "app_events").await?;
    let expected: Vec<(String, String)> = v2
        .lake_columns()
        .into_iter()
        .map(|c| (c.name, c.hive_type.to_string()))
        .collect();
    assert_eq!(v2_columns, expected);
    assert_eq!(v2_columns.len(), v1_columns.len() + 1);
    assert!(v2_columns.contains(&("campaign".into(), "string".into())));
    assert_eq!(
        params.get("etl.schema_version").map(String::as_str),
        Some(v2.version.to_string().as_str())
    );
    assert_eq!(catalog.sync_table(&v2).await?, TableChange::Unchanged);

    // Type change of the new column.
    let mut retyped = v2.clone();
    retyped.version = v2.version + 1;
    if let Some(f) = retyped.fields.last_mut() {
        f.ty = FieldType::Int64;
    }
    let err = catalog
        .sync_table(&retyped)
        .await
        .err()
        .context("a type change must be refused")?;
    assert!(matches!(err, CatalogError::Breaking { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("campaign") && text.contains("type"), "{text}");

    // Removal of a column.
    let mut removed = v2.clone();
    removed.version = v2.version + 1;
    let gone = removed.fields.remove(3).name;
    let err = catalog
        .sync_table(&removed)
        .await
        .err()
        .context("a removal must be refused")?;
    let text = err.to_string();
    assert!(
        text.contains(&format!("`{gone}`")) && text.contains("removed"),
        "{text}"
    );

    // Nothing changed in Glue.
    let (after, params) = stored_columns(&database, "app_events").await?;
    assert_eq!(after, v2_columns);
    assert_eq!(
        params.get("etl.schema_version").map(String::as_str),
        Some(v2.version.to_string().as_str())
    );
    Ok(())
}

#[tokio::test]
async fn projection_parameters_are_written_when_asked() -> TestResult {
    let database = unique_ident("lake");
    let catalog = catalog(&database).await?.with_projection(Projection {
        dt_start: "2024-01-01".into(),
    });
    catalog.sync_table(&schema("call_events")?).await?;
    let (_, params) = stored_columns(&database, "call_events").await?;
    let get = |k: &str| params.get(k).map(String::as_str);
    assert_eq!(get("projection.enabled"), Some("true"));
    assert_eq!(get("projection.dt.type"), Some("date"));
    assert_eq!(get("projection.dt.format"), Some("yyyy-MM-dd"));
    assert_eq!(get("projection.dt.range"), Some("2024-01-01,NOW"));
    assert_eq!(get("projection.hour.type"), Some("integer"));
    assert_eq!(get("projection.hour.range"), Some("0,23"));
    assert_eq!(get("projection.hour.digits"), Some("2"));
    assert_eq!(
        get("storage.location.template"),
        Some("s3://lake-bucket/prefix/call_events/dt=${dt}/hour=${hour}/")
    );
    assert_eq!(get("classification"), Some("parquet"));
    Ok(())
}
