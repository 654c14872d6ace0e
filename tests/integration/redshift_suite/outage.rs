//! Issue 12, item 4, the loader's side: `etl warehouse load --follow` (the [`Loader::follow`] it
//! runs) reaches the lake (S3) and the Data API through loopback fault proxies that drop every
//! connection for 20 s and for 3 minutes while new batches are committed. The loader stays up,
//! retries the same batches with backoff, catches up afterwards, and the warehouse holds every
//! lake event exactly once.

use std::sync::Arc;
use std::time::{Duration, Instant};

use etl_redshift::{Loader, LoaderSettings, RedshiftDataWarehouse};
use etl_testbed::{FaultPlan, FaultProxy, StandIn};

use crate::lake_delivery::s3_lake;
use crate::redshift_suite::data_api::settings;
use crate::redshift_suite::loader_e2e::{
    follow_in_background, generated, quick, warehouse_ids, world, World,
};
use crate::{Context, Failure, TestResult};

const TABLES: [&str; 2] = ["app_events", "call_events"];

/// Committed batches with data files, over both tables.
async fn committed(world: &World) -> Result<i64, Failure> {
    let mut n = 0;
    for table in TABLES {
        n += world
            .lake
            .commits(table)
            .await?
            .iter()
            .filter(|c| !c.files.is_empty())
            .count() as i64;
    }
    Ok(n)
}

/// Polls the ledger until it has every committed batch (at most `secs` seconds).
async fn wait_loaded(world: &World, secs: u64) -> Result<i64, Failure> {
    let want = committed(world).await?;
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let have: i64 = world
            .db
            .client
            .query_one("SELECT count(*) FROM analytics.etl_load_ledger", &[])
            .await
            .context("ledger")?
            .get(0);
        if have == want {
            return Ok(have);
        }
        if Instant::now() > deadline {
            return Err(Failure(format!(
                "{have} of {want} batches loaded after {secs} s"
            )));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn the_loader_rides_out(prefix: &str, outage: Duration) -> TestResult {
    let pg = etl_testbed::postgres().await?;
    let world = world(prefix, pg, 300).await?;
    let moto = etl_testbed::moto().await?;
    let s3_proxy = FaultProxy::start(moto.port(), FaultPlan::default()).await?;
    let api_proxy = FaultProxy::start(world.standin_port()?, FaultPlan::default()).await?;
    let s3 = etl_testbed::aws_clients_for(StandIn::Moto, s3_proxy.endpoint())
        .await?
        .s3();
    let api = etl_testbed::aws_clients_for(StandIn::RedshiftData, api_proxy.endpoint())
        .await?
        .redshift_data();
    let warehouse = RedshiftDataWarehouse::with_clients(
        settings(
            &world.db,
            "analytics",
            &format!("s3://{}/manifests", world.bucket),
        ),
        api,
        s3,
        &etl_schema::embedded()?,
    )?;
    let loader = Loader::new(
        Arc::new(warehouse),
        s3_lake(s3_proxy.endpoint(), &world.lake_url)?,
        &world.lake_url,
        TABLES.iter().map(|t| t.to_string()).collect(),
        LoaderSettings {
            interval: Duration::from_millis(500),
            retry_max: Duration::from_secs(10),
            max_attempts: None, // what --follow does
            ..quick()
        },
    )?;
    let (stop, task) = follow_in_background(loader);

    let (app, call) = generated(51, 2000)?;
    world.ingest("app_events", "before-app", app).await?;
    world.ingest("call_events", "before-call", call).await?;
    let before = wait_loaded(&world, 60).await?;

    let cut = FaultPlan {
        drop_fraction: 1.0,
        ..FaultPlan::default()
    };
    s3_proxy.set_plan(cut.clone());
    api_proxy.set_plan(cut);
    // Batches committed during the outage (the lake itself is reachable for the writer).
    let (app, call) = generated(52, 2000)?;
    world.ingest("app_events", "during-app", app).await?;
    world.ingest("call_events", "during-call", call).await?;
    tokio::time::sleep(outage).await;
    assert!(!task.is_finished(), "the loader stopped during the outage");
    let (s3_stats, api_stats) = (s3_proxy.stats(), api_proxy.stats());
    assert!(
        s3_stats.dropped + api_stats.dropped > 0,
        "the outage dropped requests: {s3_stats:?} {api_stats:?}"
    );
    s3_proxy.set_plan(FaultPlan::default());
    api_proxy.set_plan(FaultPlan::default());

    let after = wait_loaded(&world, 120).await?;
    assert!(after > before, "{after} > {before}");
    let _ = stop.send(());
    let summary = task.await.context("loader task")??;
    assert!(summary.retries > 0, "{summary:?}");
    assert_eq!(summary.stopped, 0, "{summary:?}");
    for table in TABLES {
        let lake: Vec<String> = world.lake_ids(table).await?.into_iter().collect();
        assert_eq!(
            warehouse_ids(&world.db.client, table).await?,
            lake,
            "{table}: every lake event once"
        );
    }
    let (rows, distinct): (i64, i64) = {
        let row = world
            .db
            .client
            .query_one(
                "SELECT count(*), count(DISTINCT table_name || '/' || batch_id) FROM analytics.etl_load_ledger",
                &[],
            )
            .await
            .context("ledger")?;
        (row.get(0), row.get(1))
    };
    assert_eq!(rows, distinct, "no batch in the ledger twice");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_loader_rides_out_a_20_s_outage_of_s3_and_the_data_api() -> TestResult {
    the_loader_rides_out("rsout20", Duration::from_secs(20)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_loader_rides_out_a_3_minute_outage_of_s3_and_the_data_api() -> TestResult {
    the_loader_rides_out("rsout180", Duration::from_secs(180)).await
}
