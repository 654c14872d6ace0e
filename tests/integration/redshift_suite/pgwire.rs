//! `PgWireWarehouse` against the test bed's PostgreSQL: migrate (tables, ledger, views), the
//! lake's committed batches loaded over the wire protocol (one transaction each, COPY FROM
//! STDIN), a second load changing nothing, and a curated view queried through the seam.

use arrow::array::{Array, AsArray};
use etl_redshift::{LoadOutcome, PgWireWarehouse};
use etl_warehouse::Warehouse;

use crate::redshift_suite::loader_e2e::{generated, ledger_rows, quick, warehouse_ids, world};
use crate::{Context, TestResult};

#[tokio::test]
async fn pgwire_migrates_loads_once_and_serves_views() -> TestResult {
    let pg = etl_testbed::postgres().await?;
    let world = world("rspgwire", pg, 600).await?;
    let (app, call) = generated(21, 2500)?;
    world.ingest("app_events", "gen21app", app).await?;
    world.ingest("call_events", "gen21call", call).await?;

    let db = pg.fresh_database("rspgwire_target").await?;
    let schemas = etl_schema::embedded()?;
    let warehouse = PgWireWarehouse::connect(
        &db.connection_string,
        "analytics",
        &schemas,
        world.lake.clone(),
        &world.lake_url,
    )
    .await?;
    let views = etl_warehouse::embedded_views()?;
    warehouse
        .migrate(&schemas, &views)
        .await
        .context("migrate")?;
    // Migrate is idempotent.
    warehouse
        .migrate(&schemas, &views)
        .await
        .context("migrate again")?;

    let loader = world.loader(quick())?;
    let mut requests = Vec::new();
    for table in ["app_events", "call_events"] {
        for commit in world.lake.commits(table).await? {
            if !commit.files.is_empty() {
                requests.push(loader.request(&commit));
            }
        }
    }
    assert!(requests.len() >= 4, "several batches: {}", requests.len());
    for request in &requests {
        assert_eq!(warehouse.load_batch(request).await?, LoadOutcome::Loaded);
    }
    for table in ["app_events", "call_events"] {
        let lake: Vec<String> = world.lake_ids(table).await?.into_iter().collect();
        assert!(!lake.is_empty(), "{table}: the lake has rows");
        assert_eq!(
            warehouse_ids(&db.client, table).await?,
            lake,
            "{table}: exactly the lake's event ids"
        );
    }
    assert_eq!(ledger_rows(&db.client).await?, requests.len() as i64);

    // Every value equals what the Data API path (S3 COPY in the stand-in) loads.
    world.loader(quick())?.load_pending().await?; // a second loader: its own memory
    for table in ["app_events", "call_events"] {
        let sql = format!(
            "SELECT md5(string_agg(t::text, '|' ORDER BY event_id)) FROM analytics.{table} t"
        );
        let over_wire: String = db.client.query_one(&sql, &[]).await.context(&sql)?.get(0);
        let over_api: String = world
            .db
            .client
            .query_one(&sql, &[])
            .await
            .context(&sql)?
            .get(0);
        assert_eq!(over_wire, over_api, "{table}: same rows, same values");
    }

    // Loading again changes nothing.
    for request in &requests {
        assert_eq!(
            warehouse.load_batch(request).await?,
            LoadOutcome::AlreadyLoaded
        );
    }
    assert_eq!(ledger_rows(&db.client).await?, requests.len() as i64);
    let app_lake = world.lake_ids("app_events").await?.len();
    assert_eq!(
        warehouse_ids(&db.client, "app_events").await?.len(),
        app_lake
    );

    // A curated view through the seam (text columns).
    let batches = warehouse
        .query("SELECT CAST(SUM(messages_sent) AS BIGINT) AS sent FROM messages_per_hour")
        .await
        .context("query")?;
    let column = batches
        .first()
        .and_then(|b| b.column_by_name("sent"))
        .context("sent column")?;
    let sent = column.as_string::<i32>();
    assert_eq!(sent.len(), 1);
    let total: i64 = sent
        .value(0)
        .parse()
        .map_err(|e| crate::Failure(format!("{e}")))?;
    let direct: i64 = db
        .client
        .query_one(
            "SELECT COUNT(*) FROM analytics.app_events WHERE event_type = 'message_sent'",
            &[],
        )
        .await
        .context("direct count")?
        .get(0);
    assert!(total > 0, "messages_per_hour has messages");
    assert_eq!(total, direct, "the view counts the loaded rows");
    Ok(())
}
