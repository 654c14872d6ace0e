//! LocalWarehouse over a Parquet lake written from the hand-made fixture, and the golden files
//! of every curated view (`queries/views/expected/<view>.csv`, computed by hand from
//! `queries/views/fixtures/*.csv`).

mod support;

use arrow::datatypes::DataType;
use etl_warehouse::{
    batches_to_csv, embedded_views, load_views, LoadFile, LoadRequest, LocalWarehouse, ViewDef,
    Warehouse,
};
use std::collections::BTreeMap;
use std::path::PathBuf;
use support::*;

/// Renders every view of `views` over the fixture lake as CSV.
async fn render(views: &[ViewDef]) -> TestResult<BTreeMap<String, String>> {
    let lake = tempfile::tempdir()?;
    write_fixture_lake(lake.path())?;
    let warehouse = LocalWarehouse::open(lake.path(), &schemas()?, views).await?;
    let mut out = BTreeMap::new();
    for view in views {
        out.insert(
            view.name.clone(),
            batches_to_csv(&warehouse.view_rows(&view.name, None).await?)?,
        );
    }
    Ok(out)
}

fn golden(name: &str) -> TestResult<String> {
    let path = views_dir().join("expected").join(format!("{name}.csv"));
    std::fs::read_to_string(&path)
        .map_err(|e| format!("{}: {e}; write the expected rows by hand", path.display()).into())
}

async fn count(warehouse: &LocalWarehouse, sql: &str) -> TestResult<i64> {
    let batches = warehouse.query(sql).await?;
    let csv = batches_to_csv(&batches)?;
    Ok(csv.lines().nth(1).ok_or("no row")?.parse()?)
}

#[tokio::test]
async fn every_view_matches_its_golden_file() -> TestResult {
    let views = load_views(&views_dir())?;
    let rendered = render(&views).await?;
    let mut failures = Vec::new();
    for (name, got) in &rendered {
        let expected = golden(name)?;
        if *got != expected {
            failures.push(format!(
                "view {name}:\n--- expected\n{expected}--- got\n{got}"
            ));
        }
    }
    // Every golden file belongs to a view.
    for entry in std::fs::read_dir(views_dir().join("expected"))? {
        let path = entry?.path();
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_string();
        if !rendered.contains_key(&stem) {
            failures.push(format!("{} has no view", path.display()));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    Ok(())
}

#[tokio::test]
async fn a_wrong_view_fails_the_golden_comparison() -> TestResult {
    let views = embedded_views()?;
    let mutate = |name: &str, from: &str, to: &str| -> TestResult<Vec<ViewDef>> {
        let mut changed = views.clone();
        let view = changed
            .iter_mut()
            .find(|v| v.name == name)
            .ok_or("no such view")?;
        assert!(
            view.sql_body.contains(from),
            "{name} no longer contains `{from}`"
        );
        view.sql_body = view.sql_body.replace(from, to);
        Ok(changed)
    };
    let cases = [
        ("calls_per_hour", "'call_answered'", "'call_ringing'"),
        ("call_quality", "quality_mos < 3.5", "quality_mos <= 3.5"),
        (
            "call_outcomes",
            "MIN(CASE WHEN event_type = 'call_started' THEN occurred_at END) AS started_at",
            "MAX(occurred_at) AS started_at",
        ),
        (
            "messages_per_hour",
            "NULLIF(COUNT(*), 0)",
            "NULLIF(SUM(CASE WHEN event_type = 'message_sent' THEN 1 ELSE 0 END), 0)",
        ),
    ];
    for (name, from, to) in cases {
        let rendered = render(&mutate(name, from, to)?).await?;
        assert_ne!(
            rendered.get(name),
            Some(&golden(name)?),
            "{name} with `{to}` still matched its golden file"
        );
    }
    Ok(())
}

#[tokio::test]
async fn views_expose_only_quicksight_types() -> TestResult {
    let lake = tempfile::tempdir()?;
    write_fixture_lake(lake.path())?;
    let views = embedded_views()?;
    let warehouse = LocalWarehouse::open(lake.path(), &schemas()?, &views).await?;
    for view in &views {
        let frame = warehouse.session().table(view.name.as_str()).await?;
        for field in frame.schema().fields() {
            let ok = matches!(
                field.data_type(),
                DataType::Date32
                    | DataType::Timestamp(_, _)
                    | DataType::Int64
                    | DataType::Decimal128(_, _)
                    | DataType::Utf8
                    | DataType::Utf8View
                    | DataType::LargeUtf8
            );
            assert!(
                ok,
                "view {} column {} has type {} (allowed: date, timestamp, bigint, decimal, string)",
                view.name,
                field.name(),
                field.data_type()
            );
        }
    }
    Ok(())
}

#[tokio::test]
async fn missing_and_empty_tables_read_as_zero_rows() -> TestResult {
    let lake = tempfile::tempdir()?;
    let missing_root = lake.path().join("not-yet");
    let views = embedded_views()?;
    let warehouse = LocalWarehouse::open(missing_root.as_path(), &schemas()?, &views).await?;
    assert_eq!(
        count(&warehouse, "SELECT COUNT(*) AS n FROM call_events").await?,
        0
    );
    std::fs::create_dir_all(missing_root.join("app_events"))?;
    assert_eq!(
        count(&warehouse, "SELECT COUNT(*) AS n FROM app_events").await?,
        0
    );
    for view in &views {
        let rows: usize = warehouse
            .view_rows(&view.name, None)
            .await?
            .iter()
            .map(|b| b.num_rows())
            .sum();
        assert_eq!(rows, 0, "view {} over an empty lake", view.name);
    }
    Ok(())
}

#[tokio::test]
async fn new_files_are_seen_by_the_next_query_without_refresh() -> TestResult {
    let lake = tempfile::tempdir()?;
    let warehouse = LocalWarehouse::open(lake.path(), &schemas()?, &embedded_views()?).await?;
    assert_eq!(
        count(&warehouse, "SELECT COUNT(*) AS n FROM call_events").await?,
        0
    );
    write_fixture_lake(lake.path())?;
    assert_eq!(
        count(&warehouse, "SELECT COUNT(*) AS n FROM call_events").await?,
        38
    );
    assert_eq!(
        count(&warehouse, "SELECT COUNT(*) AS n FROM app_events").await?,
        17
    );
    // Partition columns come from the path.
    let sql = "SELECT COUNT(*) AS n FROM call_events WHERE dt = '2024-05-01' AND hour = '11'";
    assert_eq!(count(&warehouse, sql).await?, 22);
    // A second file in an existing partition (same rows again) shows up too, and a temporary
    // file without the .parquet suffix is skipped.
    let batch = fixture_batch("app_events")?;
    write_lake(lake.path(), "app_events", &batch, "part-1.parquet")?;
    write_lake(lake.path(), "app_events", &batch, "part-2.parquet.tmp")?;
    assert_eq!(
        count(&warehouse, "SELECT COUNT(*) AS n FROM app_events").await?,
        34
    );
    let dau = batches_to_csv(&warehouse.view_rows("daily_active_users", None).await?)?;
    assert_eq!(
        dau,
        golden("daily_active_users")?,
        "distinct users do not change with duplicated files"
    );
    Ok(())
}

#[tokio::test]
async fn view_rows_limits_and_refuses_unknown_views() -> TestResult {
    let lake = tempfile::tempdir()?;
    write_fixture_lake(lake.path())?;
    let warehouse = LocalWarehouse::open(lake.path(), &schemas()?, &embedded_views()?).await?;
    let two = batches_to_csv(&warehouse.view_rows("calls_per_hour", Some(2)).await?)?;
    assert_eq!(
        two,
        golden("calls_per_hour")?
            .lines()
            .take(3)
            .map(|l| format!("{l}\n"))
            .collect::<String>()
    );
    let err = warehouse
        .view_rows("call_events; DROP VIEW x", None)
        .await
        .expect_err("unknown view");
    assert!(err.to_string().contains("unknown view"), "{err}");
    // Views without view dependencies by name, then the views that read them.
    assert_eq!(
        warehouse.views().last().map(String::as_str),
        Some("answer_seizure_ratio")
    );
    assert_eq!(warehouse.views().len(), 10);
    assert_eq!(warehouse.tables(), ["app_events", "call_events"]);
    Ok(())
}

#[tokio::test]
async fn query_is_read_only_and_errors_carry_the_sql() -> TestResult {
    let lake = tempfile::tempdir()?;
    let warehouse = LocalWarehouse::open(lake.path(), &schemas()?, &embedded_views()?).await?;
    let err = warehouse
        .query("CREATE VIEW x AS SELECT 1")
        .await
        .expect_err("DDL refused");
    assert!(err.to_string().contains("CREATE VIEW x"), "{err}");
    let err = warehouse
        .query("SELECT no_such_column FROM call_events")
        .await
        .expect_err("bad column");
    let text = err.to_string();
    assert!(
        text.contains("no_such_column") && text.contains("SQL: SELECT"),
        "{text}"
    );
    Ok(())
}

#[tokio::test]
async fn a_broken_view_names_itself_and_its_file() -> TestResult {
    let lake = tempfile::tempdir()?;
    let bad = ViewDef::new(
        "bad_view",
        "SELECT missing_col FROM call_events",
        PathBuf::from("queries/views/bad_view.sql"),
    )?;
    let err = LocalWarehouse::open(lake.path(), &schemas()?, &[bad])
        .await
        .expect_err("broken view");
    let text = err.to_string();
    assert!(
        text.contains("view `bad_view` failed")
            && text.contains("missing_col")
            && text.contains("bad_view.sql"),
        "{text}"
    );

    let typo = ViewDef::new(
        "typo",
        "SELECT * FROM call_event",
        PathBuf::from("typo.sql"),
    )?;
    let err = LocalWarehouse::open(lake.path(), &schemas()?, &[typo])
        .await
        .expect_err("unknown table");
    assert!(
        err.to_string()
            .contains("unknown table or view `call_event`"),
        "{err}"
    );

    let clash = ViewDef::new(
        "call_events",
        "SELECT 1 AS x",
        PathBuf::from("call_events.sql"),
    )?;
    let err = LocalWarehouse::open(lake.path(), &schemas()?, &[clash])
        .await
        .expect_err("name clash");
    assert!(err.to_string().contains("name of a lake table"), "{err}");
    Ok(())
}

#[tokio::test]
async fn the_warehouse_trait_migrates_loads_and_queries() -> TestResult {
    let lake = tempfile::tempdir()?;
    write_fixture_lake(lake.path())?;
    let local = LocalWarehouse::open(lake.path(), &[], &[]).await?;
    let warehouse: &dyn Warehouse = &local;
    warehouse.migrate(&schemas()?, &embedded_views()?).await?;
    let request = LoadRequest {
        table: "call_events".into(),
        batch_id: "b-1".into(),
        files: vec![LoadFile {
            uri: "file:///lake/call_events/x.parquet".into(),
            rows: 38,
            bytes: 1000,
        }],
        batches: Vec::new(),
        columns: Vec::new(),
    };
    warehouse.load(&request).await?;
    let err = warehouse
        .load(&LoadRequest {
            table: "nope".into(),
            ..request
        })
        .await
        .expect_err("unknown table");
    assert!(err.to_string().contains("unknown table `nope`"), "{err}");
    let asr = batches_to_csv(
        &warehouse
            .query("SELECT * FROM answer_seizure_ratio ORDER BY day, region, channel")
            .await?,
    )?;
    assert_eq!(asr, golden("answer_seizure_ratio")?);

    // Migrating again with fewer views drops the others.
    let only_base: Vec<ViewDef> = embedded_views()?
        .into_iter()
        .filter(|v| v.name == "call_outcomes")
        .collect();
    warehouse.migrate(&schemas()?, &only_base).await?;
    assert_eq!(local.views(), ["call_outcomes"]);
    assert!(warehouse
        .query("SELECT * FROM answer_seizure_ratio")
        .await
        .is_err());
    Ok(())
}

#[tokio::test]
async fn an_object_store_url_works_like_a_directory() -> TestResult {
    use object_store::{memory::InMemory, path::Path as StorePath, ObjectStoreExt};
    // Write the fixture lake locally, then copy every file into an in-memory "bucket".
    let local = tempfile::tempdir()?;
    write_fixture_lake(local.path())?;
    let store = std::sync::Arc::new(InMemory::new());
    let mut pending = vec![local.path().to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let path = entry?.path();
            if path.is_dir() {
                pending.push(path);
            } else {
                let key = format!("lake/{}", path.strip_prefix(local.path())?.display());
                store
                    .put(&StorePath::from(key), std::fs::read(&path)?.into())
                    .await?;
            }
        }
    }
    let lake = etl_warehouse::LakeLocation::Url {
        url: "memory://bucket/lake/".into(),
        store,
    };
    let warehouse = LocalWarehouse::open(lake, &schemas()?, &embedded_views()?).await?;
    assert_eq!(
        count(&warehouse, "SELECT COUNT(*) AS n FROM call_events").await?,
        38
    );
    let quality = batches_to_csv(&warehouse.view_rows("call_quality", None).await?)?;
    assert_eq!(quality, golden("call_quality")?);
    Ok(())
}
