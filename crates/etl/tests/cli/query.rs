//! `etl query`: the files of `queries/athena/` on the local engine against golden answers
//! worked out by hand for a small input ingested here, the `--param` and `--format` handling,
//! and `--engine athena` / `--save-named` against moto.

use super::{etl, text, TestResult};
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Five calls (four on 2024-05-01, one on 2024-05-02) and two users' app events.
const CALLS: &str = r#"{"event_id":"e01","call_id":"c1","event_type":"call_started","occurred_at":"2024-05-01T10:00:00Z","account_id":"a1","caller":"+14155550101","callee":"+14155550102","direction":"outbound","channel":"voice","region":"us-east-1","codec":"opus"}
{"event_id":"e02","call_id":"c1","event_type":"call_answered","occurred_at":"2024-05-01T10:00:05Z","account_id":"a1","caller":"+14155550101","callee":"+14155550102","direction":"outbound","channel":"voice","region":"us-east-1","codec":"opus"}
{"event_id":"e03","call_id":"c1","event_type":"quality_sample","occurred_at":"2024-05-01T10:30:00Z","account_id":"a1","caller":"+14155550101","callee":"+14155550102","direction":"outbound","channel":"voice","region":"us-east-1","codec":"opus","quality":{"mos":4.1}}
{"event_id":"e04","call_id":"c1","event_type":"call_ended","occurred_at":"2024-05-01T11:05:00Z","account_id":"a1","caller":"+14155550101","callee":"+14155550102","direction":"outbound","channel":"voice","region":"us-east-1","codec":"opus","duration_ms":3895000,"hangup_cause":"normal_clearing","quality":{"mos":4.5}}
{"event_id":"e05","call_id":"c2","event_type":"call_started","occurred_at":"2024-05-01T10:20:00Z","account_id":"a1","caller":"+14155550103","callee":"+14155550104","direction":"inbound","channel":"video","region":"us-east-1","codec":"VP8"}
{"event_id":"e06","call_id":"c2","event_type":"call_failed","occurred_at":"2024-05-01T10:20:30Z","account_id":"a1","caller":"+14155550103","callee":"+14155550104","direction":"inbound","channel":"video","region":"us-east-1","codec":"VP8","hangup_cause":"busy"}
{"event_id":"e07","call_id":"c3","event_type":"call_started","occurred_at":"2024-05-01T11:10:00Z","account_id":"a2","caller":"+442071838750","callee":"+14155550101","direction":"outbound","channel":"voice","region":"eu-west-1","codec":"opus"}
{"event_id":"e08","call_id":"c3","event_type":"call_failed","occurred_at":"2024-05-01T11:10:40Z","account_id":"a2","caller":"+442071838750","callee":"+14155550101","direction":"outbound","channel":"voice","region":"eu-west-1","codec":"opus","hangup_cause":"busy"}
{"event_id":"e09","call_id":"c4","event_type":"call_started","occurred_at":"2024-05-01T11:30:00Z","account_id":"a2","caller":"+442071838751","callee":"+14155550102","direction":"outbound","channel":"voice","codec":"opus"}
{"event_id":"e10","call_id":"c4","event_type":"call_ended","occurred_at":"2024-05-01T11:31:00Z","account_id":"a2","caller":"+442071838751","callee":"+14155550102","direction":"outbound","channel":"voice","codec":"opus","duration_ms":60000}
{"event_id":"e11","call_id":"c5","event_type":"call_started","occurred_at":"2024-05-02T09:00:00Z","account_id":"a2","caller":"+442071838752","callee":"+14155550103","direction":"inbound","channel":"voice","region":"eu-west-1","codec":"opus"}
{"event_id":"e12","call_id":"c5","event_type":"call_ended","occurred_at":"2024-05-02T09:02:00Z","account_id":"a2","caller":"+442071838752","callee":"+14155550103","direction":"inbound","channel":"voice","region":"eu-west-1","codec":"opus","duration_ms":120000,"hangup_cause":"normal_clearing"}
"#;

const APPS: &str = r#"{"event_id":"a01","event_type":"app_open","occurred_at":"2024-05-01T08:00:00Z","user_id":"u1","account_id":"a1","session_id":"s1","platform":"ios"}
{"event_id":"a02","event_type":"message_sent","occurred_at":"2024-05-01T08:05:00Z","user_id":"u1","account_id":"a1","session_id":"s1","platform":"ios"}
{"event_id":"a03","event_type":"message_failed","occurred_at":"2024-05-01T08:06:00Z","user_id":"u1","account_id":"a1","session_id":"s1","platform":"ios"}
{"event_id":"a04","event_type":"message_sent","occurred_at":"2024-05-01T08:07:00Z","user_id":"u1","account_id":"a1","session_id":"s1","platform":"ios"}
{"event_id":"a05","event_type":"login","occurred_at":"2024-05-01T08:30:00Z","user_id":"u2","account_id":"a1","session_id":"s9","platform":"android"}
{"event_id":"a06","event_type":"login","occurred_at":"2024-05-02T09:00:00Z","user_id":"u1","account_id":"a1","session_id":"s2","platform":"web"}
{"event_id":"a07","event_type":"logout","occurred_at":"2024-05-02T09:10:00Z","user_id":"u1","account_id":"a1","session_id":"s2","platform":"web"}
{"event_id":"a08","event_type":"app_open","occurred_at":"2024-05-03T07:00:00Z","user_id":"u1","account_id":"a1","session_id":"s3","platform":"web"}
"#;

/// (query file, parameters) of each golden answer in `queries/athena/expected/`.
const CASES: &[(&str, &[&str])] = &[
    (
        "call_timeline",
        &["call_id=c1", "from_dt=2024-05-01", "to_dt=2024-05-02"],
    ),
    ("hourly_volume", &["from_dt=2024-05-01", "to_dt=2024-05-01"]),
    ("late_arrivals", &["from_dt=2024-05-01", "to_dt=2024-05-02"]),
    (
        "top_hangup_causes",
        &["from_dt=2024-05-01", "to_dt=2024-05-02"],
    ),
    (
        "user_sessions",
        &["user_id=u1", "from_dt=2024-05-01", "to_dt=2024-05-02"],
    ),
];

/// Modification times of the fixture files: a file's records arrive at its modification time.
/// The calls of 2024-05-01 arrive at 11:30:30 that day, those of 2024-05-02 on 2024-05-03 at
/// 10:00 (`late_arrivals`).
const ARRIVALS: [(&str, u64); 3] = [
    ("call_events", 1_714_563_030),
    ("call_events_late", 1_714_730_400),
    ("app_events", 1_714_563_030),
];

fn ingest_fixture(dir: &Path) -> TestResult {
    std::fs::create_dir_all(dir)?;
    let (early, late): (Vec<&str>, Vec<&str>) =
        CALLS.lines().partition(|l| !l.contains("2024-05-02"));
    let calls = [early.join("\n") + "\n", late.join("\n") + "\n"];
    for (name, body) in [
        ("call_events", calls[0].as_str()),
        ("call_events_late", calls[1].as_str()),
        ("app_events", APPS),
    ] {
        let stream = name.trim_end_matches("_late");
        let file = dir.join(format!("{name}.ndjson"));
        std::fs::write(&file, body)?;
        let mtime = ARRIVALS
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, t)| std::time::UNIX_EPOCH + std::time::Duration::from_secs(*t))
            .ok_or("no arrival time")?;
        std::fs::File::options()
            .write(true)
            .open(&file)?
            .set_modified(mtime)?;
        let file = file.to_str().ok_or("temp path is not UTF-8")?;
        let out = etl(dir, &["ingest", "--stream", stream, file]);
        assert!(
            out.status.success(),
            "ingest {stream}: {}",
            text(&out.stderr)
        );
    }
    Ok(())
}

fn run_file(dir: &Path, name: &str, params: &[&str], format: &str) -> std::process::Output {
    let file = repo().join("queries/athena").join(format!("{name}.sql"));
    let file = file.display().to_string();
    let mut args = vec!["query", "-f", file.as_str(), "--format", format];
    for p in params {
        args.push("--param");
        args.push(p);
    }
    etl(dir, &args)
}

#[test]
fn every_athena_query_file_gives_its_golden_answer_on_the_local_engine() -> TestResult {
    let tmp = tempfile::tempdir()?;
    ingest_fixture(tmp.path())?;
    let mut failures = Vec::new();
    for (name, params) in CASES {
        let out = run_file(tmp.path(), name, params, "csv");
        assert!(out.status.success(), "{name}: {}", text(&out.stderr));
        let expected = std::fs::read_to_string(
            repo()
                .join("queries/athena/expected")
                .join(format!("{name}.csv")),
        )?;
        let got = text(&out.stdout);
        if got != expected {
            failures.push(format!("{name}:\n--- expected\n{expected}--- got\n{got}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // Every query file has a case here (and so a golden answer).
    for file in etl_query::named::embedded() {
        assert!(
            CASES.iter().any(|(n, _)| *n == file.name),
            "{} has no golden test",
            file.name
        );
    }
    Ok(())
}

#[test]
fn params_formats_and_the_bare_sql_form_work_and_mistakes_are_named() -> TestResult {
    let tmp = tempfile::tempdir()?;
    ingest_fixture(tmp.path())?;
    // The bare form of before keeps working, now also with --format.
    let out = etl(
        tmp.path(),
        &["query", "SELECT count(*) AS n FROM call_events"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("| 12 |"),
        "{}",
        text(&out.stdout)
    );

    let out = run_file(
        tmp.path(),
        "top_hangup_causes",
        &["from_dt=2024-05-02", "to_dt=2024-05-02"],
        "json",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(
        rows,
        serde_json::json!([{"hangup_cause": "normal_clearing", "calls": 1, "failed": 0, "ended": 1}])
    );

    // A quote in a value stays inside its literal.
    let out = run_file(
        tmp.path(),
        "call_timeline",
        &[
            "call_id=c1' OR '1'='1",
            "from_dt=2024-05-01",
            "to_dt=2024-05-02",
        ],
        "csv",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout).lines().count(),
        1,
        "{}",
        text(&out.stdout)
    );

    let out = run_file(tmp.path(), "call_timeline", &["call_id=c1"], "csv");
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("--param from_dt="),
        "{}",
        text(&out.stderr)
    );
    let out = run_file(
        tmp.path(),
        "hourly_volume",
        &["from_dt=2024-05-01", "to_dt=2024-05-01", "region=x"],
        "csv",
    );
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("region not used"),
        "{}",
        text(&out.stderr)
    );
    Ok(())
}

#[tokio::test]
async fn an_s3_lake_is_queried_locally_and_on_athena_with_projected_glue_tables() -> TestResult {
    let moto = etl_testbed::moto().await?;
    let _athena = moto.athena_lock().await;
    let clients = moto.clients().await?;
    let bucket = etl_testbed::unique_name("cli-query");
    clients.s3().create_bucket().bucket(&bucket).send().await?;
    let database = etl_testbed::unique_ident("q");
    let workgroup = etl_testbed::unique_ident("wg");
    clients
        .athena()
        .create_work_group()
        .name(&workgroup)
        .send()
        .await?;
    let tmp = tempfile::tempdir()?;
    let config = tmp.path().join("etl.toml");
    std::fs::write(
        &config,
        format!(
            "[lake]\nlocation = \"s3://{bucket}/events\"\nglue_database = \"{database}\"\n\n\
             [athena]\nworkgroup = \"{workgroup}\"\noutput_location = \"s3://{bucket}/athena-results/\"\n\
             poll_initial_ms = 5\npoll_max_ms = 50\npartition_projection = true\n\n{}",
            toml::to_string(&std::collections::BTreeMap::from([("aws", moto.settings())]))?
        ),
    )?;
    let config = config.to_str().ok_or("temp path is not UTF-8")?.to_string();
    let with_config = |args: &[&str]| {
        let mut all = vec!["--config", config.as_str()];
        all.extend_from_slice(args);
        etl(tmp.path(), &all)
    };

    // The Glue tables carry partition projection, with the template naming the lake layout.
    let out = with_config(&["catalog", "sync"]);
    assert!(out.status.success(), "catalog sync: {}", text(&out.stderr));
    let table = clients
        .glue()
        .get_table()
        .database_name(&database)
        .name("call_events")
        .send()
        .await?;
    let params = table
        .table()
        .and_then(|t| t.parameters())
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        params.get("projection.enabled").map(String::as_str),
        Some("true")
    );
    assert_eq!(
        params.get("projection.dt.range").map(String::as_str),
        Some("2024-01-01,NOW")
    );
    assert_eq!(
        params.get("storage.location.template").map(String::as_str),
        Some(format!("s3://{bucket}/events/call_events/dt=${{dt}}/hour=${{hour}}/").as_str())
    );

    // The local engine reads the S3 lake in place.
    let file = tmp.path().join("call_events.ndjson");
    std::fs::write(&file, CALLS)?;
    let out = with_config(&[
        "ingest",
        "--stream",
        "call_events",
        file.to_str().ok_or("path")?,
    ]);
    assert!(out.status.success(), "ingest: {}", text(&out.stderr));
    let out = with_config(&[
        "query",
        "--format",
        "csv",
        "SELECT dt, count(*) AS n FROM call_events GROUP BY dt ORDER BY dt",
    ]);
    assert!(out.status.success(), "local query: {}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "dt,n\n2024-05-01,10\n2024-05-02,2\n");

    // Athena (moto runs no SQL: it answers with the queued result).
    moto.queue_athena_results(
        &moto.settings().region,
        serde_json::json!([{
            "rows": [
                {"Data": [{"VarCharValue": "dt"}, {"VarCharValue": "n"}]},
                {"Data": [{"VarCharValue": "2024-05-01"}, {"VarCharValue": "10"}]},
            ],
            "column_info": [{"Name": "dt", "Type": "varchar"}, {"Name": "n", "Type": "bigint"}],
        }]),
    )
    .await?;
    let out = with_config(&[
        "query",
        "--engine",
        "athena",
        "--format",
        "json",
        "-f",
        &repo()
            .join("queries/athena/hourly_volume.sql")
            .display()
            .to_string(),
        "--param",
        "from_dt=2024-05-01",
        "--param",
        "to_dt=2024-05-01",
    ]);
    assert!(out.status.success(), "athena query: {}", text(&out.stderr));
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(rows, serde_json::json!([{"dt": "2024-05-01", "n": 10}]));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("data scanned") && stderr.contains("engine time"),
        "{stderr}"
    );

    // Named queries: created once, unchanged the second time.
    let out = with_config(&["query", "--save-named"]);
    assert!(out.status.success(), "save-named: {}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout).matches(": created (").count(),
        etl_query::named::embedded().len(),
        "{}",
        text(&out.stdout)
    );
    let out = with_config(&["query", "--save-named"]);
    assert!(
        out.status.success(),
        "save-named again: {}",
        text(&out.stderr)
    );
    assert_eq!(
        text(&out.stdout).matches(": unchanged (").count(),
        etl_query::named::embedded().len(),
        "{}",
        text(&out.stdout)
    );
    Ok(())
}

#[tokio::test]
async fn ctrl_c_stops_a_running_athena_query() -> TestResult {
    let moto = etl_testbed::moto().await?;
    let _athena = moto.athena_lock().await;
    let clients = moto.clients().await?;
    let workgroup = etl_testbed::unique_ident("wg");
    clients
        .athena()
        .create_work_group()
        .name(&workgroup)
        .send()
        .await?;
    let tmp = tempfile::tempdir()?;
    let config = tmp.path().join("etl.toml");
    std::fs::write(
        &config,
        format!(
            "[athena]\nworkgroup = \"{workgroup}\"\ndatabase = \"analytics\"\npoll_initial_ms = 20\npoll_max_ms = 100\n\n{}",
            toml::to_string(&std::collections::BTreeMap::from([("aws", moto.settings())]))?
        ),
    )?;
    // The query stays QUEUED until stopped.
    moto.set_state_transition(
        "athena::execution",
        serde_json::json!({"progression": "manual", "times": 1_000_000}),
    )
    .await?;
    let outcome = async {
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_etl"))
            .current_dir(tmp.path())
            .arg("--dir")
            .arg(tmp.path())
            .arg("--config")
            .arg(&config)
            .args([
                "query",
                "--engine",
                "athena",
                "SELECT count(*) FROM call_events",
            ])
            .env_remove("ETL_CONFIG")
            .env_remove("ETL_DIR")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()?;
        // Wait until the query runs on "Athena", then Ctrl-C.
        let mut id = None;
        for _ in 0..200 {
            let listed = clients
                .athena()
                .list_query_executions()
                .work_group(&workgroup)
                .send()
                .await?;
            if let Some(first) = listed.query_execution_ids().first() {
                id = Some(first.clone());
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        let id = id.ok_or("the query never started")?;
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        let kill = std::process::Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status()?;
        assert!(kill.success());
        let out = tokio::task::spawn_blocking(move || child.wait_with_output()).await??;
        Ok::<_, Box<dyn std::error::Error>>((id, out))
    }
    .await;
    moto.set_state_transition(
        "athena::execution",
        serde_json::json!({"progression": "immediate"}),
    )
    .await?;
    let (id, out) = outcome?;
    let stderr = text(&out.stderr);
    assert!(!out.status.success(), "a stopped query is a failure");
    assert!(
        stderr.contains("CANCELLED") && stderr.contains("StopQueryExecution"),
        "{stderr}"
    );
    let state = clients
        .athena()
        .get_query_execution()
        .query_execution_id(&id)
        .send()
        .await?;
    let state = state
        .query_execution()
        .and_then(|e| e.status())
        .and_then(|s| s.state())
        .map(|s| s.as_str().to_string());
    assert_eq!(state.as_deref(), Some("CANCELLED"));
    Ok(())
}
