//! Issue 12, defects 2 and 3: a batch that cannot load stops only its table, is visible in
//! `warehouse_status` and resumes after the documented fix, exactly once; and values at and
//! just over the warehouse's text limit go through ingest, lake and load (at) or to the dead
//! letters as `too_long` (over), so no batch in the lake can fail its COPY for length.

use std::io::Cursor;

use etl_pipeline::source::LineSource;
use etl_redshift::{warehouse_status, LoadSummary};

use crate::redshift_suite::loader_e2e::{generated, quick, warehouse_ids, world, World};
use crate::{Context, TestResult};

const TABLES: [&str; 2] = ["app_events", "call_events"];

fn tables() -> Vec<String> {
    TABLES.iter().map(|t| t.to_string()).collect()
}

async fn assert_table_is_the_lake(world: &World, table: &str) -> TestResult {
    let lake: Vec<String> = world.lake_ids(table).await?.into_iter().collect();
    let warehouse = warehouse_ids(&world.db.client, table).await?;
    assert!(!lake.is_empty(), "{table}: the lake has rows");
    assert_eq!(warehouse, lake, "{table}: each lake event id once");
    Ok(())
}

#[tokio::test]
async fn a_poisoned_batch_stops_only_its_table_and_loads_once_after_the_fix() -> TestResult {
    let pg = etl_testbed::postgres().await?;
    let world = world("rspoison", pg, 600).await?;
    // The table drifted from the schema: `extras` (nullable in the schema, NULL in most
    // generated events) became NOT NULL, so every app_events batch violates the table.
    let client = &world.db.client;
    client
        .batch_execute("ALTER TABLE analytics.app_events ALTER COLUMN extras SET NOT NULL")
        .await
        .context("poisoning app_events")?;
    let (app, call) = generated(21, 3000)?;
    world.ingest("app_events", "gen21app", app).await?;
    world.ingest("call_events", "gen21call", call).await?;

    let mut loader = world.loader(quick())?;
    let first: LoadSummary = loader.load_pending().await?;
    assert_eq!(first.stopped, 1, "one table stopped, once: {first:?}");
    assert_eq!(first.retries, 0, "a data failure is not retried: {first:?}");
    let stopped = loader.stopped_tables();
    assert_eq!(stopped.len(), 1, "{stopped:?}");
    assert_eq!(stopped[0].table, "app_events");
    assert!(
        stopped[0].message.contains("not-null") || stopped[0].message.contains("null value"),
        "{stopped:?}"
    );
    // call_events loaded completely, app_events not at all.
    assert_table_is_the_lake(&world, "call_events").await?;
    assert!(warehouse_ids(client, "app_events").await?.is_empty());

    // `status` (from the lake and the warehouse, not the loader's memory) shows both.
    let status = warehouse_status(world.warehouse.as_ref(), &world.lake, &tables()).await?;
    let app_status = status
        .iter()
        .find(|s| s.table == "app_events")
        .context("app_events status")?;
    let call_status = status
        .iter()
        .find(|s| s.table == "call_events")
        .context("call_events status")?;
    let failure = app_status.failure.as_ref().context("recorded failure")?;
    assert_eq!(Some(&failure.batch_id), app_status.next_batch.as_ref());
    assert_eq!(failure.batch_id, stopped[0].batch_id);
    assert!(app_status.pending_batches >= 2, "{app_status:?}");
    assert_eq!(app_status.loaded_batches, 0);
    assert_eq!(
        (call_status.pending_batches, call_status.failure.as_ref()),
        (0, None),
        "{call_status:?}"
    );
    assert!(call_status.loaded_batches >= 2 && call_status.loaded_up_to.is_some());

    // A second run fails the same way (never skips the batch, never loads past it).
    let again = world.loader(quick())?.load_pending().await?;
    assert_eq!((again.stopped, again.loaded), (1, 0), "{again:?}");

    // The documented way out: fix the table, load again. Exactly once, record cleared.
    client
        .batch_execute("ALTER TABLE analytics.app_events ALTER COLUMN extras DROP NOT NULL")
        .await
        .context("fixing app_events")?;
    let fixed = world.loader(quick())?.load_pending().await?;
    assert_eq!(fixed.stopped, 0, "{fixed:?}");
    assert_eq!(fixed.loaded, app_status.pending_batches, "{fixed:?}");
    assert_table_is_the_lake(&world, "app_events").await?;
    assert_table_is_the_lake(&world, "call_events").await?;
    let status = warehouse_status(world.warehouse.as_ref(), &world.lake, &tables()).await?;
    for s in &status {
        assert_eq!((s.pending_batches, s.failure.as_ref()), (0, None), "{s:?}");
    }
    let last = world.loader(quick())?.load_pending().await?;
    assert_eq!((last.loaded, last.stopped), (0, 0), "{last:?}");
    Ok(())
}

/// An app event whose `properties` JSON is `bytes` long (ASCII), with id `id`.
fn app_event(id: &str, bytes: usize) -> String {
    let properties = format!("{{\"p\":\"{}\"}}", "x".repeat(bytes - 8));
    format!(
        "{{\"event_id\":\"{id}\",\"event_type\":\"message_sent\",\"occurred_at\":\"2026-11-01T00:00:01.250Z\",\
         \"user_id\":\"u-1\",\"account_id\":\"acc-1\",\"platform\":\"ios\",\"properties\":{properties}}}"
    )
}

#[tokio::test]
async fn json_at_the_limit_loads_and_just_over_it_is_dead_lettered_too_long() -> TestResult {
    let pg = etl_testbed::postgres().await?;
    let world = world("rslimit", pg, 100).await?;
    let limit = etl_schema::WAREHOUSE_TEXT_MAX_BYTES;
    let lines = [
        app_event("at-limit", limit),
        app_event("over-limit", limit + 1),
        app_event("small", 20),
    ]
    .join("\n");
    let pipeline = crate::pipeline(&world.lake, 100)?;
    let source = LineSource::from_reader(
        Box::new(Cursor::new(lines.into_bytes())),
        "limits",
        "limits",
        0,
    );
    let summary = pipeline
        .ingest("app_events", Box::new(source), None)
        .await
        .context("ingest")?;
    assert_eq!(
        (summary.written, summary.dead_lettered),
        (2, 1),
        "{summary:?}"
    );
    assert_eq!(
        summary.dead_letter_reasons.get("too_long"),
        Some(&1),
        "{summary:?}"
    );
    let dead = world.lake.list("dead-letters/app_events").await?;
    let mut text = String::new();
    for path in &dead {
        let bytes = world.lake.get(path).await?.context(path)?;
        text.push_str(&String::from_utf8_lossy(&bytes));
    }
    assert!(
        text.contains("field `properties`: 65536 bytes of JSON"),
        "dead letter names the field: {}",
        &text[..text.len().min(300)]
    );

    let loaded = world.loader(quick())?.load_pending().await?;
    assert_eq!((loaded.loaded, loaded.stopped), (1, 0), "{loaded:?}");
    assert_eq!(
        warehouse_ids(&world.db.client, "app_events").await?,
        vec!["at-limit".to_string(), "small".to_string()]
    );
    let length: i32 = world
        .db
        .client
        .query_one(
            "SELECT octet_length(properties) FROM analytics.app_events WHERE event_id = 'at-limit'",
            &[],
        )
        .await
        .context("length")?
        .get(0);
    assert_eq!(length as usize, limit, "the value is whole, not truncated");
    Ok(())
}
