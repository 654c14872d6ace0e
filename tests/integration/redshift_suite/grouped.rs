//! Grouped loads (issue 12, item 5): pending batches of a table load several per transaction
//! (one manifest, one COPY, one MERGE, a ledger row per batch), exactly once; a batch whose data
//! cannot load inside a group still stops its table exactly at that batch; and (ignored) the
//! loader's throughput at 1, 10 and 50 batches per transaction.

use std::time::Instant;

use etl_redshift::loader::GroupLimits;
use etl_redshift::LoaderSettings;

use crate::redshift_suite::loader_e2e::{generated, quick, warehouse_ids, world, World};
use crate::{Context, Failure, TestResult};

const TABLES: [&str; 2] = ["app_events", "call_events"];

fn grouped(max_batches: usize) -> LoaderSettings {
    LoaderSettings {
        group: GroupLimits {
            max_batches,
            ..GroupLimits::default()
        },
        ..quick()
    }
}

/// Load manifests written for `table`: one per load transaction.
async fn manifests(world: &World, table: &str) -> Result<usize, Failure> {
    let listed = world
        .s3
        .list_objects_v2()
        .bucket(&world.bucket)
        .prefix(format!("manifests/{table}/"))
        .send()
        .await
        .context("ListObjectsV2")?;
    Ok(listed.contents().len())
}

/// (ledger rows, their summed `rows_loaded`) of `table`.
async fn ledger(world: &World, table: &str) -> Result<(i64, i64), Failure> {
    let row = world
        .db
        .client
        .query_one(
            "SELECT count(*), CAST(COALESCE(SUM(rows_loaded), 0) AS BIGINT) \
             FROM analytics.etl_load_ledger WHERE table_name = $1",
            &[&table],
        )
        .await
        .context("ledger")?;
    Ok((row.get(0), row.get(1)))
}

/// (batch ids, rows) of `table`'s committed batches that have data files.
async fn batches(world: &World, table: &str) -> Result<(Vec<String>, u64), Failure> {
    let commits = world.lake.commits(table).await?;
    let with_files: Vec<_> = commits.iter().filter(|c| !c.files.is_empty()).collect();
    Ok((
        with_files.iter().map(|c| c.batch_id.to_string()).collect(),
        with_files.iter().map(|c| c.rows()).sum(),
    ))
}

#[tokio::test]
async fn pending_batches_load_in_groups_with_a_ledger_row_each() -> TestResult {
    let pg = etl_testbed::postgres().await?;
    let world = world("rsgroup", pg, 150).await?;
    let (app, call) = generated(31, 4000)?;
    world.ingest("app_events", "gen31app", app).await?;
    world.ingest("call_events", "gen31call", call).await?;

    let summary = world.loader(grouped(4))?.load_pending().await?;
    let mut total = 0;
    for table in TABLES {
        let (ids, rows) = batches(&world, table).await?;
        let n = ids.len();
        assert!(n >= 8, "{table}: several groups' worth of batches: {n}");
        assert_eq!(
            manifests(&world, table).await?,
            n.div_ceil(4),
            "{table}: one transaction (manifest) per group of at most 4 batches"
        );
        assert_eq!(
            ledger(&world, table).await?,
            (n as i64, rows as i64),
            "{table}: a ledger row per batch with its rows"
        );
        let lake: Vec<String> = world.lake_ids(table).await?.into_iter().collect();
        assert_eq!(warehouse_ids(&world.db.client, table).await?, lake);
        total += n as u64;
    }
    assert_eq!((summary.loaded, summary.stopped), (total, 0), "{summary:?}");

    let again = world.loader(grouped(4))?.load_pending().await?;
    assert_eq!(
        (again.loaded, again.already_loaded),
        (0, total),
        "{again:?}"
    );
    Ok(())
}

/// App events with an `extras` value (the unknown key `campaign`), ids `<prefix>-<i>`.
fn app_events_with_extras(prefix: &str, n: usize) -> Vec<u8> {
    (0..n)
        .map(|i| {
            format!(
                "{{\"event_id\":\"{prefix}-{i:04}\",\"event_type\":\"message_sent\",\
                 \"occurred_at\":\"2026-11-01T00:00:01.250Z\",\"user_id\":\"u-{i}\",\
                 \"account_id\":\"acc-1\",\"platform\":\"ios\",\"properties\":{{}},\
                 \"campaign\":\"autumn\"}}\n"
            )
        })
        .collect::<String>()
        .into_bytes()
}

#[tokio::test]
async fn a_faulty_batch_in_a_group_loads_the_batches_before_it_and_stops_there() -> TestResult {
    let pg = etl_testbed::postgres().await?;
    let world = world("rsgroupfault", pg, 50).await?;
    // The table drifted: `extras` became NOT NULL. Events with an unknown key have extras and
    // load; generated events mostly have none, so their batches cannot load.
    let client = &world.db.client;
    client
        .batch_execute("ALTER TABLE analytics.app_events ALTER COLUMN extras SET NOT NULL")
        .await
        .context("poisoning app_events")?;
    // Batch ids sort by source tag: a… (loadable), b… (faulty), c… (loadable, after the fault).
    world
        .ingest("app_events", "a1", app_events_with_extras("a", 120))
        .await?;
    let (app, _) = generated(33, 600)?;
    world.ingest("app_events", "b1", app).await?;
    world
        .ingest("app_events", "c1", app_events_with_extras("c", 60))
        .await?;
    let (ids, _) = batches(&world, "app_events").await?;
    let before = ids.iter().filter(|id| id.starts_with("a1-")).count() as u64;
    assert_eq!(before, 3, "{ids:?}");

    let mut loader = world.loader(grouped(50))?;
    let first = loader.load_pending().await?;
    assert_eq!((first.loaded, first.stopped), (before, 1), "{first:?}");
    let stopped = loader.stopped_tables();
    assert_eq!(stopped.len(), 1, "{stopped:?}");
    assert!(stopped[0].batch_id.starts_with("b1-"), "{stopped:?}");
    let expected: Vec<String> = (0..120).map(|i| format!("a-{i:04}")).collect();
    assert_eq!(warehouse_ids(client, "app_events").await?, expected);
    assert_eq!(ledger(&world, "app_events").await?.0, before as i64);

    client
        .batch_execute("ALTER TABLE analytics.app_events ALTER COLUMN extras DROP NOT NULL")
        .await
        .context("fixing app_events")?;
    let fixed = world.loader(grouped(50))?.load_pending().await?;
    assert_eq!(
        (fixed.loaded, fixed.stopped),
        (ids.len() as u64 - before, 0),
        "{fixed:?}"
    );
    let lake: Vec<String> = world.lake_ids("app_events").await?.into_iter().collect();
    assert_eq!(warehouse_ids(client, "app_events").await?, lake);
    assert_eq!(ledger(&world, "app_events").await?.0, ids.len() as i64);
    Ok(())
}

/// Run: `cargo test --workspace --test integration -- --ignored --nocapture bench_grouped_loads`
#[tokio::test]
#[ignore = "a measurement (~2 minutes), run by hand"]
async fn bench_grouped_loads() -> TestResult {
    let pg = etl_testbed::postgres().await?;
    let (app, call) = generated(41, 12_000)?;
    // Interleaved rounds: 1, 10, 50, 1, 10, 50 batches per transaction.
    for (round, group) in [1, 10, 50, 1, 10, 50].into_iter().enumerate() {
        let world = world(&format!("rsbench{round}"), pg, 50).await?;
        world.ingest("app_events", "bapp", app.clone()).await?;
        world.ingest("call_events", "bcall", call.clone()).await?;
        // Like the binary: batches of the current schema version are loaded without reading
        // their Parquet footers.
        let versions = etl_schema::embedded()?
            .into_iter()
            .map(|s| (s.stream, s.version));
        let mut loader = world.loader(grouped(group))?.with_schema_versions(versions);
        let started = Instant::now();
        let summary = loader.load_pending().await?;
        let secs = started.elapsed().as_secs_f64();
        assert_eq!(summary.stopped, 0, "{summary:?}");
        for table in TABLES {
            let lake: Vec<String> = world.lake_ids(table).await?.into_iter().collect();
            assert_eq!(warehouse_ids(&world.db.client, table).await?, lake);
        }
        eprintln!(
            "{group:>2} batches/transaction: {} batches, {} rows in {secs:.2} s = {:.1} batches/s, {:.0} rows/s",
            summary.loaded,
            summary.rows,
            summary.loaded as f64 / secs,
            summary.rows as f64 / secs
        );
    }
    Ok(())
}
