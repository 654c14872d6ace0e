//! A historical file backfilled twice with two transforms on a local lake: the second version
//! filters an event out, so the batch's file in that partition-hour is removed, the manifest is
//! replaced by the revised one, and a third run with the same transform changes nothing.

use crate::plan::{plan_files, Unit};
use crate::Backfill;
use etl_lake::catalog::FileCatalog;
use etl_lake::Lake;
use etl_pipeline::{Pipeline, PipelineOptions};
use etl_schema::StreamSchema;
use etl_transform::{MaskKey, TransformSql, Transformer};
use std::sync::Arc;

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

const SELECT: &str = "SELECT event_id, occurred_at, value, extras, arrived_at, \
    lake_dt(occurred_at) AS dt, lake_hour(occurred_at) AS hour FROM input";

const EVENTS: &str = r#"{"event_id":"a","occurred_at":"2026-01-01T10:00:00Z","value":1}
{"event_id":"b","occurred_at":"2026-01-01T11:00:00Z","value":2}
{"event_id":"c","occurred_at":"2026-01-01T11:30:00Z","value":3}
not json
"#;

fn pipeline(lake: &Lake, sql: &str) -> Pipeline {
    let schema = StreamSchema::from_toml_str(SCHEMA, "test").expect("schema");
    let key = MaskKey::new(b"0123456789abcdef0123").expect("key");
    let transform = TransformSql {
        stream: "ev".into(),
        origin: "test.sql".into(),
        sql: sql.into(),
    };
    let transformer =
        Transformer::new(std::slice::from_ref(&schema), vec![transform], key).expect("transformer");
    let options = PipelineOptions {
        parallelism: 1,
        ..Default::default()
    };
    Pipeline::new(
        options,
        vec![schema],
        transformer,
        lake.clone(),
        Arc::new(FileCatalog::new(lake.clone())),
    )
    .expect("pipeline")
}

async fn objects(lake: &Lake, prefix: &str) -> Vec<String> {
    lake.list(prefix).await.expect("list")
}

#[tokio::test]
async fn a_transform_change_rewrites_in_place_and_removes_what_the_new_version_lacks() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let input = tmp.path().join("history");
    std::fs::create_dir_all(&input).expect("mkdir");
    std::fs::write(input.join("part-0.ndjson"), EVENTS).expect("write");
    let lake = Lake::open(tmp.path().join("lake").to_str().expect("utf-8")).expect("lake");
    let store = Lake::open(input.to_str().expect("utf-8")).expect("store");
    let plan = plan_files(&store, "ev", "").await.expect("plan");
    assert!(matches!(plan.units.as_slice(), [Unit::File(_)]));

    // Version 1: every event.
    let v1 = pipeline(&lake, SELECT);
    let first = Backfill::new(&v1, "ev", "v1", (i64::MIN, i64::MAX))
        .run(&plan, None)
        .await
        .expect("v1");
    assert_eq!(
        (
            first.records.read,
            first.records.written,
            first.records.dead_lettered
        ),
        (4, 3, 1)
    );
    let data = objects(&lake, "ev/").await;
    assert_eq!(data.len(), 2, "{data:?}");
    assert!(data.iter().any(|p| p.contains("hour=10/")));
    let manifests = objects(&lake, "_commits/ev/").await;
    assert_eq!(manifests.len(), 1);
    assert!(manifests[0].contains('@'), "{manifests:?}");

    // Version 2 drops event `a`: its hour has no row of the batch any more.
    let v2 = pipeline(&lake, &format!("{SELECT} WHERE event_id <> 'a'"));
    let second = Backfill::new(&v2, "ev", "v2", (i64::MIN, i64::MAX))
        .run(&plan, None)
        .await
        .expect("v2");
    assert_eq!(
        (
            second.records.written,
            second.records.filtered,
            second.batches_rewritten
        ),
        (2, 1, 1)
    );
    assert_eq!(second.objects_removed, 1);
    let data = objects(&lake, "ev/").await;
    assert_eq!(data.len(), 1, "{data:?}");
    assert!(data[0].contains("hour=11/"));
    let after = objects(&lake, "_commits/ev/").await;
    assert_eq!(after.len(), 1);
    assert_ne!(
        after, manifests,
        "the revised manifest replaced the first one"
    );
    let commit = crate::plan::read_manifest(&lake, &after[0])
        .await
        .expect("manifest");
    assert_eq!(commit.rows(), 2);
    assert_eq!(commit.manifest_path(), after[0]);
    assert_eq!(objects(&lake, "dead-letters/ev/").await.len(), 1);

    // The same transform again: nothing is written.
    let before: Vec<_> = objects(&lake, "").await;
    let third = Backfill::new(&v2, "ev", "v2", (i64::MIN, i64::MAX))
        .run(&plan, None)
        .await
        .expect("v2 again");
    assert_eq!((third.files_done_before, third.batches_rewritten), (1, 0));
    assert_eq!(objects(&lake, "").await, before);
}
