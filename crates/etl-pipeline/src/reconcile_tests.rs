//! The run summary's reconciliation can fail: rows a transform's `WHERE` drops are `filtered`
//! (not duplicates), and a batch whose rows do not all reach the encoded files is refused before
//! its commit.

use crate::source::LineSource;
use crate::tests::{generate, key, read_table, small_batches};
use crate::{Pipeline, PipelineError};
use etl_generate::{GeneratorConfig, Stream};
use etl_lake::catalog::FileCatalog;
use etl_lake::{encode_partitions, Lake};
use etl_transform::Transformer;
use std::path::Path;
use std::sync::Arc;

fn pipeline_with_sql(lake_dir: &Path, call_sql: impl Fn(&str) -> String) -> Pipeline {
    let schemas = etl_schema::embedded().unwrap();
    let mut sql = etl_transform::embedded_sql();
    for s in sql.iter_mut().filter(|s| s.stream == "call_events") {
        s.sql = call_sql(&s.sql);
    }
    let transformer = Transformer::new(&schemas, sql, key()).unwrap();
    let lake = Lake::open(lake_dir.to_str().unwrap()).unwrap();
    let catalog = Arc::new(FileCatalog::new(lake.clone()));
    Pipeline::new(small_batches(), schemas, transformer, lake, catalog).unwrap()
}

fn config() -> GeneratorConfig {
    GeneratorConfig {
        seed: 11,
        events: 12_000,
        duplicate_rate: 0.03,
        malformed_rate: 0.01,
        call_share: 1.0,
        ..GeneratorConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_a_where_drops_are_reported_as_filtered() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, call_path, expected) = generate(tmp.path(), config());
    let exp = &expected[&Stream::CallEvents];
    let ringing = exp
        .valid
        .values()
        .filter(|v| v["event_type"] == "call_ringing")
        .count() as u64;
    assert!(ringing > 100, "the feed has ringing events to filter");

    let lake_dir = tmp.path().join("lake");
    let p = pipeline_with_sql(&lake_dir, |sql| {
        sql.replace(
            "FROM input",
            "FROM input WHERE event_type <> 'call_ringing'",
        )
    });
    let source = LineSource::open(call_path.to_str().unwrap()).unwrap();
    let summary = p
        .ingest("call_events", Box::new(source), None)
        .await
        .unwrap();
    assert!(summary.reconciles(), "{summary}");
    assert_eq!(
        summary.written,
        exp.valid.len() as u64 - ringing,
        "{summary}"
    );
    // Every ringing event is filtered. A copy of one in a later batch is filtered too (the
    // dedup window never saw the first copy, which the WHERE dropped), so it counts as
    // filtered rather than as a duplicate: the two together are exact.
    assert!(summary.filtered >= ringing, "{summary}");
    assert_eq!(
        summary.filtered + summary.duplicates,
        ringing + exp.duplicates,
        "{summary}"
    );
    assert!(
        summary
            .to_string()
            .contains(&format!("filtered {}", summary.filtered)),
        "{summary}"
    );
    let rows: usize = read_table(&lake_dir, "call_events")
        .iter()
        .map(|(_, b)| b.num_rows())
        .sum();
    assert_eq!(rows as u64, summary.written);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_encoder_that_loses_a_row_fails_the_run_before_the_batch_commits() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, call_path, _) = generate(tmp.path(), config());
    let lake_dir = tmp.path().join("lake");
    // Drops the last row of every batch it is given, then encodes honestly.
    let broken = Arc::new(
        |table: &str,
         schema: &arrow::datatypes::SchemaRef,
         batches: &[arrow::array::RecordBatch],
         options: &etl_lake::ParquetOptions| {
            let mut batches = batches.to_vec();
            if let Some(last) = batches.iter_mut().rev().find(|b| b.num_rows() > 0) {
                *last = last.slice(0, last.num_rows() - 1);
            }
            encode_partitions(table, schema, &batches, options)
        },
    );
    let p = pipeline_with_sql(&lake_dir, str::to_string).with_encoder(broken);
    let source = LineSource::open(call_path.to_str().unwrap()).unwrap();
    let err = p
        .ingest("call_events", Box::new(source), None)
        .await
        .expect_err("a lost row must fail the run");
    let text = err.to_string();
    assert!(
        matches!(err, PipelineError::Reconcile { .. }) && text.contains("do not reconcile"),
        "{text}"
    );
    assert!(
        !lake_dir.join("call_events").exists() || read_table(&lake_dir, "call_events").is_empty(),
        "the unreconciled batch was not committed"
    );
}
