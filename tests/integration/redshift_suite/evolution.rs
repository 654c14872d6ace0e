//! Schema evolution on the warehouse side (issue 17): after `app_events` gains an optional
//! field, batches written before the change (without the column) and after it (with it) load
//! into the same table exactly once. COPY maps Parquet columns by position, so each batch is
//! loaded with its own files' columns (read from the Parquet footer), old and new batches never
//! share a transaction, and the new version's loader adds the column to the table before it
//! loads (no separate migrate needed); a loader of the old version waits on a new batch instead
//! of failing it.

use std::sync::Arc;

use etl_redshift::{Loader, RedshiftDataWarehouse};
use etl_schema::StreamSchema;
use etl_testbed::StandIn;

use crate::redshift_suite::data_api::settings;
use crate::redshift_suite::loader_e2e::{quick, warehouse_ids, world, World};
use crate::{Context, Failure, TestResult};

/// `app_events` version 4: the current version 3 with the optional field `campaign` (before
/// `extras`).
fn schemas_v3() -> Result<Vec<StreamSchema>, Failure> {
    let v2 = include_str!("../../../schemas/app_events.toml");
    let v3 = format!(
        "{}\n[[fields]]\nname = \"campaign\"\ntype = \"string\"\nmax_length = 64\n\
         doc = \"Marketing campaign that brought the user.\"\n",
        v2.replacen("version = 3", "version = 4", 1)
    );
    let app = StreamSchema::from_toml_str(&v3, "app_events v3").context("v3 schema")?;
    let mut schemas = etl_schema::embedded().context("schemas")?;
    schemas.retain(|s| s.stream != "app_events");
    schemas.push(app);
    Ok(schemas)
}

/// A pipeline writing `app_events` version 3 (schema and transform) into `world`'s lake.
fn pipeline_v3(world: &World) -> Result<etl_pipeline::Pipeline, Failure> {
    let schemas = schemas_v3()?;
    let mut sqls = etl_transform::embedded_sql();
    for sql in sqls.iter_mut().filter(|s| s.stream == "app_events") {
        sql.sql = sql
            .sql
            .replacen("    extras,\n", "    campaign,\n    extras,\n", 1);
    }
    let key = etl_transform::MaskKey::new(b"integration-test-key-0123456789").map_err(Failure)?;
    let transformer =
        etl_transform::Transformer::new(&schemas, sqls, key).context("v3 transformer")?;
    let options = etl_pipeline::PipelineOptions {
        batch_max_records: 100,
        ..etl_pipeline::PipelineOptions::default()
    };
    let catalog = Arc::new(etl_lake::catalog::FileCatalog::new(world.lake.clone()));
    etl_pipeline::Pipeline::new(options, schemas, transformer, world.lake.clone(), catalog)
        .context("v3 pipeline")
}

fn events(prefix: &str, n: usize) -> Vec<u8> {
    (0..n)
        .map(|i| {
            format!(
                "{{\"event_id\":\"{prefix}-{i:04}\",\"event_type\":\"signup\",\
                 \"occurred_at\":\"2026-11-02T10:00:01.250Z\",\"user_id\":\"u-{i}\",\
                 \"account_id\":\"acc-1\",\"platform\":\"web\",\"properties\":{{}},\
                 \"campaign\":\"autumn\"}}\n"
            )
        })
        .collect::<String>()
        .into_bytes()
}

/// A warehouse (a loader's view of it) knowing `schemas`, through the world's stand-in.
async fn warehouse(
    world: &World,
    schemas: &[StreamSchema],
) -> Result<RedshiftDataWarehouse, Failure> {
    let api = etl_testbed::aws_clients_for(
        StandIn::RedshiftData,
        &format!("http://127.0.0.1:{}", world.standin_port()?),
    )
    .await?
    .redshift_data();
    Ok(RedshiftDataWarehouse::with_clients(
        settings(
            &world.db,
            "analytics",
            &format!("s3://{}/manifests", world.bucket),
        ),
        api,
        world.s3.clone(),
        schemas,
    )?)
}

#[tokio::test]
async fn batches_of_the_old_and_the_new_schema_load_after_a_field_is_added() -> TestResult {
    let pg = etl_testbed::postgres().await?;
    // Migrated with version 2; the first batches are written by version 2 (the key
    // `campaign` is unknown to it and kept in `extras`).
    let world = world("rsevolve", pg, 100).await?;
    world
        .ingest("app_events", "a-old", events("old", 150))
        .await?;
    let v3 = pipeline_v3(&world)?;
    let source = etl_pipeline::source::LineSource::from_reader(
        Box::new(std::io::Cursor::new(events("new", 150))),
        "b-new",
        "b-new",
        0,
    );
    let summary = v3
        .ingest("app_events", Box::new(source), None)
        .await
        .context("v3 ingest")?;
    assert_eq!(summary.written, 150, "{summary:?}");

    // A loader still on version 2 loads the old batches and waits on the new ones.
    let app = vec!["app_events".to_string()];
    let old = Arc::new(warehouse(&world, &etl_schema::embedded()?).await?);
    let mut old_loader = Loader::new(
        old,
        world.lake.clone(),
        &world.lake_url,
        app.clone(),
        quick(),
    )?;
    let err = old_loader
        .load_pending()
        .await
        .expect_err("a v2 loader cannot load v3 batches");
    assert!(
        err.to_string().contains("written by a newer version"),
        "{err}"
    );
    let loaded = warehouse_ids(&world.db.client, "app_events").await?;
    assert_eq!(loaded.len(), 150, "the old batches loaded");
    assert!(loaded.iter().all(|id| id.starts_with("old-")));

    // The version 3 loader adds the column (no migrate) and loads the new batches.
    let new = Arc::new(warehouse(&world, &schemas_v3()?).await?);
    // It knows the current version, so it reads the footers of the older batches only.
    let mut new_loader = Loader::new(new, world.lake.clone(), &world.lake_url, app, quick())?
        .with_schema_versions([("app_events".to_string(), 4)]);
    let summary = new_loader.load_pending().await?;
    assert_eq!((summary.loaded, summary.stopped), (2, 0), "{summary:?}");
    let lake: Vec<String> = world.lake_ids("app_events").await?.into_iter().collect();
    assert_eq!(warehouse_ids(&world.db.client, "app_events").await?, lake);
    let rows = world
        .db
        .client
        .query(
            "SELECT left(event_id, 3), count(*), count(campaign), count(extras) \
             FROM analytics.app_events GROUP BY 1 ORDER BY 1",
            &[],
        )
        .await
        .context("counts")?;
    let got: Vec<(String, i64, i64, i64)> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect();
    assert_eq!(
        got,
        vec![
            ("new".to_string(), 150, 150, 0),
            ("old".to_string(), 150, 0, 150)
        ],
        "new rows carry campaign; old rows have NULL there (their extras keep the key)"
    );
    let campaign: String = world
        .db
        .client
        .query_one("SELECT max(campaign) FROM analytics.app_events", &[])
        .await
        .context("campaign")?
        .get(0);
    assert_eq!(campaign, "autumn");
    Ok(())
}
