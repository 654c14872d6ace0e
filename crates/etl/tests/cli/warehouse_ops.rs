//! Running the warehouse side in production (issue 12): `etl run --load` as one service, a
//! table stopped by data that cannot load (seen in `etl warehouse status` and the metric,
//! fixed by `etl warehouse migrate` widening the column), and grouped loads surviving kill -9
//! of the loader ten times. Against moto (S3), kinesalite and PostgreSQL behind the Data API
//! stand-in; `[warehouse.redshift]` of the configuration file names the target.

use super::observe::{collect_stderr, get, samples, sum, wait_for};
use super::{etl_async, text, TestResult};
use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::Duration;

/// An S3 lake in a fresh moto bucket, a fresh database behind a Data API stand-in, and the
/// configuration file naming both.
pub(super) struct Bed {
    pub(super) tmp: tempfile::TempDir,
    pub(super) config: String,
    pub(super) db: etl_testbed::PgDatabase,
    pub(super) standin: etl_redshift_standin::RedshiftDataStandIn,
}

async fn bed(prefix: &str, extra_config: &str) -> Result<Bed, Box<dyn std::error::Error>> {
    bed_with(prefix, "", extra_config).await
}

/// [`bed`] with `lake_config` lines added to its `[lake]` section.
pub(super) async fn bed_with(
    prefix: &str,
    lake_config: &str,
    extra_config: &str,
) -> Result<Bed, Box<dyn std::error::Error>> {
    let moto = etl_testbed::moto().await?;
    let clients = moto.clients().await?;
    let bucket = etl_testbed::unique_name(prefix);
    clients.s3().create_bucket().bucket(&bucket).send().await?;
    let pg = etl_testbed::postgres().await?;
    let db = pg.fresh_database(&prefix.replace('-', "_")).await?;
    let mut standin_config = etl_redshift_standin::StandInConfig::new(pg.port());
    standin_config.s3 = Some(clients.s3());
    let standin = etl_redshift_standin::RedshiftDataStandIn::start(standin_config).await?;
    let tmp = tempfile::tempdir()?;
    let config = tmp.path().join("etl.toml");
    std::fs::write(
        &config,
        format!(
            "[lake]\nlocation = \"s3://{bucket}/events\"\n{lake_config}\n\n\
             [warehouse.redshift]\ncluster_id = \"test-cluster\"\ndb_user = \"etl\"\n\
             database = \"{}\"\niam_role_arn = \"arn:aws:iam::123456789012:role/lake-reader\"\n\
             {extra_config}\n\n{}",
            db.name,
            toml::to_string(&BTreeMap::from([("aws", moto.settings())]))?
        ),
    )?;
    let config = config.to_str().ok_or("temp path is not UTF-8")?.to_string();
    Ok(Bed {
        tmp,
        config,
        db,
        standin,
    })
}

impl Bed {
    /// `etl --config <bed> <args>`, Data API endpoint appended for warehouse commands.
    pub(super) async fn etl(
        &self,
        args: &[&str],
    ) -> Result<std::process::Output, Box<dyn std::error::Error>> {
        let mut all = vec!["--config", self.config.as_str()];
        all.extend_from_slice(args);
        if args.first() == Some(&"warehouse") {
            all.extend(["--redshift-endpoint-url", self.standin.endpoint()]);
        }
        etl_async(self.tmp.path(), &all).await
    }

    /// Runs `args` and returns stdout; fails with stderr unless it succeeded.
    pub(super) async fn ok(&self, args: &[&str]) -> Result<String, Box<dyn std::error::Error>> {
        let out = self.etl(args).await?;
        if !out.status.success() {
            return Err(format!("etl {args:?}: {}", text(&out.stderr)).into());
        }
        Ok(text(&out.stdout))
    }

    /// Generates `events` and ingests each stream; returns the written counts.
    async fn ingest(
        &self,
        events: &str,
    ) -> Result<BTreeMap<&'static str, i64>, Box<dyn std::error::Error>> {
        self.ok(&["generate", "--events", events, "--out", "input"])
            .await?;
        let mut written = BTreeMap::new();
        for stream in ["app_events", "call_events"] {
            let file = self
                .tmp
                .path()
                .join("input")
                .join(format!("{stream}.ndjson"));
            let file = file.to_str().ok_or("utf-8")?;
            let out = self
                .ok(&["ingest", "--stream", stream, "--json", file])
                .await?;
            let summary: serde_json::Value = serde_json::from_str(&out)?;
            written.insert(stream, summary["written"].as_i64().ok_or("written")?);
        }
        Ok(written)
    }

    /// (rows, distinct event ids) of `table` in the warehouse.
    pub(super) async fn counts(
        &self,
        table: &str,
    ) -> Result<(i64, i64), Box<dyn std::error::Error>> {
        let row = self
            .db
            .client
            .query_one(
                &format!("SELECT count(*), count(DISTINCT event_id) FROM analytics.{table}"),
                &[],
            )
            .await?;
        Ok((row.get(0), row.get(1)))
    }

    /// (ledger rows, distinct (table, batch) pairs).
    async fn ledger(&self) -> Result<(i64, i64), Box<dyn std::error::Error>> {
        let row = self
            .db
            .client
            .query_one(
                "SELECT count(*), count(DISTINCT table_name || '/' || batch_id) FROM analytics.etl_load_ledger",
                &[],
            )
            .await?;
        Ok((row.get(0), row.get(1)))
    }

    /// `etl warehouse status --json`, by table.
    async fn status(
        &self,
    ) -> Result<BTreeMap<String, serde_json::Value>, Box<dyn std::error::Error>> {
        let out = self.ok(&["warehouse", "status", "--json"]).await?;
        let all: Vec<serde_json::Value> = serde_json::from_str(&out)?;
        Ok(all
            .into_iter()
            .filter_map(|t| Some((t["table"].as_str()?.to_string(), t)))
            .collect())
    }
}

/// `<stream>: read N = written W …` lines of a run summary: stream → W.
fn written_in(summary: &str) -> BTreeMap<String, i64> {
    summary
        .lines()
        .filter_map(|l| {
            let (stream, rest) = l.split_once(": read ")?;
            let written = rest.split_once("= written ")?.1.split(' ').next()?;
            Some((stream.to_string(), written.parse().ok()?))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etl_run_with_load_consumes_and_loads_every_event_once() -> TestResult {
    let bed = bed("cli-runload", "").await?;
    let kinesalite = etl_testbed::kinesis().await?;
    let kinesis = kinesalite.client().await?;
    let (app, call) = (
        etl_testbed::unique_name("runload-app"),
        etl_testbed::unique_name("runload-call"),
    );
    for stream in [&app, &call] {
        etl_testbed::create_stream(&kinesis, stream, 2).await?;
    }
    let kinesis_args = ["--aws-endpoint-url", kinesalite.endpoint()];
    let streams = ["--app-stream", app.as_str(), "--call-stream", call.as_str()];
    bed.ok(&["warehouse", "migrate"]).await?;
    bed.ok(&[
        &["produce", "--events", "3000"][..],
        &streams,
        &kinesis_args,
    ]
    .concat())
        .await?;
    let run = bed
        .ok(&[
            &["run", "--until-caught-up", "--load"][..],
            &["--redshift-endpoint-url", bed.standin.endpoint()],
            &streams,
            &kinesis_args,
        ]
        .concat())
        .await?;
    let written = written_in(&run);
    assert_eq!(written.len(), 2, "{run}");
    assert!(
        run.lines()
            .any(|l| l.ends_with("retries") && !l.starts_with("0 batches loaded")),
        "the loader's summary: {run}"
    );
    for (table, n) in &written {
        assert!(*n > 500, "{table}: {n}");
        assert_eq!(
            bed.counts(table).await?,
            (*n, *n),
            "{table} in the warehouse"
        );
    }
    let (rows, distinct) = bed.ledger().await?;
    assert_eq!(rows, distinct, "a ledger row per batch, once");
    for (table, s) in bed.status().await? {
        assert_eq!(s["pending_batches"], 0, "{table}: {s}");
        assert!(s["failure"].is_null(), "{table}: {s}");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_column_narrower_than_the_schema_stops_its_table_visibly_until_migrate_widens_it(
) -> TestResult {
    let bed = bed("cli-narrow", "").await?;
    let written = bed.ingest("3000").await?;
    bed.ok(&["warehouse", "migrate"]).await?;
    // An older deployment: app_events.event_type was created narrower than the schema now
    // declares (views read the column, so they go first, as an operator would do it).
    let client = &bed.db.client;
    for row in client
        .query(
            "SELECT table_name::text FROM information_schema.views WHERE table_schema = 'analytics'",
            &[],
        )
        .await?
    {
        let view: String = row.get(0);
        client
            .batch_execute(&format!("DROP VIEW IF EXISTS analytics.\"{view}\" CASCADE"))
            .await?;
    }
    client
        .batch_execute("ALTER TABLE analytics.app_events ALTER COLUMN event_type TYPE VARCHAR(4)")
        .await?;

    let mut child = Command::new(env!("CARGO_BIN_EXE_etl"))
        .current_dir(bed.tmp.path())
        .args(["--dir", bed.tmp.path().to_str().ok_or("utf-8")?])
        .args([
            "--config",
            &bed.config,
            "--log",
            "info",
            "warehouse",
            "load",
        ])
        .args(["--follow", "--interval-secs", "1"])
        .args(["--redshift-endpoint-url", bed.standin.endpoint()])
        .args(["--metrics-listen", "127.0.0.1:0"])
        .env_remove("ETL_LOG")
        .env_remove("ETL_CONFIG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    let (log, listening) = collect_stderr(child.stderr.take().ok_or("stderr")?);
    let addr = wait_for(60, "the listener's address in the log", || {
        listening.try_recv().ok()
    })
    .await?;
    let page = wait_for(120, "app_events stopped, call_events loaded", || {
        let s = samples(&get(addr, "/metrics").ok()?.1);
        let app = ["table=\"app_events\"", "kind=\"permanent\""];
        let call = "table=\"call_events\"";
        (sum(&s, "etl_redshift_load_failures_total", &app) >= 1.0
            && sum(&s, "etl_redshift_batches_pending", &[call]) == 0.0
            && sum(&s, "etl_redshift_batches_loaded_total", &[call]) >= 1.0)
            .then_some(s)
    })
    .await?;
    assert_eq!(
        sum(
            &page,
            "etl_redshift_batches_loaded_total",
            &["table=\"app_events\""]
        ),
        0.0,
        "{page:?}"
    );
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()?;
    let status = wait_for(60, "the loader to exit", || child.try_wait().ok().flatten()).await?;
    let log = super::observe::log_with(&log, "app_events").await;
    assert!(!status.success(), "a stopped table fails the run: {log}");
    assert!(log.contains("app_events"), "{log}");

    let tables = bed.status().await?;
    let failure = &tables["app_events"]["failure"];
    assert!(
        failure["message"]
            .as_str()
            .is_some_and(|m| m.contains("value too long")),
        "{failure}"
    );
    assert!(tables["app_events"]["pending_batches"].as_u64() >= Some(1));
    assert_eq!(tables["call_events"]["pending_batches"], 0);
    assert_eq!(bed.counts("app_events").await?, (0, 0));

    // The documented way out: migrate (widens the column to the schema's, recreates the
    // views), then load: every app event once.
    bed.ok(&["warehouse", "migrate"]).await?;
    let width: i32 = client
        .query_one(
            "SELECT CAST(character_maximum_length AS INTEGER) FROM information_schema.columns \
             WHERE table_schema = 'analytics' AND table_name = 'app_events' AND column_name = 'event_type'",
            &[],
        )
        .await?
        .get(0);
    assert!(width > 4, "migrate widened event_type: {width}");
    bed.ok(&["warehouse", "load"]).await?;
    for (table, n) in &written {
        assert_eq!(bed.counts(table).await?, (*n, *n), "{table}");
    }
    for (table, s) in bed.status().await? {
        assert_eq!(s["pending_batches"], 0, "{table}: {s}");
        assert!(s["failure"].is_null(), "{table}: {s}");
    }
    let views: i64 = client
        .query_one(
            "SELECT count(*) FROM information_schema.views WHERE table_schema = 'analytics'",
            &[],
        )
        .await?
        .get(0);
    assert_eq!(views as usize, etl_warehouse::embedded_views()?.len());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grouped_loads_killed_ten_times_mid_transaction_load_every_event_once() -> TestResult {
    let bed = bed("cli-kill9", "[pipeline]\nbatch_max_records = 40").await?;
    let written = bed.ingest("6000").await?;
    bed.ok(&["warehouse", "migrate"]).await?;
    let mut interrupted = 0;
    let mut progress = Vec::new();
    for round in 0u64..10 {
        let mut child = Command::new(env!("CARGO_BIN_EXE_etl"))
            .current_dir(bed.tmp.path())
            .args(["--dir", bed.tmp.path().to_str().ok_or("utf-8")?])
            .args(["--config", &bed.config, "warehouse", "load"])
            .args(["--group-max-batches", "5"])
            .args(["--redshift-endpoint-url", bed.standin.endpoint()])
            .env_remove("ETL_CONFIG")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        // 0.4 … 1.6 s: start-up, then one to a few transactions.
        tokio::time::sleep(Duration::from_millis(400 + (round * 7919) % 1200)).await;
        child.kill()?; // SIGKILL
        let _ = child.wait()?;
        let (rows, distinct) = bed.ledger().await?;
        assert_eq!(
            rows, distinct,
            "a batch in the ledger twice after kill {round}"
        );
        progress.push(rows);
        if rows > 0 {
            interrupted += 1;
        }
    }
    bed.ok(&["warehouse", "load"]).await?;
    let (total, distinct) = bed.ledger().await?;
    assert_eq!(total, distinct);
    assert!(
        interrupted >= 1 && progress.iter().all(|p| *p < total),
        "the kills interrupted the loading part way: {progress:?} of {total}"
    );
    for (table, n) in &written {
        assert_eq!(
            bed.counts(table).await?,
            (*n, *n),
            "{table}: every event once"
        );
    }
    let tables = bed.status().await?;
    let loaded: u64 = tables
        .values()
        .map(|s| s["loaded_batches"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(loaded as i64, total, "{tables:?}");
    for (table, s) in &tables {
        assert_eq!(s["pending_batches"], 0, "{table}: {s}");
    }
    Ok(())
}

/// Marks in `seen` the seconds (ticks) whose events are all in the warehouse, with how long
/// after their put.
async fn poll(
    db: &etl_testbed::PgDatabase,
    put_at: &[std::time::Instant],
    seen: &mut [Option<f64>],
) -> Result<(), Box<dyn std::error::Error>> {
    let rows = db
        .client
        .query(
            "SELECT CAST(split_part(event_id, '-', 2) AS INTEGER), count(*) \
             FROM analytics.app_events GROUP BY 1",
            &[],
        )
        .await?;
    for row in rows {
        let (tick, n): (i32, i64) = (row.get(0), row.get(1));
        let tick = tick as usize;
        if n == 100 && tick < put_at.len() && seen[tick].is_none() {
            seen[tick] = Some(put_at[tick].elapsed().as_secs_f64());
        }
    }
    Ok(())
}

/// Freshness from the put on Kinesis to visible in Redshift (the stand-in) with `etl run
/// --load` at default settings: 100 app events a second for 60 s on a 2-shard stream, each
/// second's events stamped with their put time; a poller sees when each second is complete.
/// Run: `cargo test --workspace --test cli -- --ignored --nocapture freshness_kinesis`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement (~80 s), run by hand"]
async fn freshness_kinesis_put_to_visible_with_run_load() -> TestResult {
    use etl_aws::kinesis::primitives::Blob;
    use etl_aws::kinesis::types::PutRecordsRequestEntry;
    const PER_TICK: usize = 100;
    const TICKS: usize = 60;
    let bed = bed("cli-fresh", "").await?;
    let kinesalite = etl_testbed::kinesis().await?;
    let kinesis = kinesalite.client().await?;
    let app = etl_testbed::unique_name("fresh-app");
    etl_testbed::create_stream(&kinesis, &app, 2).await?;
    bed.ok(&["warehouse", "migrate"]).await?;
    let mut child = Command::new(env!("CARGO_BIN_EXE_etl"))
        .current_dir(bed.tmp.path())
        .args(["--dir", bed.tmp.path().to_str().ok_or("utf-8")?])
        .args(["--config", &bed.config, "run", "--load"])
        .args(["--redshift-endpoint-url", bed.standin.endpoint()])
        .args(["--aws-endpoint-url", kinesalite.endpoint()])
        .args(["--stream", &format!("app_events={app}")])
        .args(["--metrics-listen", "off"])
        .env_remove("ETL_CONFIG")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let started = std::time::Instant::now();
    let mut put_at = Vec::new();
    let mut seen = vec![None; TICKS];
    for tick in 0..TICKS {
        let stamp = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let entries = (0..PER_TICK)
            .map(|i| {
                let event = format!(
                    "{{\"event_id\":\"f-{tick}-{i}\",\"event_type\":\"message_sent\",\
                     \"occurred_at\":\"{stamp}\",\"user_id\":\"u-{i}\",\"account_id\":\"acc-1\",\
                     \"platform\":\"ios\",\"properties\":{{}}}}"
                );
                PutRecordsRequestEntry::builder()
                    .data(Blob::new(event.into_bytes()))
                    .partition_key(format!("k{i}"))
                    .build()
            })
            .collect::<Result<Vec<_>, _>>()?;
        put_at.push(std::time::Instant::now());
        let out = kinesis
            .put_records()
            .stream_name(&app)
            .set_records(Some(entries))
            .send()
            .await?;
        assert_eq!(out.failed_record_count(), Some(0));
        while started.elapsed() < Duration::from_secs(tick as u64 + 1) {
            poll(&bed.db, &put_at, &mut seen).await?;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while seen.iter().any(Option::is_none) && std::time::Instant::now() < deadline {
        poll(&bed.db, &put_at, &mut seen).await?;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    child.kill()?;
    let _ = child.wait()?;
    let mut latencies: Vec<f64> = seen
        .into_iter()
        .collect::<Option<Vec<_>>>()
        .ok_or("a second never became visible")?;
    latencies.sort_by(f64::total_cmp);
    let pct = |p: f64| {
        latencies[((latencies.len() as f64 * p).ceil() as usize).clamp(1, latencies.len()) - 1]
    };
    eprintln!(
        "freshness put on Kinesis -> visible in Redshift (etl run --load, defaults, {PER_TICK} events/s, {TICKS} s): p50 {:.1} s, p95 {:.1} s, max {:.1} s",
        pct(0.5),
        pct(0.95),
        pct(1.0)
    );
    Ok(())
}
