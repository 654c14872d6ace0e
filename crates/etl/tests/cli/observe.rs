//! The operations side of the binary (docs/metrics.md): `etl run` against kinesalite with the
//! listener on a free port, its counters against what was produced and dead-lettered, readiness
//! through a SIGTERM, JSON logs, and secrets kept out of the logs.

use super::{counts, etl_async, text, walk, TestResult};
use std::collections::BTreeMap;
use std::io::{BufRead, Read, Write};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A secret masking key: its text must never show up in a log.
const MASK_KEY: &str = "obs-test-mask-key-7f3a9c1e5b2d4f60a8c6e4b2";
/// A Redshift secret ARN: it must never show up in a log either.
const SECRET_ARN: &str =
    "arn:aws:secretsmanager:us-east-1:123456789012:secret:etl-redshift-obs-9Qk2Zt";

/// `GET path` on `addr`: `Ok((status, body))`, or the connection error.
pub(super) fn get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    let mut stream = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no status line in {response:?}")))?;
    let body = response.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    Ok((status, body.to_string()))
}

/// The samples of a Prometheus text page: series (name with labels) → value.
pub(super) fn samples(page: &str) -> BTreeMap<String, f64> {
    page.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            Some((series.to_string(), value.parse().ok()?))
        })
        .collect()
}

/// Sum of the samples of `name` whose labels include every one of `labels` (`k="v"` texts).
pub(super) fn sum(samples: &BTreeMap<String, f64>, name: &str, labels: &[&str]) -> f64 {
    samples
        .iter()
        .filter(|(series, _)| {
            let (n, l) = series.split_once('{').unwrap_or((series, ""));
            n == name
                && labels
                    .iter()
                    .all(|want| l.split([',', '}']).any(|kv| kv == *want))
        })
        .map(|(_, v)| v)
        .sum()
}

/// Dead-letter counts by reason of `stream` in the lake under `dir`.
fn lake_dead_letters(dir: &std::path::Path, stream: &str) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for path in walk(&dir.join("lake").join("dead-letters").join(stream)) {
        let Ok(body) = std::fs::read_to_string(&path) else {
            continue;
        };
        for line in body.lines().filter(|l| !l.is_empty()) {
            let v: serde_json::Value = serde_json::from_str(line).unwrap_or_default();
            let reason = v["reason"].as_str().unwrap_or("(none)").to_string();
            *out.entry(reason).or_default() += 1;
        }
    }
    out
}

/// Collects the child's stderr lines on a thread; sends the listener address when logged.
pub(super) fn collect_stderr(
    stderr: std::process::ChildStderr,
) -> (
    Arc<Mutex<Vec<String>>>,
    std::sync::mpsc::Receiver<SocketAddr>,
) {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let (tx, rx) = std::sync::mpsc::channel();
    let sink = lines.clone();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
                if let Some(addr) = v["listen"].as_str().and_then(|a| a.parse().ok()) {
                    let _ = tx.send(addr);
                }
            }
            if let Ok(mut all) = sink.lock() {
                all.push(line);
            }
        }
    });
    (lines, rx)
}

/// The collected log as one text once it contains `needle` (the reader thread may still be
/// taking the last lines off the pipe when the child has exited), or as it is after 10 s.
pub(super) async fn log_with(log: &Arc<Mutex<Vec<String>>>, needle: &str) -> String {
    let text = || log.lock().map(|l| l.join("\n")).unwrap_or_default();
    wait_for(10, needle, || Some(text()).filter(|t| t.contains(needle)))
        .await
        .unwrap_or_else(|_| text())
}

/// Polls `check` every 50 ms until it returns `Some`, for at most `secs` seconds.
pub(super) async fn wait_for<T>(
    secs: u64,
    what: &str,
    mut check: impl FnMut() -> Option<T>,
) -> Result<T, String> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = check() {
            return Ok(v);
        }
        if Instant::now() > deadline {
            return Err(format!("{what}: not reached after {secs} s"));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etl_run_exports_what_it_did_and_turns_unready_at_sigterm() -> TestResult {
    let kinesalite = etl_testbed::kinesis().await?;
    let client = kinesalite.client().await?;
    let tmp = tempfile::tempdir()?;
    let (app, call) = (
        etl_testbed::unique_name("obs-app"),
        etl_testbed::unique_name("obs-call"),
    );
    for stream in [&app, &call] {
        etl_testbed::create_stream(&client, stream, 2).await?;
    }
    let config = tmp.path().join("etl.toml");
    std::fs::write(
        &config,
        format!(
            "[observability]\nlinger_ms = 3000\n\n{}",
            toml::to_string(&BTreeMap::from([("aws", kinesalite.settings())]))?
        ),
    )?;
    let config = config.to_str().ok_or("temp path is not UTF-8")?;
    let key_file = tmp.path().join("mask.key");
    std::fs::write(&key_file, MASK_KEY)?;
    let streams = ["--app-stream", app.as_str(), "--call-stream", call.as_str()];
    let produce = etl_async(
        tmp.path(),
        &[
            &["--config", config, "produce", "--events", "4000"][..],
            &["--duplicate-rate", "0", "--malformed-rate", "0.05"],
            &streams,
        ]
        .concat(),
    )
    .await?;
    assert!(
        produce.status.success(),
        "produce: {}",
        text(&produce.stderr)
    );
    let produced_text = text(&produce.stdout);
    let produced = |kinesis: &str| -> Result<f64, String> {
        produced_text
            .lines()
            .find_map(|l| {
                l.strip_prefix(&format!("{kinesis}: "))?
                    .strip_suffix(" events")
            })
            .and_then(|n| n.parse().ok())
            .ok_or(format!("no count for {kinesis} in {produced_text}"))
    };
    let expected = [
        ("app_events", produced(&app)?),
        ("call_events", produced(&call)?),
    ];

    let consumer = tmp.path().join("consumer");
    let mut child = Command::new(env!("CARGO_BIN_EXE_etl"))
        .current_dir(tmp.path())
        .args([
            "--dir",
            consumer.to_str().ok_or("utf-8")?,
            "--config",
            config,
        ])
        .args(["--mask-key-file", key_file.to_str().ok_or("utf-8")?])
        .args(["--log", "info,etl_kinesis=debug,etl_pipeline=debug", "run"])
        .args(streams)
        .args(["--metrics-listen", "127.0.0.1:0"])
        .env_remove("ETL_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let (log, listening) = collect_stderr(child.stderr.take().ok_or("stderr")?);
    let addr = wait_for(60, "the listener's address in the log", || {
        listening.try_recv().ok()
    })
    .await?;
    wait_for(60, "/readyz 200", || {
        (get(addr, "/readyz").ok()?.0 == 200).then_some(())
    })
    .await?;
    assert_eq!(get(addr, "/healthz")?, (200, "ok\n".to_string()));

    // Every produced event is counted as read, once; the rest of the counters reconcile.
    let page = wait_for(120, "every produced event counted as read", || {
        let page = get(addr, "/metrics").ok()?.1;
        let s = samples(&page);
        expected
            .iter()
            .all(|(stream, n)| {
                sum(
                    &s,
                    "etl_records_read_total",
                    &[&format!("stream=\"{stream}\"")],
                ) == *n
            })
            .then_some(page)
    })
    .await?;
    let s = samples(&page);
    let mut metric_counts = BTreeMap::new();
    for (stream, n) in expected {
        let label = format!("stream=\"{stream}\"");
        let get = |name: &str| sum(&s, name, &[&label]);
        let (written, duplicates, filtered, dead) = (
            get("etl_records_written_total"),
            get("etl_records_duplicates_total"),
            get("etl_records_filtered_total"),
            get("etl_records_dead_lettered_total"),
        );
        assert_eq!(
            written + duplicates + filtered + dead,
            n,
            "{stream}: counters do not reconcile:\n{page}"
        );
        assert!(dead > 0.0 && written > 0.0, "{stream}: {page}");
        // The built-in transforms have no WHERE.
        assert_eq!(filtered, 0.0, "{stream}");
        // Dead letters by reason: exactly what the lake holds.
        let in_lake = lake_dead_letters(&consumer, stream);
        for (reason, k) in &in_lake {
            let r = format!("reason=\"{reason}\"");
            assert_eq!(
                sum(&s, "etl_records_dead_lettered_total", &[&label, &r]),
                *k as f64,
                "{stream} {reason}"
            );
        }
        assert_eq!(
            in_lake.values().sum::<u64>() as f64,
            dead,
            "{stream}: dead letters in the lake"
        );
        assert!(get("etl_batch_records_count") >= 1.0, "{stream}");
        assert_eq!(get("etl_batch_records_sum"), n, "{stream}");
        for stage in ["decode", "transform", "encode", "commit"] {
            let st = format!("stage=\"{stage}\"");
            assert!(
                sum(&s, "etl_stage_duration_seconds_count", &[&label, &st]) >= 1.0,
                "{stream} {stage}"
            );
        }
        assert!(
            get("etl_lake_commit_duration_seconds_count") >= 1.0,
            "{stream}"
        );
        assert_eq!(get("etl_lake_commit_failures_total"), 0.0, "{stream}");
        metric_counts.insert(stream, written);
    }
    // Lag of each of the 2 + 2 shards, the readers' counters, the process gauges.
    let shards = |name: &str| {
        s.keys()
            .filter(|k| k.starts_with(&format!("{name}{{")))
            .count()
    };
    let lag_series = wait_for(30, "lag gauges of the 4 shards", || {
        let s = samples(&get(addr, "/metrics").ok()?.1);
        let n = s
            .keys()
            .filter(|k| k.starts_with("etl_kinesis_millis_behind_latest{"))
            .count();
        (n == 4).then_some(n)
    })
    .await?;
    assert_eq!(lag_series, 4);
    assert!(shards("etl_kinesis_get_records_calls_total") == 2, "{page}");
    assert!(
        sum(&s, "etl_process_resident_memory_bytes", &[]) > 1e6,
        "{page}"
    );
    assert_eq!(sum(&s, "etl_ready", &[]), 1.0, "{page}");

    // SIGTERM: /readyz answers 503 at once, while the process finishes its batches and lingers.
    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()?;
    assert!(kill.success());
    let after_term = wait_for(10, "/readyz 503 after SIGTERM", || {
        match get(addr, "/readyz") {
            Ok((503, body)) => Some(Ok(body)),
            Ok(_) => None,
            Err(e) => Some(Err(format!(
                "the listener went away before /readyz said 503: {e}"
            ))),
        }
    })
    .await??;
    assert_eq!(after_term, "not ready: stopping\n");
    let (status, last) = get(addr, "/metrics")?;
    assert_eq!(status, 200);
    assert_eq!(sum(&samples(&last), "etl_ready", &[]), 0.0, "{last}");
    let status = wait_for(60, "etl run to exit", || child.try_wait().ok().flatten()).await?;
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .ok_or("stdout")?
        .read_to_string(&mut stdout)?;
    assert!(
        status.success(),
        "etl run after SIGTERM: {status:?}\n{stdout}"
    );
    for (stream, written) in &metric_counts {
        let (rows, _) = counts(&consumer, stream)?;
        assert_eq!(
            rows as f64, *written,
            "{stream}: rows in the lake vs etl_records_written_total"
        );
        assert!(stdout.contains(&format!("{stream}: read ")), "{stdout}");
    }

    // The log: JSON lines (stderr is a pipe), no colour codes, fields on the events, no secret.
    std::thread::sleep(Duration::from_millis(200));
    let lines = log.lock().map_err(|_| "log lock")?.clone();
    let all = lines.join("\n");
    assert!(!all.contains('\u{1b}'), "escape codes in the log:\n{all}");
    assert!(!all.contains(MASK_KEY), "the masking key is in the log");
    let events: Vec<serde_json::Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).map_err(|e| format!("not a JSON line ({e}): {l}")))
        .collect::<Result<_, _>>()?;
    let committed: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| {
            e["message"] == "batch committed"
                && e["target"]
                    .as_str()
                    .is_some_and(|t| t.starts_with("etl_kinesis"))
        })
        .collect();
    assert!(
        committed
            .iter()
            .all(|e| e["shard"].is_string() && e["n"].is_u64() && e["stream"].is_string()),
        "{committed:?}"
    );
    assert!(!committed.is_empty(), "no Kinesis commit events in:\n{all}");
    assert!(
        events.iter().any(|e| e["message"] == "batch committed"
            && e["batch"].is_string()
            && e["span"]["stream"].is_string()),
        "no pipeline commit event with its batch id and stream span in:\n{all}"
    );
    assert!(
        events
            .iter()
            .any(|e| e["message"] == "stopping: /readyz answers 503"),
        "{all}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mask_key_and_the_redshift_secret_arn_stay_out_of_the_logs_even_at_trace() -> TestResult
{
    let moto = etl_testbed::moto().await?;
    let pg = etl_testbed::postgres().await?;
    let db = pg.fresh_database("obs_secret").await?;
    let standin = etl_redshift_standin::RedshiftDataStandIn::start(
        etl_redshift_standin::StandInConfig::new(pg.port()),
    )
    .await?;
    let tmp = tempfile::tempdir()?;
    let config = tmp.path().join("etl.toml");
    std::fs::write(
        &config,
        toml::to_string(&BTreeMap::from([("aws", moto.settings())]))?,
    )?;
    let key_file = tmp.path().join("mask.key");
    std::fs::write(&key_file, MASK_KEY)?;
    let migrate = etl_async(
        tmp.path(),
        &[
            "--config",
            config.to_str().ok_or("utf-8")?,
            "--mask-key-file",
            key_file.to_str().ok_or("utf-8")?,
            "--log",
            "trace",
            "warehouse",
            "migrate",
            "--workgroup",
            "obs-wg",
            "--secret-arn",
            SECRET_ARN,
            "--database",
            db.name.as_str(),
            "--redshift-endpoint-url",
            standin.endpoint(),
        ],
    )
    .await?;
    let stderr = text(&migrate.stderr);
    assert!(migrate.status.success(), "migrate: {stderr}");
    assert!(
        stderr.lines().count() > 10,
        "debug logging produced almost nothing:\n{stderr}"
    );
    for secret in [MASK_KEY, SECRET_ARN, "etl-redshift-obs-9Qk2Zt"] {
        assert!(!stderr.contains(secret), "{secret} is in the log");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etl_warehouse_load_follow_exports_loads_and_pending_batches() -> TestResult {
    let moto = etl_testbed::moto().await?;
    let clients = moto.clients().await?;
    let bucket = etl_testbed::unique_name("obs-wh");
    clients.s3().create_bucket().bucket(&bucket).send().await?;
    let pg = etl_testbed::postgres().await?;
    let db = pg.fresh_database("obs_wh").await?;
    let mut standin_config = etl_redshift_standin::StandInConfig::new(pg.port());
    standin_config.s3 = Some(clients.s3());
    let standin = etl_redshift_standin::RedshiftDataStandIn::start(standin_config).await?;
    let tmp = tempfile::tempdir()?;
    let config = tmp.path().join("etl.toml");
    std::fs::write(
        &config,
        format!(
            "[lake]\nlocation = \"s3://{bucket}/events\"\n\n{}",
            toml::to_string(&BTreeMap::from([("aws", moto.settings())]))?
        ),
    )?;
    let config = config.to_str().ok_or("temp path is not UTF-8")?;
    let gen = etl_async(
        tmp.path(),
        &["generate", "--events", "2000", "--out", "input"],
    )
    .await?;
    assert!(gen.status.success(), "generate: {}", text(&gen.stderr));
    let mut batches = BTreeMap::new();
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
        let n = summary["batches"].as_f64().ok_or("batches")?;
        assert!(n >= 1.0, "{summary}");
        batches.insert(stream, n);
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

    let mut child = Command::new(env!("CARGO_BIN_EXE_etl"))
        .current_dir(tmp.path())
        .args([
            "--dir",
            tmp.path().to_str().ok_or("utf-8")?,
            "--config",
            config,
        ])
        .args([
            "--log",
            "info",
            "warehouse",
            "load",
            "--follow",
            "--interval-secs",
            "1",
        ])
        .args(target)
        .args([
            "--iam-role-arn",
            "arn:aws:iam::123456789012:role/lake-reader",
        ])
        .args(["--metrics-listen", "127.0.0.1:0"])
        .env_remove("ETL_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    let (log, listening) = collect_stderr(child.stderr.take().ok_or("stderr")?);
    let addr = wait_for(60, "the listener's address in the log", || {
        listening.try_recv().ok()
    })
    .await?;
    // Every committed batch is loaded once; nothing is left pending, nothing failed.
    let page = wait_for(120, "every batch loaded", || {
        let page = get(addr, "/metrics").ok()?.1;
        let s = samples(&page);
        batches
            .iter()
            .all(|(table, n)| {
                let t = format!("table=\"{table}\"");
                sum(&s, "etl_redshift_batches_loaded_total", &[&t]) == *n
                    && sum(&s, "etl_redshift_load_duration_seconds_count", &[&t]) >= 1.0
                    && sum(&s, "etl_redshift_batches_pending", &[&t]) == 0.0
            })
            .then_some(page)
    })
    .await?;
    let s = samples(&page);
    for table in batches.keys() {
        let t = format!("table=\"{table}\"");
        assert_eq!(
            sum(&s, "etl_redshift_load_failures_total", &[&t]),
            0.0,
            "{page}"
        );
        assert!(
            page.contains(&format!(
                "etl_redshift_load_failures_total{{{t},kind=\"transient\"}} 0"
            )),
            "{page}"
        );
    }
    assert_eq!(get(addr, "/readyz")?.0, 200);
    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()?;
    assert!(kill.success());
    let status = wait_for(60, "the loader to exit", || child.try_wait().ok().flatten()).await?;
    let log = log_with(&log, "stopping: /readyz answers 503").await;
    assert!(
        status.success(),
        "load --follow after SIGTERM: {status:?}\n{log}"
    );
    assert!(log.contains("stopping: /readyz answers 503"), "{log}");
    Ok(())
}

#[test]
fn logs_on_a_pipe_are_json_lines_by_default_and_text_without_colour_codes_on_request() -> TestResult
{
    let tmp = tempfile::tempdir()?;
    // The demo-key warning is logged by every command run without --mask-key-file.
    let auto = super::etl(tmp.path(), &["query", "SELECT 1 AS one"]);
    assert!(auto.status.success(), "{}", text(&auto.stderr));
    let line = text(&auto.stderr);
    let event: serde_json::Value = serde_json::from_str(line.lines().next().ok_or("no log")?)?;
    assert_eq!(event["level"], "WARN", "{line}");
    assert_eq!(event["target"], "etl::setup", "{line}");
    let plain = super::etl(
        tmp.path(),
        &["--log-format", "text", "query", "SELECT 1 AS one"],
    );
    let line = text(&plain.stderr);
    assert!(
        line.contains(" WARN etl::setup: phone numbers are masked"),
        "{line}"
    );
    assert!(!line.contains('\u{1b}'), "colour codes on a pipe: {line:?}");
    Ok(())
}
