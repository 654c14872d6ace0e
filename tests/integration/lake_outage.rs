//! An S3 and Glue outage while the consumer commits: every connection to the lake and to the
//! Glue catalog is dropped for 25 s (longer than the S3 client's own retries) and for 3 minutes,
//! through a loopback fault proxy in front of moto (which serves both).
//! The consumer does not stop: its commits wait with backoff, recover the shard's log (a
//! failed attempt may have created the record) and go on; afterwards every event is in the lake
//! exactly once, and Glue has every partition the lake has.

use crate::lake_delivery::{
    assert_exactly_once, consume_with, lines, new_bucket_lake, put, s3_lake,
};
use crate::{Context, Failure, TestResult};
use etl_testbed::{create_stream, unique_name, FaultPlan, FaultProxy};
use std::time::{Duration, Instant};

const EVENTS: u64 = 30_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_25_s_s3_outage_is_ridden_out_and_every_event_lands_once() -> TestResult {
    s3_outage(Duration::from_secs(25)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_3_minute_s3_outage_is_ridden_out_and_every_event_lands_once() -> TestResult {
    s3_outage(Duration::from_secs(180)).await
}

async fn s3_outage(outage: Duration) -> TestResult {
    let kinesalite = etl_testbed::kinesis().await?;
    let moto = etl_testbed::moto().await?;
    let client = kinesalite.client().await?;
    let stream = unique_name("lake-outage");
    create_stream(&client, &stream, 2).await?;
    let produced = lines(4242, EVENTS)?;
    put(&client, &stream, &produced).await?;

    let (location, direct) = new_bucket_lake(moto).await?;
    let proxy = FaultProxy::start(moto.port(), FaultPlan::default()).await?;
    let through_proxy = s3_lake(proxy.endpoint(), &location)?;
    let database = etl_testbed::unique_ident("outage");
    let glue = etl_testbed::aws_clients_for(etl_testbed::StandIn::Moto, proxy.endpoint())
        .await?
        .glue();
    let catalog = std::sync::Arc::new(etl_glue::GlueCatalog::new(glue, &database, &location));
    let pipeline = crate::pipeline_with_catalog(&through_proxy, 500, catalog)?;

    let consumer = {
        let (client, stream) = (client.clone(), stream.clone());
        tokio::spawn(async move {
            consume_with(
                &client,
                &stream,
                &through_proxy,
                &pipeline,
                "app_events",
                "outage",
                None,
            )
            .await
        })
    };
    // Once the first batch is committed, cut the lake off.
    let deadline = Instant::now() + Duration::from_secs(120);
    while direct.list("_delivery").await.context("list")?.is_empty() {
        if Instant::now() > deadline || consumer.is_finished() {
            return Err(Failure("no batch was committed before the outage".into()));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    proxy.set_plan(FaultPlan {
        drop_fraction: 1.0,
        ..FaultPlan::default()
    });
    tokio::time::sleep(outage).await;
    let during = proxy.stats();
    proxy.set_plan(FaultPlan::default());
    assert!(
        !consumer.is_finished(),
        "the consumer stopped during the outage: {:?}",
        consumer.await
    );
    assert!(
        during.dropped > 0,
        "the outage dropped requests: {during:?}"
    );

    let summary = consumer
        .await
        .context("consumer task")??
        .map_err(|e| Failure(format!("the consumer stopped: {e}")))?;
    assert_eq!(summary.read, produced.len() as u64, "{summary:?}");
    assert!(summary.reconciles(), "{summary:?}");
    assert_exactly_once(&direct, &produced).await?;
    // Every partition of the lake is in Glue (registrations failed in the outage were retried).
    let mut in_lake = std::collections::BTreeSet::new();
    for path in direct.list("app_events").await.context("list")? {
        let parts: Vec<&str> = path.split('/').collect();
        if let [_, dt, hour, _] = parts.as_slice() {
            in_lake.insert(vec![
                dt.trim_start_matches("dt=").to_string(),
                hour.trim_start_matches("hour=").to_string(),
            ]);
        }
    }
    let glue = moto.clients().await?.glue();
    let mut in_glue = std::collections::BTreeSet::new();
    let mut pages = glue
        .get_partitions()
        .database_name(&database)
        .table_name("app_events")
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        for p in page.context("GetPartitions")?.partitions() {
            in_glue.insert(p.values().to_vec());
        }
    }
    assert!(!in_lake.is_empty());
    assert_eq!(in_glue, in_lake, "Glue's partitions are the lake's");
    Ok(())
}
