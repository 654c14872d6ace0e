//! The `etl` binary as a user runs it: the demo end to end on a local lake, and an S3 lake with
//! the Glue catalog configured through `--config` (against moto), plus configuration errors.
//! One test binary for the crate; the servers come from `etl-testbed`.

mod aws_credentials;
mod backfill;
mod compact;
mod dashboards;
mod evolution_e2e;
mod ingest_streams;
mod leases;
mod query;
mod schema_evolution;
mod third_stream;
mod warehouse_ops;

use std::path::Path;
use std::process::{Command, Output};

mod observe;

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn etl(dir: &Path, args: &[&str]) -> Output {
    if let Err(e) = std::fs::create_dir_all(dir) {
        panic!("cannot create {}: {e}", dir.display());
    }
    let output = Command::new(env!("CARGO_BIN_EXE_etl"))
        .current_dir(dir)
        .arg("--dir")
        .arg(dir)
        .args(args)
        .env_remove("ETL_CONFIG")
        .env_remove("ETL_DIR")
        .env_remove("ETL_MASK_KEY_FILE")
        .env("ETL_METRICS_LISTEN", "127.0.0.1:0")
        .output();
    match output {
        Ok(o) => o,
        Err(e) => panic!("cannot run the etl binary: {e}"),
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn demo_runs_end_to_end_and_prints_reconciled_counts_and_views() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let out = etl(tmp.path(), &["demo", "--events", "4000"]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "demo failed: {}", text(&out.stderr));
    for stream in ["app_events", "call_events"] {
        let line = stdout
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("{stream}: read")))
            .ok_or(format!("no summary line for {stream} in:\n{stdout}"))?;
        assert!(line.ends_with("[ok]"), "not reconciled: {line}");
    }
    // Every curated view is printed with at least one data row.
    for view in etl_warehouse::embedded_views()? {
        let at = stdout
            .find(&format!("\n{}\n", view.name))
            .ok_or(format!("view {} not printed in:\n{stdout}", view.name))?;
        let table: Vec<&str> = stdout[at..].lines().skip(2).take(6).collect();
        assert!(
            table.iter().filter(|l| l.starts_with("| ")).count() >= 2,
            "view {} has no rows:\n{}",
            view.name,
            table.join("\n")
        );
    }
    let parquet = walk(&tmp.path().join("lake"))
        .into_iter()
        .filter(|p| p.ends_with(".parquet"))
        .count();
    assert!(parquet > 0, "no Parquet file in the lake");

    // Replaying the demo's dead letters: they are really malformed, so they fail again (with
    // the same reasons), nothing is added to the tables, and a second replay changes nothing.
    let before = walk(&tmp.path().join("lake"));
    let mut previous = None;
    for _ in 0..2 {
        let out = etl(tmp.path(), &["dead-letters", "replay", "--json"]);
        assert!(out.status.success(), "replay: {}", text(&out.stderr));
        let summaries: serde_json::Value = serde_json::from_slice(&out.stdout)?;
        let summaries = summaries.as_array().ok_or("replay --json prints a list")?;
        assert_eq!(summaries.len(), 2, "{summaries:?}");
        for s in summaries {
            assert!(s["read"].as_u64() > Some(0), "{s}");
            assert_eq!(s["read"], s["dead_lettered"], "{s}");
        }
        let after: Vec<String> = walk(&tmp.path().join("lake"))
            .into_iter()
            .filter(|p| !before.contains(p))
            .collect();
        assert!(after.iter().all(|p| p.contains("replay-")), "{after:?}");
        assert!(
            after.iter().any(|p| p.contains("/dead-letters/")),
            "{after:?}"
        );
        if let Some(previous) = &previous {
            assert_eq!(previous, &after, "a second replay wrote other files");
        }
        previous = Some(after);
    }
    Ok(())
}

fn walk(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                out.extend(walk(&path));
            } else {
                out.push(path.display().to_string());
            }
        }
    }
    out
}

#[tokio::test]
async fn an_s3_lake_with_glue_is_configured_synced_and_ingested() -> TestResult {
    let moto = etl_testbed::moto().await?;
    let clients = moto.clients().await?;
    let bucket = etl_testbed::unique_name("cli-lake");
    clients.s3().create_bucket().bucket(&bucket).send().await?;
    let database = etl_testbed::unique_ident("cli");
    let tmp = tempfile::tempdir()?;
    let config = tmp.path().join("etl.toml");
    std::fs::write(
        &config,
        format!(
            "[lake]\nlocation = \"s3://{bucket}/events\"\nencryption = \"s3\"\nglue_database = \"{database}\"\n\n{}",
            toml::to_string(&std::collections::BTreeMap::from([("aws", moto.settings())]))?
        ),
    )?;
    let config_arg = config.to_str().ok_or("temp path is not UTF-8")?;

    let out = etl(tmp.path(), &["--config", config_arg, "catalog", "sync"]);
    assert!(out.status.success(), "catalog sync: {}", text(&out.stderr));
    let glue = clients.glue();
    let table = glue
        .get_table()
        .database_name(&database)
        .name("call_events")
        .send()
        .await?;
    let table = table.table().ok_or("GetTable returned no table")?;
    let sd = table.storage_descriptor().ok_or("no storage descriptor")?;
    assert_eq!(
        sd.location(),
        Some(format!("s3://{bucket}/events/call_events/").as_str())
    );

    // Ingest a generated file into the S3 lake: Parquet objects appear and partitions reach Glue.
    let gen = etl(
        tmp.path(),
        &["generate", "--events", "3000", "--out", "input"],
    );
    assert!(gen.status.success(), "generate: {}", text(&gen.stderr));
    let input = tmp.path().join("input").join("call_events.ndjson");
    let out = etl(
        tmp.path(),
        &[
            "--config",
            config_arg,
            "ingest",
            "--stream",
            "call_events",
            "--json",
            input.to_str().ok_or("temp path is not UTF-8")?,
        ],
    );
    assert!(out.status.success(), "ingest: {}", text(&out.stderr));
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let written = summary["written"]
        .as_u64()
        .ok_or("no `written` in summary")?;
    assert!(written > 1_000, "{summary}");

    let listed = clients
        .s3()
        .list_objects_v2()
        .bucket(&bucket)
        .prefix("events/call_events/")
        .send()
        .await?;
    let keys: Vec<&str> = listed.contents().iter().filter_map(|o| o.key()).collect();
    assert!(
        !keys.is_empty()
            && keys
                .iter()
                .all(|k| k.ends_with(".parquet") && k.contains("/dt=")),
        "{keys:?}"
    );
    let partitions = glue
        .get_partitions()
        .database_name(&database)
        .table_name("call_events")
        .send()
        .await?;
    let registered = partitions.partitions().len();
    let mut prefixes: Vec<&str> = keys
        .iter()
        .filter_map(|k| k.rsplit_once('/').map(|(p, _)| p))
        .collect();
    prefixes.dedup();
    assert_eq!(
        registered,
        prefixes.len(),
        "one Glue partition per dt/hour written"
    );

    let out = etl(tmp.path(), &["--config", config_arg, "catalog", "show"]);
    assert!(out.status.success(), "catalog show: {}", text(&out.stderr));
    assert!(text(&out.stdout).contains(&format!("({registered} partitions)")));
    Ok(())
}

#[test]
fn configuration_errors_name_the_field_and_the_fix() -> TestResult {
    let tmp = tempfile::tempdir()?;
    for (config, expected) in [
        ("[lake]\nbucket = \"x\"\n", "unknown field `bucket`"),
        (
            "[lake]\nlocation = \"s3://b/p\"\nencryption = \"kms\"\n",
            "lake.kms_key_id",
        ),
        ("[lake]\nlocation = \"/tmp/x\"\n", "not an s3:// URL"),
        (
            "[lake]\nglue_database = \"analytics\"\n",
            "needs an S3 lake",
        ),
    ] {
        let path = tmp.path().join("bad.toml");
        std::fs::write(&path, config)?;
        let out = etl(
            tmp.path(),
            &["--config", path.to_str().ok_or("utf-8")?, "catalog", "sync"],
        );
        let stderr = text(&out.stderr);
        assert!(!out.status.success(), "{config} was accepted");
        assert!(stderr.contains(expected), "{config}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    Ok(())
}

/// `SELECT count(*), count(DISTINCT event_id)` of `table` through `etl query` on `dir`'s lake.
fn counts(dir: &Path, table: &str) -> Result<(u64, u64), Box<dyn std::error::Error>> {
    let sql = format!("SELECT count(*) AS n, count(DISTINCT event_id) AS d FROM {table}");
    let out = etl(dir, &["query", &sql]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "query: {}", text(&out.stderr));
    let row = stdout
        .lines()
        .filter(|l| l.starts_with("| "))
        .nth(1)
        .ok_or(format!("no row in {stdout}"))?;
    let cells: Vec<u64> = row
        .split('|')
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(str::parse)
        .collect::<Result<_, _>>()?;
    match cells[..] {
        [n, d] => Ok((n, d)),
        _ => Err(format!("unexpected row {row}").into()),
    }
}

/// Dead-letter lines of `stream` in `dir`'s lake, without `too_large` ones (Kinesis refuses a
/// record over 1 MiB at PutRecords, so such a record never reaches the consumer).
fn dead_letters(dir: &Path, stream: &str) -> usize {
    walk(&dir.join("lake").join("dead-letters").join(stream))
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .flat_map(|t| t.lines().map(str::to_string).collect::<Vec<_>>())
        .filter(|l| !l.contains("\"reason\":\"too_large\""))
        .count()
}

#[tokio::test]
async fn etl_run_stopped_by_sigterm_resumes_without_loss_or_duplicates() -> TestResult {
    let kinesalite = etl_testbed::kinesis().await?;
    let client = kinesalite.client().await?;
    let tmp = tempfile::tempdir()?;
    let (app, call) = (
        etl_testbed::unique_name("cli-app"),
        etl_testbed::unique_name("cli-call"),
    );
    for stream in [&app, &call] {
        etl_testbed::create_stream(&client, stream, 2).await?;
    }
    let config = tmp.path().join("etl.toml");
    std::fs::write(
        &config,
        toml::to_string(&std::collections::BTreeMap::from([(
            "aws",
            kinesalite.settings(),
        )]))?,
    )?;
    let config = config.to_str().ok_or("temp path is not UTF-8")?;
    let generator = ["--events", "30000", "--duplicate-rate", "0"];
    let streams = ["--app-stream", &app, "--call-stream", &call];

    let produce = etl(
        tmp.path(),
        &[&["--config", config, "produce"][..], &generator, &streams].concat(),
    );
    assert!(
        produce.status.success(),
        "produce: {}",
        text(&produce.stderr)
    );

    // Consume until the first Parquet file is committed, then SIGTERM: a clean stop.
    let consumer_dir = tmp.path().join("consumer");
    let mut child = Command::new(env!("CARGO_BIN_EXE_etl"))
        .current_dir(tmp.path())
        .args([
            "--dir",
            consumer_dir.to_str().ok_or("utf-8")?,
            "--config",
            config,
            "run",
        ])
        .args(streams)
        .env("ETL_METRICS_LISTEN", "127.0.0.1:0")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while !walk(&consumer_dir.join("lake"))
        .iter()
        .any(|p| p.ends_with(".parquet"))
    {
        assert!(
            std::time::Instant::now() < deadline,
            "no Parquet file after 120 s"
        );
        assert!(
            child.try_wait()?.is_none(),
            "etl run ended before it was stopped"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()?;
    assert!(kill.success());
    let stopped = child.wait_with_output()?;
    assert!(
        stopped.status.success(),
        "etl run after SIGTERM: {:?} {}",
        stopped.status,
        text(&stopped.stderr)
    );

    // Start again and catch up.
    let resumed = etl(
        &consumer_dir,
        &[
            &["--config", config, "run", "--until-caught-up"][..],
            &streams,
        ]
        .concat(),
    );
    assert!(
        resumed.status.success(),
        "resumed run: {}",
        text(&resumed.stderr)
    );

    // The raw archive of what was read, in the same commits.
    for stream in ["app_events", "call_events"] {
        let raw = walk(&consumer_dir.join("lake").join("raw").join(stream));
        assert!(
            !raw.is_empty()
                && raw
                    .iter()
                    .all(|p| p.ends_with(".ndjson.gz") && p.contains("/dt=")),
            "{stream}: raw archive {raw:?}"
        );
    }

    // The reference: the same generated events through `etl ingest`.
    let reference = tmp.path().join("reference");
    let gen = etl(
        &reference.clone(),
        &[&["generate", "--out", "input"][..], &generator].concat(),
    );
    assert!(gen.status.success(), "generate: {}", text(&gen.stderr));
    for stream in ["app_events", "call_events"] {
        let file = reference.join("input").join(format!("{stream}.ndjson"));
        let out = etl(
            &reference,
            &["ingest", "--stream", stream, file.to_str().ok_or("utf-8")?],
        );
        assert!(
            out.status.success(),
            "reference ingest: {}",
            text(&out.stderr)
        );
        let (n, distinct) = counts(&consumer_dir, stream)?;
        let (ref_n, ref_distinct) = counts(&reference, stream)?;
        assert_eq!(
            n, distinct,
            "{stream}: duplicates in the lake after SIGTERM + resume"
        );
        assert_eq!(
            (n, distinct),
            (ref_n, ref_distinct),
            "{stream}: events lost"
        );
        assert_eq!(
            dead_letters(&consumer_dir, stream),
            dead_letters(&reference, stream),
            "{stream}: dead letters differ"
        );
    }
    Ok(())
}

/// `etl` run off the test's runtime thread, so servers on this runtime keep serving meanwhile.
async fn etl_async(dir: &Path, args: &[&str]) -> Result<Output, Box<dyn std::error::Error>> {
    let dir = dir.to_path_buf();
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    Ok(tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        etl(&dir, &args)
    })
    .await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etl_warehouse_migrate_and_load_reach_redshift_sql_exactly_once() -> TestResult {
    let moto = etl_testbed::moto().await?;
    let clients = moto.clients().await?;
    let bucket = etl_testbed::unique_name("cli-wh");
    clients.s3().create_bucket().bucket(&bucket).send().await?;
    let pg = etl_testbed::postgres().await?;
    let db = pg.fresh_database("cli_wh").await?;
    let mut standin_config = etl_redshift_standin::StandInConfig::new(pg.port());
    standin_config.s3 = Some(clients.s3());
    let standin = etl_redshift_standin::RedshiftDataStandIn::start(standin_config).await?;

    let tmp = tempfile::tempdir()?;
    let config = tmp.path().join("etl.toml");
    std::fs::write(
        &config,
        format!(
            "[lake]\nlocation = \"s3://{bucket}/events\"\n\n{}",
            toml::to_string(&std::collections::BTreeMap::from([(
                "aws",
                moto.settings()
            )]))?
        ),
    )?;
    let config = config.to_str().ok_or("temp path is not UTF-8")?;
    let gen = etl_async(
        tmp.path(),
        &["generate", "--events", "4000", "--out", "input"],
    )
    .await?;
    assert!(gen.status.success(), "generate: {}", text(&gen.stderr));
    let mut written = std::collections::BTreeMap::new();
    for stream in ["app_events", "call_events"] {
        let file = tmp.path().join("input").join(format!("{stream}.ndjson"));
        let file = file.to_str().ok_or("utf-8")?;
        let out = etl_async(
            tmp.path(),
            &[
                "--config", config, "ingest", "--stream", stream, "--json", file,
            ],
        )
        .await?;
        assert!(out.status.success(), "ingest: {}", text(&out.stderr));
        let summary: serde_json::Value = serde_json::from_slice(&out.stdout)?;
        written.insert(stream, summary["written"].as_i64().ok_or("written")?);
    }

    let target = [
        "--cluster-id",
        "test-cluster",
        "--db-user",
        "etl",
        "--database",
        db.name.as_str(),
        "--redshift-endpoint-url",
        standin.endpoint(),
    ];
    let migrate = etl_async(
        tmp.path(),
        &[&["--config", config, "warehouse", "migrate"][..], &target].concat(),
    )
    .await?;
    assert!(
        migrate.status.success(),
        "migrate: {}",
        text(&migrate.stderr)
    );
    let load_args = [
        &["--config", config, "warehouse", "load"][..],
        &target,
        &[
            "--iam-role-arn",
            "arn:aws:iam::123456789012:role/lake-reader",
        ],
    ]
    .concat();
    let load = etl_async(tmp.path(), &load_args).await?;
    assert!(load.status.success(), "load: {}", text(&load.stderr));

    let counts = |table: &'static str| {
        let client = &db.client;
        async move {
            let row = client
                .query_one(
                    &format!("SELECT count(*), count(DISTINCT event_id) FROM analytics.{table}"),
                    &[],
                )
                .await?;
            Ok::<_, Box<dyn std::error::Error>>((row.get::<_, i64>(0), row.get::<_, i64>(1)))
        }
    };
    for (stream, n) in &written {
        assert_eq!(counts(stream).await?, (*n, *n), "{stream} in the warehouse");
    }
    // Loading again changes nothing.
    let again = etl_async(tmp.path(), &load_args).await?;
    assert!(
        again.status.success(),
        "second load: {}",
        text(&again.stderr)
    );
    assert!(
        text(&again.stdout).starts_with("0 batches loaded"),
        "{}",
        text(&again.stdout)
    );
    for (stream, n) in &written {
        assert_eq!(
            counts(stream).await?,
            (*n, *n),
            "{stream} after a second load"
        );
    }
    let calls: i64 = db
        .client
        .query_one(
            "SELECT coalesce(sum(calls_started), 0)::bigint FROM analytics.calls_per_hour",
            &[],
        )
        .await?
        .get(0);
    assert!(calls > 0, "calls_per_hour is empty");
    Ok(())
}
