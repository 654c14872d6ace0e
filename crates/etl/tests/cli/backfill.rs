//! `etl backfill` after a transform change (issue 15): `call_events` gains `duration_s`, a column
//! the transform derives from `duration_ms` (a new version of a temp copy of the schema and the
//! transform). The current version consumed the "old" events (in the backfill's range) and the
//! "mid" events (after it); then the next version is deployed: its `etl run --load` consumes
//! "late" events **while** its backfill re-processes the range from the raw archive. Afterwards, in the lake (local engine
//! over S3 + Glue) and in Redshift (the stand-in): every event once, the old events carry the new
//! column, the mid events are untouched (NULL), the late ones have it from the live consumer, and
//! the ledger records re-loads apart from first loads. A second identical backfill changes no
//! object and no warehouse count. The other tests: Kinesis AT_TIMESTAMP, raw-archive slices,
//! historical files (slices, kill -9 and resume, gzip in S3), on `app_events` (+ `campaign`).

use super::evolution_e2e::{copy_with, next_version, put_events, put_json, version_3};
use super::warehouse_ops::{bed_with, Bed};
use super::TestResult;
use std::collections::BTreeMap;

fn bucket(bed: &Bed) -> Result<String, Box<dyn std::error::Error>> {
    let text = std::fs::read_to_string(&bed.config)?;
    let start = text.find("s3://").ok_or("no s3 location")? + 5;
    let end = text[start..].find('/').ok_or("no prefix")? + start;
    Ok(text[start..end].to_string())
}

/// Every object of the bucket: key → (size, ETag).
async fn objects(
    s3: &etl_aws::s3::Client,
    bucket: &str,
) -> Result<BTreeMap<String, (i64, String)>, Box<dyn std::error::Error>> {
    let mut out = BTreeMap::new();
    let mut token = None;
    loop {
        let page = s3
            .list_objects_v2()
            .bucket(bucket)
            .set_continuation_token(token)
            .send()
            .await?;
        for o in page.contents() {
            out.insert(
                o.key().unwrap_or_default().to_string(),
                (
                    o.size().unwrap_or_default(),
                    o.e_tag().unwrap_or_default().to_string(),
                ),
            );
        }
        match page.next_continuation_token() {
            Some(t) => token = Some(t.to_string()),
            None => return Ok(out),
        }
    }
}

/// Which stream a history is made of, and the column its next version adds.
#[derive(Clone, Copy)]
enum Kind {
    /// `app_events`; version+1 adds the field `campaign` (from the events).
    App,
    /// `call_events`; version+1 adds `duration_s`, derived in the transform from `duration_ms`.
    Call,
}

impl Kind {
    fn table(self) -> &'static str {
        match self {
            Kind::App => "app_events",
            Kind::Call => "call_events",
        }
    }

    fn column(self) -> &'static str {
        match self {
            Kind::App => "campaign",
            Kind::Call => "duration_s",
        }
    }

    async fn put(
        self,
        kinesis: &etl_aws::kinesis::Client,
        stream: &str,
        prefix: &str,
        n: usize,
    ) -> TestResult {
        match self {
            Kind::App => put_events(kinesis, stream, prefix, n).await,
            Kind::Call => put_calls(kinesis, stream, prefix, n).await,
        }
    }

    /// The `--schemas`/`--transform-sql`/`--views` arguments of the next version.
    fn next(self, bed: &Bed) -> Result<Vec<String>, Box<dyn std::error::Error>> {
        match self {
            Kind::App => version_3(bed),
            Kind::Call => call_version_with_duration_s(bed),
        }
    }
}

/// Ended calls `<prefix>-<i>` of `i` seconds and 500 ms each, in one hour.
async fn put_calls(
    kinesis: &etl_aws::kinesis::Client,
    stream: &str,
    prefix: &str,
    n: usize,
) -> TestResult {
    put_json(kinesis, stream, prefix, n, |i| {
        format!(
            "{{\"event_id\":\"{prefix}-{i:04}\",\"call_id\":\"c-{prefix}-{i}\",\
             \"event_type\":\"call_ended\",\"occurred_at\":\"2026-11-03T10:{:02}:00.000Z\",\
             \"account_id\":\"acc-1\",\"caller\":\"+14155550101\",\"callee\":\"+14155550102\",\
             \"direction\":\"outbound\",\"channel\":\"voice\",\"duration_ms\":{}}}",
            i % 60,
            i * 1000 + 500
        )
    })
    .await
}

/// The next version of `call_events`: the optional field `duration_s`, which the transform
/// derives from `duration_ms` (events never carry it).
fn call_version_with_duration_s(bed: &Bed) -> Result<Vec<String>, Box<dyn std::error::Error>> {
    let root = bed.tmp.path().join("call-next");
    let schemas = copy_with("schemas", &root.join("schemas"), "call_events.toml", |t| {
        format!(
            "{}\n[[fields]]\nname = \"duration_s\"\ntype = \"double\"\n\
             doc = \"Talk time in seconds (derived from duration_ms).\"\n",
            next_version(t)
        )
    })?;
    let sql = copy_with(
        "queries/transform",
        &root.join("transform"),
        "call_events.sql",
        |t| {
            t.replacen(
                "    extras,\n",
                "    CAST(duration_ms AS DOUBLE) / 1000.0 AS duration_s,\n    extras,\n",
                1,
            )
        },
    )?;
    let text = |p: std::path::PathBuf| p.to_str().map(str::to_string).ok_or("utf-8");
    Ok(vec![
        "--schemas".into(),
        text(schemas)?,
        "--transform-sql".into(),
        text(sql)?,
    ])
}

/// `(prefix, events, with the new column)` per event-id prefix, from Redshift.
async fn warehouse_by_prefix(
    bed: &Bed,
    kind: Kind,
) -> Result<Vec<(String, i64, i64)>, Box<dyn std::error::Error>> {
    Ok(bed
        .db
        .client
        .query(
            &format!(
                "SELECT split_part(event_id, '-', 1), count(*), count({}) \
                 FROM analytics.{} GROUP BY 1 ORDER BY 1",
                kind.column(),
                kind.table()
            ),
            &[],
        )
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect())
}

/// `prefix,events,ids,with the new column` lines per event-id prefix, from the lake (local
/// engine, `version` arguments), after the CSV header.
async fn lake_by_prefix(
    bed: &Bed,
    kind: Kind,
    version: &[&str],
) -> Result<String, Box<dyn std::error::Error>> {
    let sql = format!(
        "SELECT split_part(event_id, '-', 1) AS p, COUNT(*) AS n, COUNT(DISTINCT event_id) AS ids, \
         COUNT({}) AS c FROM {} GROUP BY 1 ORDER BY 1",
        kind.column(),
        kind.table()
    );
    bed.ok(&[&["query", sql.as_str(), "--format", "csv"][..], version].concat())
        .await
}

fn millis_now() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// A consumer's history on kinesalite: version 2 of `etl run --load` (plus `run_extra`)
/// consumed 300 "old" events, then, after `to`, 100 "mid" events; `[from, to)` is the range
/// of the old events' arrival.
struct History {
    bed: Bed,
    kinesalite: &'static etl_testbed::Kinesalite,
    kinesis: etl_aws::kinesis::Client,
    stream: String,
    run: Vec<String>,
    from: String,
    to: String,
}

impl History {
    async fn new(
        kind: Kind,
        prefix: &str,
        lake_config: &str,
        run_extra: &[&str],
    ) -> Result<Self, Box<dyn std::error::Error>> {
        let bed = bed_with(prefix, lake_config, "").await?;
        let kinesalite = etl_testbed::kinesis().await?;
        let kinesis = kinesalite.client().await?;
        let stream = etl_testbed::unique_name(prefix);
        etl_testbed::create_stream(&kinesis, &stream, 2).await?;
        let mut run: Vec<String> = [
            "run",
            "--until-caught-up",
            "--load",
            "--redshift-endpoint-url",
            bed.standin.endpoint(),
            "--aws-endpoint-url",
            kinesalite.endpoint(),
            "--stream",
            &format!("{}={stream}", kind.table()),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        run.extend(run_extra.iter().map(|s| s.to_string()));
        bed.ok(&["warehouse", "migrate"]).await?;
        let from = rfc3339(millis_now() - 60_000);
        let history = History {
            bed,
            kinesalite,
            kinesis,
            stream,
            run,
            from,
            to: String::new(),
        };
        kind.put(&history.kinesis, &history.stream, "old", 300)
            .await?;
        history.bed.ok(&history.run()).await?;
        tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
        let to = rfc3339(millis_now());
        tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
        kind.put(&history.kinesis, &history.stream, "mid", 100)
            .await?;
        history.bed.ok(&history.run()).await?;
        assert_eq!(history.bed.counts(kind.table()).await?, (400, 400));
        Ok(History { to, ..history })
    }

    fn run(&self) -> Vec<&str> {
        self.run.iter().map(String::as_str).collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backfill_after_a_transform_change_replaces_the_range_in_lake_and_warehouse_once(
) -> TestResult {
    let database = etl_testbed::unique_ident("backfill");
    let kind = Kind::Call;
    let h = History::new(
        kind,
        "cli-backfill",
        &format!("glue_database = \"{database}\""),
        &[],
    )
    .await?;
    let (bed, kinesis, stream, from, to) = (&h.bed, &h.kinesis, &h.stream, &h.from, &h.to);
    let run = h.run();
    let bucket = bucket(bed)?;
    let s3 = etl_testbed::moto().await?.clients().await?.s3();

    // The next version deployed: the live consumer takes the late events while the backfill runs.
    let v3 = kind.next(bed)?;
    let v3: Vec<&str> = v3.iter().map(String::as_str).collect();
    let backfill: Vec<&str> = [
        &v3[..],
        &[
            "backfill",
            "--stream",
            kind.table(),
            "--from",
            from,
            "--to",
            to,
            "--json",
        ],
    ]
    .concat();
    let dry = bed.ok(&[&backfill[..], &["--dry-run"]].concat()).await?;
    assert!(
        dry.contains("raw objects") && dry.contains("records expected: 300"),
        "{dry}"
    );
    kind.put(kinesis, stream, "late", 100).await?;
    let live: Vec<&str> = [&v3[..], &run[..]].concat();
    let (live, first) = tokio::join!(bed.ok(&live), bed.ok(&backfill));
    live?;
    let first: serde_json::Value = serde_json::from_str(&first?)?;
    assert_eq!(first["records"]["read"], 300, "{first}");
    assert_eq!(first["records"]["written"], 300, "{first}");
    assert!(first["batches_rewritten"].as_u64() > Some(0), "{first}");
    bed.ok(&[&["warehouse", "load"][..], &v3].concat()).await?;

    // Redshift: each event once; the range re-processed, the mid events untouched.
    let expected = vec![
        ("late".to_string(), 100, 100),
        ("mid".to_string(), 100, 0),
        ("old".to_string(), 300, 300),
    ];
    assert_eq!(warehouse_by_prefix(bed, kind).await?, expected);
    assert_eq!(bed.counts(kind.table()).await?, (500, 500));
    let reloads: i64 = bed
        .db
        .client
        .query_one(
            "SELECT count(*) FROM analytics.etl_load_ledger \
             WHERE table_name = 'call_events' AND strpos(batch_id, '@') > 0",
            &[],
        )
        .await?
        .get(0);
    assert_eq!(reloads, first["batches_rewritten"].as_i64().unwrap_or(-1));

    // The lake through the local engine (over S3, as Glue describes it).
    let lake = lake_by_prefix(bed, kind, &v3).await?;
    assert_eq!(
        lake.lines().skip(1).collect::<Vec<_>>(),
        vec!["late,100,100,100", "mid,100,100,0", "old,300,300,300"],
        "{lake}"
    );

    // The derived values: old call i lasted i + 0.5 s.
    let derived = bed
        .ok(&[
            &[
                "query",
                "SELECT CAST(SUM(duration_s) * 10 AS BIGINT) AS tenths FROM call_events WHERE event_id LIKE 'old-%'",
                "--format",
                "csv",
            ][..],
            &v3,
        ]
        .concat())
        .await?;
    let tenths: i64 = (0..300).map(|i| i * 10 + 5).sum();
    assert_eq!(
        derived.lines().nth(1),
        Some(tenths.to_string().as_str()),
        "{derived}"
    );

    // Arrival times survive the backfill: the old events arrived within the range.
    let arrivals = bed
        .ok(&[
            &[
                "query",
                &format!(
                    "SELECT COUNT(arrived_at) AS known, \
                     SUM(CASE WHEN arrived_at >= TIMESTAMP '{from}' AND arrived_at < TIMESTAMP '{to}' THEN 1 ELSE 0 END) AS in_range \
                     FROM call_events WHERE event_id LIKE 'old-%'"
                ),
                "--format",
                "csv",
            ][..],
            &v3,
        ]
        .concat())
        .await?;
    assert_eq!(arrivals.lines().nth(1), Some("300,300"), "{arrivals}");
    let in_warehouse: i64 = bed
        .db
        .client
        .query_one("SELECT count(arrived_at) FROM analytics.call_events", &[])
        .await?
        .get(0);
    assert_eq!(in_warehouse, 500);

    // A second identical backfill: nothing written, same objects, same warehouse.
    let before = objects(&s3, &bucket).await?;
    let second: serde_json::Value = serde_json::from_str(&bed.ok(&backfill).await?)?;
    assert_eq!(second["batches_rewritten"], 0, "{second}");
    assert_eq!(
        second["batches_done_before"], first["batches_rewritten"],
        "{second}"
    );
    bed.ok(&[&["warehouse", "load"][..], &v3].concat()).await?;
    assert_eq!(objects(&s3, &bucket).await?, before);
    assert_eq!(warehouse_by_prefix(bed, kind).await?, expected);
    assert_eq!(lake_by_prefix(bed, kind, &v3).await?, lake);
    Ok(())
}

/// Writes `files` generated app-event files (distinct seeds) into `dir`, every other one
/// gzip-compressed; returns the number of lines.
fn history(
    tmp: &std::path::Path,
    dir: &std::path::Path,
    files: u64,
    events: u64,
) -> Result<u64, Box<dyn std::error::Error>> {
    std::fs::create_dir_all(dir)?;
    let mut lines = 0;
    for i in 0..files {
        let out = tmp.join(format!("gen-{i}"));
        let out_s = out.to_str().ok_or("utf-8")?;
        let seed = (i + 7).to_string();
        let events = events.to_string();
        let o = super::etl(
            tmp,
            &[
                "generate", "--events", &events, "--seed", &seed, "--out", out_s,
            ],
        );
        assert!(o.status.success(), "{}", super::text(&o.stderr));
        let text = std::fs::read(out.join("app_events.ndjson"))?;
        lines += text
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .count() as u64;
        if i % 2 == 0 {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            std::io::Write::write_all(&mut gz, &text)?;
            std::fs::write(dir.join(format!("part-{i}.ndjson.gz")), gz.finish()?)?;
        } else {
            std::fs::write(dir.join(format!("part-{i}.ndjson")), text)?;
        }
    }
    Ok(lines)
}

/// `count, distinct ids, min id, max id` of app_events in the lake of `dir`.
fn lake_ids(dir: &std::path::Path) -> Result<String, Box<dyn std::error::Error>> {
    let o = super::etl(
        dir,
        &[
            "query",
            "SELECT COUNT(*) AS n, COUNT(DISTINCT event_id) AS ids, MIN(event_id) AS lo, MAX(event_id) AS hi FROM app_events",
            "--format",
            "csv",
        ],
    );
    assert!(o.status.success(), "{}", super::text(&o.stderr));
    Ok(super::text(&o.stdout)
        .lines()
        .nth(1)
        .unwrap_or_default()
        .to_string())
}

fn json_of(o: &std::process::Output) -> Result<serde_json::Value, Box<dyn std::error::Error>> {
    if !o.status.success() {
        return Err(format!("etl backfill: {}", super::text(&o.stderr)).into());
    }
    Ok(serde_json::from_slice(&o.stdout)?)
}

#[test]
fn historical_files_in_two_slices_and_after_a_kill_9_are_each_ingested_once() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let input = tmp.path().join("history");
    let lines = history(tmp.path(), &input, 6, 12_000)?;
    let source = input.to_str().ok_or("utf-8")?;
    let args = |extra: &[&str]| -> Vec<String> {
        [
            "backfill",
            "--stream",
            "app_events",
            "--source",
            source,
            "--json",
            "--parallelism",
            "1",
        ]
        .iter()
        .chain(extra)
        .map(|s| s.to_string())
        .collect()
    };

    // Two slices as two processes at once.
    let sliced = tmp.path().join("sliced");
    let slice = |i: &'static str| {
        let (dir, args) = (
            sliced.clone(),
            args(&["--task-index", i, "--task-count", "2"]),
        );
        std::thread::spawn(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            super::etl(&dir, &args)
        })
    };
    let (a, b) = (slice("0"), slice("1"));
    let (a, b) = (
        json_of(&a.join().map_err(|_| "slice 0 panicked")?)?,
        json_of(&b.join().map_err(|_| "slice 1 panicked")?)?,
    );
    assert_eq!(a["units"].as_u64().zip(b["units"].as_u64()), Some((3, 3)));
    let field = |v: &serde_json::Value, f: &str| v["records"][f].as_u64().unwrap_or(0);
    assert_eq!(field(&a, "read") + field(&b, "read"), lines, "{a} {b}");
    for s in [&a, &b] {
        assert_eq!(
            field(s, "read"),
            field(s, "written")
                + field(s, "duplicates")
                + field(s, "filtered")
                + field(s, "dead_lettered"),
            "{s}"
        );
    }
    let written = field(&a, "written") + field(&b, "written");
    let sliced_ids = lake_ids(&sliced)?;
    assert!(
        sliced_ids.starts_with(&format!("{written},{written},")),
        "{sliced_ids} vs {written} written"
    );

    // One process killed with SIGKILL after its first file, then run again.
    let killed = tmp.path().join("killed");
    std::fs::create_dir_all(&killed)?;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_etl"))
        .current_dir(&killed)
        .arg("--dir")
        .arg(&killed)
        .args(args(&[]))
        .env_remove("ETL_CONFIG")
        .env_remove("ETL_DIR")
        .env_remove("ETL_MASK_KEY_FILE")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    let markers = killed.join("lake/_backfill/app_events/files");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    // A done marker, not the staging file (`<name>#<n>`) object_store writes before renaming it.
    let done_markers = || {
        std::fs::read_dir(&markers)
            .map(|d| {
                d.flatten()
                    .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
                    .count()
            })
            .unwrap_or(0)
    };
    while done_markers() == 0 {
        assert!(
            child.try_wait()?.is_none(),
            "the backfill ended before it could be killed"
        );
        assert!(
            std::time::Instant::now() < deadline,
            "no file finished in 120 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    child.kill()?;
    child.wait()?;
    let resumed = json_of(&super::etl(
        &killed,
        &args(&[]).iter().map(String::as_str).collect::<Vec<_>>(),
    ))?;
    let done = resumed["files_done_before"].as_u64().unwrap_or(0);
    assert!((1..6).contains(&done), "{resumed}");
    assert_eq!(
        lake_ids(&killed)?,
        sliced_ids,
        "killed and resumed = sliced"
    );

    // A rerun changes nothing.
    let again = json_of(&super::etl(
        &killed,
        &args(&[]).iter().map(String::as_str).collect::<Vec<_>>(),
    ))?;
    assert_eq!(again["files_done_before"], 6, "{again}");
    assert_eq!(lake_ids(&killed)?, sliced_ids);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn historical_gzip_files_in_s3_are_backfilled_once() -> TestResult {
    let bed = bed_with("cli-backfill-s3", "", "").await?;
    let s3 = etl_testbed::moto().await?.clients().await?.s3();
    let history_bucket = etl_testbed::unique_name("history");
    s3.create_bucket().bucket(&history_bucket).send().await?;
    let local = bed.tmp.path().join("history");
    let lines = history(bed.tmp.path(), &local, 2, 5_000)?;
    for entry in std::fs::read_dir(&local)? {
        let path = entry?.path();
        let name = path.file_name().and_then(|n| n.to_str()).ok_or("name")?;
        let gz = if name.ends_with(".gz") {
            std::fs::read(&path)?
        } else {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            std::io::Write::write_all(&mut e, &std::fs::read(&path)?)?;
            e.finish()?
        };
        s3.put_object()
            .bucket(&history_bucket)
            .key(format!(
                "firehose/2026/11/{}",
                name.trim_end_matches(".gz").to_string() + ".gz"
            ))
            .body(gz.into())
            .send()
            .await?;
    }
    let source = format!("s3://{history_bucket}/firehose/");
    let run = [
        "backfill",
        "--stream",
        "app_events",
        "--source",
        source.as_str(),
        "--json",
    ];
    let first: serde_json::Value = serde_json::from_str(&bed.ok(&run).await?)?;
    assert_eq!(first["records"]["read"], lines, "{first}");
    let written = first["records"]["written"].as_i64().ok_or("written")?;
    let count = |out: String| out.lines().nth(1).map(str::to_string);
    let query = [
        "query",
        "SELECT COUNT(*) AS n, COUNT(DISTINCT event_id) AS ids FROM app_events",
        "--format",
        "csv",
    ];
    assert_eq!(
        count(bed.ok(&query).await?),
        Some(format!("{written},{written}"))
    );
    let second: serde_json::Value = serde_json::from_str(&bed.ok(&run).await?)?;
    assert_eq!(second["files_done_before"], 2, "{second}");
    bed.ok(&["warehouse", "migrate"]).await?;
    bed.ok(&["warehouse", "load"]).await?;
    assert_eq!(bed.counts("app_events").await?, (written, written));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backfill_from_kinesis_at_timestamp_without_a_raw_archive() -> TestResult {
    let h = History::new(Kind::App, "cli-backfill-kinesis", "", &["--no-raw-archive"]).await?;
    let (bed, stream, from, to) = (&h.bed, &h.stream, &h.from, &h.to);
    let kinesalite = h.kinesalite;

    let v3 = version_3(bed)?;
    let v3: Vec<&str> = v3.iter().map(String::as_str).collect();
    let backfill: Vec<&str> = [
        &v3[..],
        &[
            "backfill",
            "--stream",
            "app_events",
            "--source",
            "kinesis",
            "--kinesis-stream",
            stream.as_str(),
            "--aws-endpoint-url",
            kinesalite.endpoint(),
            "--from",
            from,
            "--to",
            to,
            "--json",
        ],
    ]
    .concat();
    let first: serde_json::Value = serde_json::from_str(&bed.ok(&backfill).await?)?;
    assert_eq!(first["records"]["read"], 300, "{first}");
    assert_eq!(first["records"]["written"], 300, "{first}");
    bed.ok(&[&["warehouse", "load"][..], &v3].concat()).await?;
    let expected = vec![("mid".to_string(), 100, 0), ("old".to_string(), 300, 300)];
    assert_eq!(warehouse_by_prefix(bed, Kind::App).await?, expected);
    assert_eq!(bed.counts("app_events").await?, (400, 400));
    let lake = lake_by_prefix(bed, Kind::App, &v3).await?;
    assert_eq!(
        lake.lines().skip(1).collect::<Vec<_>>(),
        vec!["mid,100,100,0", "old,300,300,300"],
        "{lake}"
    );
    let second: serde_json::Value = serde_json::from_str(&bed.ok(&backfill).await?)?;
    assert_eq!(second["batches_rewritten"], 0, "{second}");
    assert_eq!(
        second["batches_done_before"], first["batches_rewritten"],
        "{second}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_slices_of_a_raw_archive_backfill_run_as_two_processes_cover_the_range_once(
) -> TestResult {
    let h = History::new(Kind::App, "cli-backfill-slices", "", &[]).await?;
    let (bed, from, to) = (&h.bed, &h.from, &h.to);
    let v3 = version_3(bed)?;
    let v3: Vec<&str> = v3.iter().map(String::as_str).collect();
    let slice = |i: &'static str| -> Vec<&str> {
        [
            &v3[..],
            &[
                "backfill",
                "--stream",
                "app_events",
                "--from",
                from,
                "--to",
                to,
                "--task-index",
                i,
                "--task-count",
                "2",
                "--json",
            ],
        ]
        .concat()
    };
    let (a, b) = (slice("0"), slice("1"));
    let (a, b) = tokio::join!(bed.ok(&a), bed.ok(&b));
    let (a, b): (serde_json::Value, serde_json::Value) =
        (serde_json::from_str(&a?)?, serde_json::from_str(&b?)?);
    // Two shards, one arrival hour: one unit each.
    assert_eq!(
        (a["units"].as_u64(), b["units"].as_u64()),
        (Some(1), Some(1)),
        "{a} {b}"
    );
    let n = |v: &serde_json::Value, f: &str| v["records"][f].as_u64().unwrap_or(0);
    assert_eq!(n(&a, "read") + n(&b, "read"), 300, "{a} {b}");
    assert_eq!(n(&a, "written") + n(&b, "written"), 300, "{a} {b}");
    assert!(n(&a, "read") > 0 && n(&b, "read") > 0, "{a} {b}");
    bed.ok(&[&["warehouse", "load"][..], &v3].concat()).await?;
    let lake = lake_by_prefix(bed, Kind::App, &v3).await?;
    assert_eq!(
        lake.lines().skip(1).collect::<Vec<_>>(),
        vec!["mid,100,100,0", "old,300,300,300"],
        "{lake}"
    );
    assert_eq!(
        warehouse_by_prefix(bed, Kind::App).await?,
        vec![("mid".to_string(), 100, 0), ("old".to_string(), 300, 300)]
    );
    // Each batch has exactly one manifest, and the slices revised each batch of the range once.
    let rewritten =
        a["batches_rewritten"].as_u64().unwrap_or(0) + b["batches_rewritten"].as_u64().unwrap_or(0);
    let s3 = etl_testbed::moto().await?.clients().await?.s3();
    let manifests: Vec<String> = objects(&s3, &bucket(bed)?)
        .await?
        .into_keys()
        .filter(|k| k.contains("/_commits/app_events/"))
        .collect();
    let batch = |k: &String| {
        k.rsplit('/')
            .next()
            .unwrap_or_default()
            .split(['@', '.'])
            .next()
            .unwrap_or_default()
            .to_string()
    };
    let ids: std::collections::BTreeSet<String> = manifests.iter().map(batch).collect();
    assert_eq!(
        ids.len(),
        manifests.len(),
        "one manifest per batch: {manifests:?}"
    );
    assert_eq!(
        manifests.iter().filter(|k| k.contains('@')).count() as u64,
        rewritten,
        "{manifests:?}"
    );
    let plan = bed
        .ok(&[
            &[
                "backfill",
                "--stream",
                "app_events",
                "--from",
                from,
                "--to",
                to,
                "--dry-run",
            ][..],
            &v3,
        ]
        .concat())
        .await?;
    assert!(
        plan.contains(&format!(", {rewritten} raw objects,")),
        "{plan}"
    );
    Ok(())
}
