//! Kinesis to Redshift end to end: generated events (with byte-identical duplicates and malformed
//! records) are produced to kinesalite (one stream per table, 2 shards each), consumed into a
//! moto S3 lake by the exactly-once Kinesis consumer, and loaded by `etl_redshift::Loader`
//! through the Data API stand-in into PostgreSQL. The warehouse then holds every valid produced
//! `event_id` exactly once, a second load pass loads nothing, and the curated views have rows.

use std::collections::BTreeSet;

use etl_generate::{Generator, GeneratorConfig, RecordKind, Stream};
use tokio_postgres::Client;

use crate::lake_delivery::{consume_into, create_stream, put};
use crate::redshift_suite::loader_e2e::{
    assert_loading_again_loads_nothing, ledger_rows, quick, warehouse_ids, world,
};
use crate::{Context, Failure, TestResult};

/// What was produced for one table: every line sent, and the `event_id`s of the valid ones.
#[derive(Default)]
struct Produced {
    lines: Vec<Vec<u8>>,
    valid_ids: BTreeSet<String>,
    malformed: usize,
}

/// Generated records split per stream; records over 900 kB (which Kinesis refuses) left out.
fn produce_lines(seed: u64, events: u64) -> Result<(Produced, Produced), Failure> {
    let mut generator = Generator::new(GeneratorConfig {
        seed,
        events,
        malformed_rate: 0.02,
        ..GeneratorConfig::default()
    })
    .context("generator")?;
    let (mut app, mut call) = (Produced::default(), Produced::default());
    while let Some((stream, kind, line)) = generator.next_record() {
        if line.len() >= 900_000 {
            continue;
        }
        let out = match stream {
            Stream::AppEvents => &mut app,
            Stream::CallEvents => &mut call,
        };
        match kind {
            RecordKind::Valid => {
                let value: serde_json::Value =
                    serde_json::from_slice(line).context("valid generated JSON")?;
                let id = value["event_id"].as_str().context("event_id")?;
                out.valid_ids.insert(id.to_string());
            }
            RecordKind::Duplicate => {}
            RecordKind::Malformed(_) => out.malformed += 1,
        }
        out.lines.push(line.to_vec());
    }
    Ok((app, call))
}

/// `(rows, distinct event ids)` of `analytics.<table>`.
async fn counts(client: &Client, table: &str) -> Result<(usize, usize), Failure> {
    let ids = warehouse_ids(client, table).await?;
    let distinct = ids.iter().collect::<BTreeSet<_>>().len();
    Ok((ids.len(), distinct))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kinesis_to_lake_to_warehouse_every_valid_event_once() -> TestResult {
    let kinesalite = etl_testbed::kinesis().await?;
    let kinesis = kinesalite.client().await?;
    let pg = etl_testbed::postgres().await?;
    let world = world("rskinesis", pg, 500).await?;
    let (app, call) = produce_lines(51, 4000)?;
    assert!(
        app.malformed + call.malformed > 0,
        "the input has malformed records"
    );
    assert!(!call.valid_ids.is_empty(), "the input has call events");

    for (table, produced) in [("app_events", &app), ("call_events", &call)] {
        let stream = etl_testbed::unique_name(&format!("rs-{}", table.replace('_', "-")));
        create_stream(&kinesis, &stream, 2).await?;
        put(&kinesis, &stream, &produced.lines).await?;
        let summary = consume_into(&kinesis, &stream, &world.lake, table, 400, "e2e", None)
            .await?
            .map_err(Failure)?;
        assert_eq!(
            summary.read,
            produced.lines.len() as u64,
            "{table}: every record read"
        );
    }

    let mut loader = world.loader(quick())?;
    let first = loader.load_pending().await?;
    assert!(first.loaded >= 2, "several batches loaded: {first:?}");
    let client = &world.db.client;
    for (table, produced) in [("app_events", &app), ("call_events", &call)] {
        let want = produced.valid_ids.len();
        assert_eq!(
            counts(client, table).await?,
            (want, want),
            "{table}: one row per valid produced event"
        );
        let ids: BTreeSet<String> = warehouse_ids(client, table).await?.into_iter().collect();
        assert!(
            ids == produced.valid_ids,
            "{table}: the warehouse's event ids are the valid produced ones ({} missing, {} extra)",
            produced.valid_ids.difference(&ids).count(),
            ids.difference(&produced.valid_ids).count()
        );
    }
    assert_eq!(ledger_rows(client).await?, first.loaded as i64);
    eprintln!(
        "kinesis e2e: produced app {} / call {} records ({} / {} malformed), loaded {} batches: \
         {} app and {} call events",
        app.lines.len(),
        call.lines.len(),
        app.malformed,
        call.malformed,
        first.loaded,
        app.valid_ids.len(),
        call.valid_ids.len()
    );

    // A second pass, by the same loader and by a fresh one: nothing is loaded again.
    let before = (
        counts(client, "app_events").await?,
        counts(client, "call_events").await?,
    );
    assert_loading_again_loads_nothing(&world, &mut loader, first.loaded).await?;
    let after = (
        counts(client, "app_events").await?,
        counts(client, "call_events").await?,
    );
    assert_eq!(before, after, "a second pass changes no counts");
    assert_eq!(ledger_rows(client).await?, first.loaded as i64);

    // The curated views, created by migrate, see the loaded rows.
    for (view, column) in [
        ("messages_per_hour", "messages_sent"),
        ("calls_per_hour", "calls_started"),
    ] {
        let sql = format!(
            "SELECT COUNT(*), CAST(COALESCE(SUM({column}), 0) AS BIGINT) FROM analytics.{view}"
        );
        let row = client.query_one(&sql, &[]).await.context(&sql)?;
        let (rows, total): (i64, i64) = (row.get(0), row.get(1));
        assert!(rows > 0 && total > 0, "{view}: {rows} rows, total {total}");
    }
    Ok(())
}
