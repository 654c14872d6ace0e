//! Crash-point and fencing tests of the delivery protocol on a local lake with the file catalog.

use super::*;
use crate::catalog::FileCatalog;
use bytes::Bytes;

const STREAM: &str = "app_events";
const SHARD: &str = "shardId-000000000001";

fn p(dt: &str, hour: &str) -> PartitionValues {
    PartitionValues {
        dt: dt.into(),
        hour: hour.into(),
    }
}

/// A batch `first..=last` with two data files (two partitions) and a dead-letter file; names and
/// bytes derive from the range only, as the real encoder's do.
fn batch(first: &str, last: &str) -> Vec<BatchFile> {
    let id = format!("{SHARD}-{first}-{last}");
    vec![
        BatchFile {
            path: format!("{STREAM}/dt=2024-05-01/hour=09/{id}-0000.parquet"),
            partition: Some(p("2024-05-01", "09")),
            bytes: Bytes::from(format!("rows of {id} at 09")),
        },
        BatchFile {
            path: format!("{STREAM}/dt=2024-05-01/hour=10/{id}-0000.parquet"),
            partition: Some(p("2024-05-01", "10")),
            bytes: Bytes::from(format!("rows of {id} at 10")),
        },
        BatchFile {
            path: format!("dead-letters/{STREAM}/dt=2024-05-01/{id}.ndjson"),
            partition: None,
            bytes: Bytes::from(format!("dead letters of {id}")),
        },
    ]
}

async fn setup() -> (tempfile::TempDir, Lake, Arc<FileCatalog>) {
    let dir = tempfile::tempdir().expect("temp dir");
    let lake = Lake::open(dir.path().to_str().expect("utf-8 temp path")).expect("local lake");
    let catalog = Arc::new(FileCatalog::new(lake.clone()));
    let schema = etl_schema::embedded()
        .expect("schemas")
        .into_iter()
        .find(|s| s.stream == STREAM)
        .expect("app_events");
    catalog.sync_table(&schema).await.expect("sync");
    (dir, lake, catalog)
}

fn writer(lake: &Lake, catalog: &Arc<FileCatalog>, name: &str) -> Delivery {
    Delivery::new(
        lake.clone(),
        STREAM,
        SHARD,
        name,
        Some(catalog.clone() as Arc<dyn Catalog>),
    )
}

/// Every published object (table and dead letters) with its bytes.
async fn published(lake: &Lake) -> Vec<(String, Bytes)> {
    let mut out = Vec::new();
    for prefix in [STREAM, "dead-letters"] {
        for path in lake.list(prefix).await.expect("list") {
            let bytes = lake
                .get(&path)
                .await
                .expect("get")
                .expect("listed object exists");
            out.push((path, bytes));
        }
    }
    out
}

fn expected(files: &[BatchFile]) -> Vec<(String, Bytes)> {
    let mut out: Vec<(String, Bytes)> = files
        .iter()
        .map(|f| (f.path.clone(), f.bytes.clone()))
        .collect();
    out.sort();
    out
}

/// A writer that commits `files` as batch `7..=9` and stops at `point` as if it died.
async fn crash_at(
    point: FailPoint,
    files: Vec<BatchFile>,
) -> (tempfile::TempDir, Lake, Arc<FileCatalog>) {
    let (dir, lake, catalog) = setup().await;
    let crashed = writer(&lake, &catalog, "a").fail_at(point);
    let start = crashed.recover().await.expect("recover");
    crashed
        .commit(&start, "7", "9", files)
        .await
        .expect_err("injected crash");
    (dir, lake, catalog)
}

#[tokio::test]
async fn a_crash_at_any_point_ends_with_each_file_published_exactly_once() {
    for point in FailPoint::ALL {
        let (_dir, lake, catalog) = setup().await;
        let crashed = writer(&lake, &catalog, "a").fail_at(point);
        let start = crashed.recover().await.expect("recover empty");
        assert_eq!(
            start,
            Resume {
                next: 0,
                after: None
            }
        );
        let err = crashed
            .commit(&start, "100", "200", batch("100", "200"))
            .await
            .expect_err("injected crash");
        assert!(
            matches!(err, DeliveryError::Injected(p) if p == point),
            "{point:?}: {err}"
        );

        let next = writer(&lake, &catalog, "b");
        let resume = next.recover().await.expect("recover");
        let committed = if point == FailPoint::AfterStage {
            // Nothing was committed: nothing may be visible, and the retry may cut the batch
            // differently without leaving the first attempt's files beside it.
            assert_eq!(
                resume,
                Resume {
                    next: 0,
                    after: None
                },
                "{point:?}"
            );
            assert!(
                published(&lake).await.is_empty(),
                "{point:?}: staged files are invisible"
            );
            let retry = batch("100", "150");
            next.commit(&resume, "100", "150", retry.clone())
                .await
                .expect("retry commit");
            retry
        } else {
            assert_eq!(
                resume,
                Resume {
                    next: 1,
                    after: Some("200".into())
                },
                "{point:?}"
            );
            batch("100", "200")
        };
        assert_eq!(published(&lake).await, expected(&committed), "{point:?}");
        assert_eq!(
            catalog.partitions(STREAM).await.expect("partitions"),
            vec![p("2024-05-01", "09"), p("2024-05-01", "10")],
            "{point:?}"
        );
        assert_eq!(
            lake.list("_staging").await.expect("list staging"),
            Vec::<String>::new(),
            "{point:?}: staging cleaned"
        );

        // Recovery is idempotent, and the next batch chains on the committed position.
        let again = next.recover().await.expect("second recovery");
        assert_eq!(again.next, 1, "{point:?}");
        assert_eq!(published(&lake).await, expected(&committed), "{point:?}");
        let (record, after) = next
            .commit(&again, "201", "300", batch("201", "300"))
            .await
            .expect("next batch");
        assert_eq!(record.n, 1);
        assert_eq!(record.previous_last, again.after);
        assert_eq!(
            after,
            Resume {
                next: 2,
                after: Some("300".into())
            }
        );
    }
}

#[tokio::test]
async fn a_zombie_writer_is_fenced_and_publishes_nothing() {
    let (_dir, lake, catalog) = setup().await;
    let zombie = writer(&lake, &catalog, "zombie");
    let owner = writer(&lake, &catalog, "owner");
    let zombie_view = zombie.recover().await.expect("recover");
    let owner_view = owner.recover().await.expect("recover");
    assert_eq!(zombie_view, owner_view);

    let (record, _) = owner
        .commit(&owner_view, "100", "180", batch("100", "180"))
        .await
        .expect("owner commits");
    let err = zombie
        .commit(&zombie_view, "100", "200", batch("100", "200"))
        .await
        .expect_err("zombie must lose");
    assert!(matches!(err, DeliveryError::Fenced { n: 0, .. }), "{err}");

    assert_eq!(
        published(&lake).await,
        expected(&batch("100", "180")),
        "only the winner's files are visible"
    );
    assert_eq!(
        lake.list("_staging").await.expect("list"),
        Vec::<String>::new(),
        "the loser removed its staging"
    );
    let latest = owner.latest().await.expect("latest").expect("a record");
    assert_eq!(latest, record);
    assert_eq!(latest.writer, "owner");
    assert_eq!(
        zombie.recover().await.expect("zombie re-reads"),
        Resume {
            next: 1,
            after: Some("180".into())
        }
    );
}

#[tokio::test]
async fn a_committed_record_whose_files_are_gone_asks_for_a_replay() {
    let (_dir, lake, catalog) = crash_at(FailPoint::AfterRecord, batch("7", "9")).await;
    for path in lake.list("_staging").await.expect("list") {
        lake.store()
            .delete(&ObjectPath::from(path.as_str()))
            .await
            .expect("delete staged");
    }
    let err = writer(&lake, &catalog, "b")
        .recover()
        .await
        .expect_err("nothing to publish from");
    let text = err.to_string();
    assert!(
        matches!(err, DeliveryError::NeedsReplay { n: 0, .. }) && text.contains("7..=9"),
        "{text}"
    );
}

/// Commits batches `1..=10`, `11..=20`, `21..=30` as records 0, 1, 2.
async fn three_records(lake: &Lake, catalog: &Arc<FileCatalog>) -> Delivery {
    let w = writer(lake, catalog, "a");
    let mut resume = w.recover().await.expect("recover");
    for (first, last) in [("1", "10"), ("11", "20"), ("21", "30")] {
        resume = w
            .commit(&resume, first, last, batch(first, last))
            .await
            .expect("commit")
            .1;
    }
    w
}

async fn rewrite_record(lake: &Lake, n: u64, edit: impl FnOnce(&mut CommitRecord)) {
    let path = record_path(STREAM, SHARD, n);
    let bytes = lake.get(&path).await.expect("get").expect("record exists");
    let mut record: CommitRecord = serde_json::from_slice(&bytes).expect("record json");
    edit(&mut record);
    let body = serde_json::to_vec_pretty(&record).expect("json");
    lake.put(&path, Bytes::from(body)).await.expect("put");
}

#[tokio::test]
async fn a_log_with_a_gap_or_an_overlap_is_refused_with_what_to_do() {
    // A record removed from the middle: the numbering has a hole.
    let (_dir, lake, catalog) = setup().await;
    let w = three_records(&lake, &catalog).await;
    lake.store()
        .delete(&ObjectPath::from(record_path(STREAM, SHARD, 1).as_str()))
        .await
        .expect("delete record 1");
    let err = w.recover().await.expect_err("a hole in the log");
    let text = err.to_string();
    assert!(
        matches!(err, DeliveryError::Inconsistent { n: 1, .. }) && text.contains("missing"),
        "{text}"
    );
    assert!(
        text.contains("Refusing to continue") && text.contains("S3 versioning"),
        "{text}"
    );

    // The last record edited to skip positions (a gap between records 1 and 2).
    let (_dir, lake, catalog) = setup().await;
    let w = three_records(&lake, &catalog).await;
    rewrite_record(&lake, 2, |r| {
        r.previous_last = Some("25".into());
        r.first = "26".into();
    })
    .await;
    let err = w.recover().await.expect_err("a gap");
    let text = err.to_string();
    assert!(
        matches!(err, DeliveryError::Inconsistent { n: 2, .. })
            && text.contains("follows position 25")
            && text.contains("ends at 20"),
        "{text}"
    );

    // The last record overlapping its predecessor.
    let (_dir, lake, catalog) = setup().await;
    let w = three_records(&lake, &catalog).await;
    rewrite_record(&lake, 2, |r| r.first = "15".into()).await;
    let err = w.recover().await.expect_err("an overlap");
    let text = err.to_string();
    assert!(
        matches!(err, DeliveryError::Inconsistent { n: 2, .. }) && text.contains("overlaps"),
        "{text}"
    );

    // A record stored under another number.
    let (_dir, lake, catalog) = setup().await;
    let w = three_records(&lake, &catalog).await;
    rewrite_record(&lake, 2, |r| r.n = 7).await;
    let err = w.recover().await.expect_err("a misplaced record");
    assert!(
        matches!(err, DeliveryError::Inconsistent { n: 2, .. }),
        "{err}"
    );

    // The untouched log still recovers.
    let (_dir, lake, catalog) = setup().await;
    let w = three_records(&lake, &catalog).await;
    assert_eq!(
        w.recover().await.expect("a consistent log"),
        Resume {
            next: 3,
            after: Some("30".into())
        }
    );
}

#[tokio::test]
async fn a_staged_object_changed_after_the_commit_is_not_published() {
    let (_dir, lake, catalog) = crash_at(FailPoint::AfterRecord, batch("7", "9")).await;
    let staged = lake.list("_staging").await.expect("list");
    let victim = staged.first().expect("a staged file").clone();
    lake.put(&victim, Bytes::from_static(b"tampered bytes"))
        .await
        .expect("tamper");

    let err = writer(&lake, &catalog, "b")
        .recover()
        .await
        .expect_err("checksum mismatch");
    let text = err.to_string();
    assert!(
        matches!(&err, DeliveryError::Checksum { n: 0, path, .. } if *path == victim),
        "{text}"
    );
    assert!(
        text.contains("sha256") && text.contains("replay positions 7..=9"),
        "{text}"
    );
    // Nothing of the tampered file reached a table.
    for (path, bytes) in published(&lake).await {
        assert_ne!(bytes.as_ref(), b"tampered bytes", "{path} was published");
    }
}

#[tokio::test]
async fn a_published_object_changed_later_is_restored_from_its_staged_copy() {
    let files = batch("7", "9");
    let (_dir, lake, catalog) = crash_at(FailPoint::AfterPublish, files.clone()).await;
    let victim = files[0].path.clone();
    lake.put(&victim, Bytes::from_static(b"truncated"))
        .await
        .expect("tamper");
    writer(&lake, &catalog, "b")
        .recover()
        .await
        .expect("recovery restores the file");
    assert_eq!(published(&lake).await, expected(&files));
}
