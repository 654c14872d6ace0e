//! Compaction against a local lake, read back through the local engine.

use crate::{Action, CompactError, CompactOptions, Compactor, CrashPoint, LoadGate, SkipReason};
use arrow::array::{
    Array, AsArray, Int64Array, RecordBatch, StringArray, TimestampMillisecondArray,
};
use arrow::datatypes::{DataType, Field, Schema, TimestampMillisecondType};
use async_trait::async_trait;
use etl_lake::{encode_partitions, BatchId, BatchSource, Lake, ParquetOptions};
use etl_schema::StreamSchema;
use etl_warehouse::LocalWarehouse;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

const SCHEMA: &str = r#"
stream = "ev"
version = 1
description = "test events"

[[fields]]
name = "event_id"
type = "string"
required = true
doc = "id"

[[fields]]
name = "occurred_at"
type = "timestamp"
required = true
doc = "time"

[[fields]]
name = "value"
type = "int64"
doc = "a number"
"#;

/// 2026-01-01T10:00:00Z in ms.
const HOUR_10: i64 = 1_767_261_600_000;

fn schema() -> StreamSchema {
    StreamSchema::from_toml_str(SCHEMA, "test").expect("schema")
}

fn options(grace: Duration) -> CompactOptions {
    CompactOptions {
        parquet: ParquetOptions::default(),
        older_than: Duration::ZERO,
        grace_period: grace,
        dry_run: false,
        now_ms: None,
        crash_at: None,
    }
}

/// Writes one batch (a writer file per hour it touches) of `(event_id, minute offset from
/// 10:00, value)` rows, as `etl ingest` does.
async fn write_batch(lake: &Lake, first: u64, rows: &[(&str, i64, i64)]) {
    let schema = schema();
    let lake_schema = schema.lake_arrow_schema();
    let times: Vec<i64> = rows.iter().map(|r| HOUR_10 + r.1 * 60_000).collect();
    let hour = |t: i64| format!("{:02}", (t / 3_600_000) % 24);
    let mut fields: Vec<Arc<Field>> = lake_schema.fields().iter().cloned().collect();
    fields.push(Arc::new(Field::new("dt", DataType::Utf8, false)));
    fields.push(Arc::new(Field::new("hour", DataType::Utf8, false)));
    let columns: Vec<Arc<dyn Array>> = vec![
        Arc::new(StringArray::from(
            rows.iter().map(|r| r.0).collect::<Vec<_>>(),
        )),
        Arc::new(TimestampMillisecondArray::from(times.clone()).with_timezone("UTC")),
        Arc::new(Int64Array::from(
            rows.iter().map(|r| r.2).collect::<Vec<_>>(),
        )),
        Arc::new(StringArray::from(vec![None::<&str>; rows.len()])),
        Arc::new(TimestampMillisecondArray::from(times.clone()).with_timezone("UTC")),
        Arc::new(StringArray::from(vec!["2026-01-01"; rows.len()])),
        Arc::new(StringArray::from(
            times.iter().map(|&t| hour(t)).collect::<Vec<_>>(),
        )),
    ];
    let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).expect("batch");
    let files = encode_partitions("ev", &lake_schema, &[batch], &ParquetOptions::default())
        .expect("encode");
    let last = first + rows.len() as u64 - 1;
    let id = BatchId::new("src", first, last);
    let source = BatchSource {
        name: "test",
        first,
        last,
        schema_version: Some(1),
    };
    lake.write_batch("ev", &id, source, files, &[], "2026-01-01")
        .await
        .expect("write batch");
    // Distinct object times: arrival order is the order of these calls.
    tokio::time::sleep(Duration::from_millis(15)).await;
}

/// Four small files in hour 10 (`e2` arrives twice: value 20 first, then 99), one in hour 11.
async fn small_files(lake: &Lake) {
    write_batch(lake, 1, &[("e3", 30, 3), ("e1", 10, 1)]).await;
    write_batch(lake, 3, &[("e2", 20, 20), ("e5", 50, 5)]).await;
    write_batch(lake, 5, &[("e4", 40, 4), ("e2", 20, 99)]).await;
    write_batch(lake, 7, &[("e6", 5, 6)]).await;
    write_batch(lake, 8, &[("f1", 70, 7)]).await;
}

async fn setup() -> (tempfile::TempDir, Lake, LocalWarehouse) {
    let dir = tempfile::tempdir().expect("tempdir");
    let lake = Lake::open(dir.path().to_str().expect("utf8")).expect("lake");
    small_files(&lake).await;
    let warehouse = LocalWarehouse::open(dir.path(), &[schema()], &[])
        .await
        .expect("warehouse");
    (dir, lake, warehouse)
}

/// `(event_id, value)` of hour 10 as the local engine reads it, in table order.
async fn hour_10(warehouse: &LocalWarehouse) -> Vec<(String, i64)> {
    let batches = warehouse
        .query("SELECT event_id, value FROM ev WHERE dt = '2026-01-01' AND hour = '10' ORDER BY event_id, value")
        .await
        .expect("query");
    let mut out = Vec::new();
    for b in batches {
        let ids = b.column(0).as_string::<i32>();
        let values = b.column(1).as_primitive::<arrow::datatypes::Int64Type>();
        for i in 0..b.num_rows() {
            out.push((ids.value(i).to_string(), values.value(i)));
        }
    }
    out
}

fn rows(list: &[(&str, i64)]) -> Vec<(String, i64)> {
    list.iter().map(|(e, v)| (e.to_string(), *v)).collect()
}

fn before() -> Vec<(String, i64)> {
    rows(&[
        ("e1", 1),
        ("e2", 20),
        ("e2", 99),
        ("e3", 3),
        ("e4", 4),
        ("e5", 5),
        ("e6", 6),
    ])
}

fn after() -> Vec<(String, i64)> {
    rows(&[
        ("e1", 1),
        ("e2", 20),
        ("e3", 3),
        ("e4", 4),
        ("e5", 5),
        ("e6", 6),
    ])
}

async fn objects(lake: &Lake, prefix: &str) -> Vec<String> {
    lake.list(prefix).await.expect("list")
}

/// Rows of a Parquet file in file order: `(event_id, occurred_at)`.
async fn file_rows(lake: &Lake, path: &str) -> Vec<(String, i64)> {
    let bytes = lake.get(path).await.expect("get").expect("exists");
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes)
        .expect("parquet")
        .build()
        .expect("reader");
    let mut out = Vec::new();
    for b in reader {
        let b = b.expect("batch");
        let ids = b.column(0).as_string::<i32>();
        let times = b.column(1).as_primitive::<TimestampMillisecondType>();
        for i in 0..b.num_rows() {
            out.push((ids.value(i).to_string(), times.value(i)));
        }
    }
    out
}

#[tokio::test]
async fn closed_hours_are_merged_ordered_and_deduplicated_first_arrival_wins() {
    let (_dir, lake, warehouse) = setup().await;
    assert_eq!(hour_10(&warehouse).await, before());
    assert_eq!(objects(&lake, "ev/dt=2026-01-01/hour=10").await.len(), 4);

    let report = Compactor::new(&lake, options(Duration::from_secs(3600)))
        .run(&schema())
        .await
        .expect("compact");
    assert_eq!(report.compacted, 1, "hour 11 has one file: already compact");
    assert_eq!((report.files_before, report.files_after), (4, 1));
    assert_eq!(
        (report.rows_in, report.rows_out, report.duplicates_dropped),
        (7, 6, 1)
    );
    let skipped: Vec<_> = report
        .plans
        .iter()
        .map(|p| (p.partition.hour.clone(), p.action))
        .collect();
    assert_eq!(
        skipped,
        vec![
            ("10".to_string(), Action::Compact { generation: 1 }),
            ("11".to_string(), Action::Skip(SkipReason::AlreadyCompact))
        ]
    );
    // The engine reads the generation: each event once, the first arrival's value.
    assert_eq!(hour_10(&warehouse).await, after());
    let generation = objects(&lake, "_compacted/ev/dt=2026-01-01/hour=10/g=1").await;
    assert_eq!(generation.len(), 1);
    let in_file = file_rows(&lake, &generation[0]).await;
    let mut sorted = in_file.clone();
    sorted.sort_by(|a, b| (a.1, &a.0).cmp(&(b.1, &b.0)));
    assert_eq!(in_file, sorted, "rows ordered by (occurred_at, event_id)");
    assert_eq!(in_file.len(), 6);
    // Within the grace period the writer files stay (running queries may read them).
    assert_eq!(objects(&lake, "ev/dt=2026-01-01/hour=10").await.len(), 4);
    assert_eq!(report.waiting_for_grace, 4);

    // A second run: nothing to compact, and after the grace period the retired files go.
    let mut later = options(Duration::from_secs(3600));
    later.now_ms = Some(chrono::Utc::now().timestamp_millis() + 3_601_000);
    let report = Compactor::new(&lake, later)
        .run(&schema())
        .await
        .expect("clean");
    assert_eq!((report.compacted, report.deleted), (0, 4));
    assert!(objects(&lake, "ev/dt=2026-01-01/hour=10").await.is_empty());
    assert_eq!(hour_10(&warehouse).await, after());
    // Hour 11 untouched.
    assert_eq!(objects(&lake, "ev/dt=2026-01-01/hour=11").await.len(), 1);
}

#[tokio::test]
async fn a_dry_run_plans_and_changes_nothing() {
    let (_dir, lake, warehouse) = setup().await;
    let all_before = objects(&lake, "").await;
    let mut dry = options(Duration::ZERO);
    dry.dry_run = true;
    let report = Compactor::new(&lake, dry)
        .run(&schema())
        .await
        .expect("plan");
    assert_eq!(report.plans.len(), 2);
    assert_eq!(report.plans[0].action, Action::Compact { generation: 1 });
    assert_eq!(report.plans[0].files_before, 4);
    assert!(report.plans[0]
        .to_string()
        .contains("compact -> generation 1"));
    assert_eq!(report.compacted, 0);
    assert_eq!(objects(&lake, "").await, all_before);
    assert_eq!(hour_10(&warehouse).await, before());
}

#[tokio::test]
async fn open_hours_are_left_alone() {
    let (_dir, lake, _warehouse) = setup().await;
    let mut recent = options(Duration::ZERO);
    recent.older_than = Duration::from_secs(3600);
    // 10:30 on the day: hour 10 has not even closed.
    recent.now_ms = Some(HOUR_10 + 30 * 60_000);
    let report = Compactor::new(&lake, recent)
        .run(&schema())
        .await
        .expect("run");
    assert_eq!(report.compacted, 0);
    assert!(report
        .plans
        .iter()
        .all(|p| p.action == Action::Skip(SkipReason::Open)));
}

#[tokio::test]
async fn a_crash_at_any_point_leaves_the_hour_complete_and_a_rerun_finishes() {
    for point in CrashPoint::ALL {
        let (_dir, lake, warehouse) = setup().await;
        let mut crashing = options(Duration::ZERO);
        crashing.crash_at = Some(point);
        let err = Compactor::new(&lake, crashing)
            .run(&schema())
            .await
            .expect_err("injected crash");
        assert!(
            matches!(err, CompactError::Crash(p) if p == point),
            "{point:?}: {err}"
        );
        let seen = hour_10(&warehouse).await;
        assert!(
            seen == before() || seen == after(),
            "{point:?}: readers saw {seen:?}"
        );
        let report = Compactor::new(&lake, options(Duration::ZERO))
            .run(&schema())
            .await
            .unwrap_or_else(|e| panic!("{point:?}: rerun failed: {e}"));
        assert_eq!(hour_10(&warehouse).await, after(), "{point:?}");
        assert!(
            objects(&lake, "ev/dt=2026-01-01/hour=10").await.is_empty(),
            "{point:?}: retired writer files deleted ({report:?})"
        );
        let generations = objects(&lake, "_compacted/ev/dt=2026-01-01/hour=10").await;
        assert_eq!(
            generations.len(),
            1,
            "{point:?}: one generation file: {generations:?}"
        );
    }
}

#[tokio::test]
async fn late_events_for_a_compacted_hour_go_into_the_next_generation() {
    let (_dir, lake, warehouse) = setup().await;
    Compactor::new(&lake, options(Duration::ZERO))
        .run(&schema())
        .await
        .expect("compact");
    // A late batch for hour 10 (with a repeat of e1, which must not win: it arrived later).
    write_batch(&lake, 9, &[("e7", 59, 7), ("e1", 10, 111)]).await;
    let mut dry = options(Duration::ZERO);
    dry.dry_run = true;
    let plan = Compactor::new(&lake, dry)
        .run(&schema())
        .await
        .expect("plan");
    assert_eq!(plan.plans[0].action, Action::Compact { generation: 2 });
    assert_eq!(plan.plans[0].uncovered.len(), 1);

    let report = Compactor::new(&lake, options(Duration::ZERO))
        .run(&schema())
        .await
        .expect("again");
    assert_eq!((report.compacted, report.duplicates_dropped), (1, 1));
    let mut expected = after();
    expected.push(("e7".into(), 7));
    assert_eq!(hour_10(&warehouse).await, expected);
    assert!(objects(&lake, "_compacted/ev/dt=2026-01-01/hour=10/g=1")
        .await
        .is_empty());
    assert_eq!(
        objects(&lake, "_compacted/ev/dt=2026-01-01/hour=10/g=2")
            .await
            .len(),
        1
    );
}

/// A load ledger as the warehouse keeps it: the batch ids loaded so far.
struct Ledger(BTreeSet<String>);

#[async_trait]
impl LoadGate for Ledger {
    async fn loaded(&self, _table: &str) -> Result<BTreeSet<String>, String> {
        Ok(self.0.clone())
    }
}

#[tokio::test]
async fn writer_files_of_batches_not_yet_loaded_are_kept() {
    let (_dir, lake, warehouse) = setup().await;
    let loaded: BTreeSet<String> = [
        BatchId::new("src", 1, 2).to_string(),
        BatchId::new("src", 3, 4).to_string(),
    ]
    .into();
    let ledger = Ledger(loaded);
    let report = Compactor::new(&lake, options(Duration::ZERO))
        .with_load_gate(&ledger)
        .run(&schema())
        .await
        .expect("compact");
    assert_eq!((report.deleted, report.waiting_for_load), (2, 2));
    let left = objects(&lake, "ev/dt=2026-01-01/hour=10").await;
    assert_eq!(
        left,
        vec![
            format!(
                "ev/dt=2026-01-01/hour=10/{}-0000.parquet",
                BatchId::new("src", 5, 6)
            ),
            format!(
                "ev/dt=2026-01-01/hour=10/{}-0000.parquet",
                BatchId::new("src", 7, 7)
            ),
        ]
    );
    // Every manifest still names files that exist, for the loader.
    for commit in lake.commits("ev").await.expect("commits") {
        if ![BatchId::new("src", 1, 2), BatchId::new("src", 3, 4)].contains(&commit.batch_id) {
            for f in &commit.files {
                assert!(
                    lake.get(&f.path).await.expect("get").is_some(),
                    "{}",
                    f.path
                );
            }
        }
    }
    assert_eq!(hour_10(&warehouse).await, after());
}

#[tokio::test]
async fn a_reader_during_compaction_sees_each_row_exactly_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let lake = Lake::open(dir.path().to_str().expect("utf8")).expect("lake");
    // 40 small files over hour 10, no repeats: every consistent view has 200 distinct rows.
    for b in 0..40u64 {
        let ids: Vec<String> = (0..5).map(|i| format!("x{b:02}-{i}")).collect();
        let rows: Vec<(&str, i64, i64)> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| (id.as_str(), (b as i64 + i as i64) % 60, 1))
            .collect();
        write_batch(&lake, b * 5 + 1, &rows).await;
    }
    let warehouse = Arc::new(
        LocalWarehouse::open(dir.path(), &[schema()], &[])
            .await
            .expect("warehouse"),
    );
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let (warehouse, done) = (Arc::clone(&warehouse), Arc::clone(&done));
        tokio::spawn(async move {
            let mut queries = 0u32;
            while !done.load(std::sync::atomic::Ordering::SeqCst) || queries < 3 {
                let b = warehouse
                    .query("SELECT count(*) AS n, count(DISTINCT event_id) AS d FROM ev")
                    .await
                    .expect("a query during compaction");
                let n = b[0]
                    .column(0)
                    .as_primitive::<arrow::datatypes::Int64Type>()
                    .value(0);
                let d = b[0]
                    .column(1)
                    .as_primitive::<arrow::datatypes::Int64Type>()
                    .value(0);
                assert_eq!((n, d), (200, 200), "query {queries}");
                queries += 1;
            }
            queries
        })
    };
    // Compact with a grace period, then (after it) clean up, while the reader runs.
    let grace = Duration::from_secs(1);
    Compactor::new(&lake, options(grace))
        .run(&schema())
        .await
        .expect("compact");
    tokio::time::sleep(grace * 2).await;
    let report = Compactor::new(&lake, options(grace))
        .run(&schema())
        .await
        .expect("clean");
    assert_eq!(report.deleted, 40);
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let queries = reader.await.expect("reader");
    assert!(queries >= 3, "{queries} queries ran");
}

#[tokio::test]
async fn a_backfill_rewriting_a_folded_in_file_replaces_its_rows() {
    let (_dir, lake, warehouse) = setup().await;
    Compactor::new(&lake, options(Duration::from_secs(3600)))
        .run(&schema())
        .await
        .expect("compact");
    // The first batch re-processed under the same name (same source positions), new values.
    write_batch(&lake, 1, &[("e3", 30, 33), ("e1", 10, 11)]).await;
    let report = Compactor::new(&lake, options(Duration::from_secs(3600)))
        .run(&schema())
        .await
        .expect("again");
    assert_eq!(report.compacted, 1);
    assert_eq!(report.plans[0].rewritten.len(), 1);
    assert_eq!(
        hour_10(&warehouse).await,
        rows(&[
            ("e1", 11),
            ("e2", 20),
            ("e3", 33),
            ("e4", 4),
            ("e5", 5),
            ("e6", 6)
        ])
    );
    // Nothing changes on a third run.
    let report = Compactor::new(&lake, options(Duration::from_secs(3600)))
        .run(&schema())
        .await
        .expect("third");
    assert_eq!(report.compacted, 0);
}
