//! Streams are data: a third stream, `sms_events`, that exists only as a schema file and a
//! transform SQL file in the test's temporary folders, goes through `etl ingest`, `etl run`
//! (kinesalite) and `etl warehouse migrate` + `load` (the Data API stand-in over PostgreSQL)
//! with no Rust code of its own.

use crate::{etl_async, text, TestResult};
use std::collections::BTreeMap;
use std::path::Path;

const SMS_SCHEMA: &str = r#"
stream = "sms_events"
version = 1
description = "SMS lifecycle events (a stream added as data, for the test)."

[[fields]]
name = "event_id"
type = "string"
required = true
max_length = 128

[[fields]]
name = "event_type"
type = "enum"
required = true
values = ["sms_sent", "sms_delivered", "sms_failed"]

[[fields]]
name = "occurred_at"
type = "timestamp"
required = true

[[fields]]
name = "sender"
type = "phone"
required = true

[[fields]]
name = "recipient"
type = "phone"
required = true

[[fields]]
name = "segments"
type = "int64"

[[fields]]
name = "carrier"
type = "string"
max_length = 64
"#;

const SMS_TRANSFORM: &str = "
SELECT
    event_id,
    event_type,
    occurred_at,
    mask_phone(sender) AS sender,
    mask_phone(recipient) AS recipient,
    segments,
    carrier,
    extras,
    arrived_at,
    lake_dt(occurred_at) AS dt,
    lake_hour(occurred_at) AS hour
FROM input
ORDER BY occurred_at, event_id
";

/// The repository's schemas and transforms plus `sms_events`, in `dir/schemas` and
/// `dir/transform`.
fn stream_folders(dir: &Path) -> Result<(String, String), Box<dyn std::error::Error>> {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let (schemas, transform) = (dir.join("schemas"), dir.join("transform"));
    for (from, to, ext) in [
        (repo.join("schemas"), &schemas, "toml"),
        (repo.join("queries/transform"), &transform, "sql"),
    ] {
        std::fs::create_dir_all(to)?;
        for entry in std::fs::read_dir(from)? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == ext) {
                std::fs::copy(&path, to.join(path.file_name().ok_or("file name")?))?;
            }
        }
    }
    std::fs::write(schemas.join("sms_events.toml"), SMS_SCHEMA)?;
    std::fs::write(transform.join("sms_events.sql"), SMS_TRANSFORM)?;
    let utf8 = |p: &Path| {
        p.to_str()
            .map(str::to_string)
            .ok_or("temp path is not UTF-8")
    };
    Ok((utf8(&schemas)?, utf8(&transform)?))
}

/// SMS event `i` as one NDJSON line.
fn sms(i: u32) -> String {
    let kind = ["sms_sent", "sms_delivered", "sms_failed"][(i % 3) as usize];
    format!(
        r#"{{"event_id":"sms-{i:05}","event_type":"{kind}","occurred_at":"2026-11-0{}T1{}:00:{:02}Z","sender":"+1415555{:04}","recipient":"+4420718{:05}","segments":{},"carrier":"carrier-{}"}}"#,
        1 + i % 3,
        i % 10,
        i % 60,
        i % 10_000,
        i,
        1 + i % 4,
        i % 5
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_third_stream_defined_only_by_files_flows_through_ingest_run_and_load() -> TestResult {
    let moto = etl_testbed::moto().await?;
    let clients = moto.clients().await?;
    let bucket = etl_testbed::unique_name("sms-lake");
    clients.s3().create_bucket().bucket(&bucket).send().await?;
    let kinesalite = etl_testbed::kinesis().await?;
    let kinesis = kinesalite.client().await?;
    let kinesis_stream = etl_testbed::unique_name("sms");
    etl_testbed::create_stream(&kinesis, &kinesis_stream, 2).await?;
    let pg = etl_testbed::postgres().await?;
    let db = pg.fresh_database("sms_wh").await?;
    let mut standin_config = etl_redshift_standin::StandInConfig::new(pg.port());
    standin_config.s3 = Some(clients.s3());
    let standin = etl_redshift_standin::RedshiftDataStandIn::start(standin_config).await?;

    let tmp = tempfile::tempdir()?;
    let (schemas, transform) = stream_folders(tmp.path())?;
    let config = tmp.path().join("etl.toml");
    std::fs::write(
        &config,
        format!(
            "[lake]\nlocation = \"s3://{bucket}/events\"\n\n[kinesis]\nstreams = {{ sms_events = \"{kinesis_stream}\" }}\n\n\
             [warehouse.redshift]\ncluster_id = \"test-cluster\"\ndb_user = \"etl\"\ndatabase = \"{}\"\n\
             iam_role_arn = \"arn:aws:iam::123456789012:role/lake-reader\"\n\n{}",
            db.name,
            toml::to_string(&BTreeMap::from([("aws", moto.settings())]))?
        ),
    )?;
    let config = config.to_str().ok_or("temp path is not UTF-8")?;
    let common = [
        "--config",
        config,
        "--schemas",
        &schemas,
        "--transform-sql",
        &transform,
    ];

    // 1. A file through `etl ingest`: events 0..300, one of them twice, one invalid.
    let mut lines: Vec<String> = (0..300).map(sms).collect();
    lines.push(sms(7));
    lines.push(r#"{"event_id":"sms-bad","event_type":"sms_teleported","occurred_at":"2026-11-01T10:00:00Z","sender":"+14155550100","recipient":"+442071830000"}"#.into());
    let file = tmp.path().join("sms.ndjson");
    std::fs::write(&file, lines.join("\n"))?;
    let ingest = etl_async(
        tmp.path(),
        &[
            &common[..],
            &["ingest", "--stream", "sms_events", "--json"],
            &[file.to_str().ok_or("utf-8")?],
        ]
        .concat(),
    )
    .await?;
    assert!(ingest.status.success(), "ingest: {}", text(&ingest.stderr));
    let summary: serde_json::Value = serde_json::from_slice(&ingest.stdout)?;
    assert_eq!(
        (
            &summary["read"],
            &summary["written"],
            &summary["duplicates"],
            &summary["dead_lettered"]
        ),
        (
            &serde_json::json!(302),
            &serde_json::json!(300),
            &serde_json::json!(1),
            &serde_json::json!(1)
        ),
        "{summary}"
    );

    // 2. Events 300..700 from Kinesis through `etl run` (streams from the [kinesis] section).
    let records: Vec<(&str, Vec<u8>)> = (300..700)
        .map(|i| ("sms_events", sms(i).into_bytes()))
        .collect();
    let produced = etl_kinesis::produce(
        &kinesis,
        records,
        &etl_kinesis::ProduceOptions {
            targets: vec![("sms_events".into(), kinesis_stream.clone())],
            aggregate: false,
            rate: None,
        },
    )
    .await?;
    assert_eq!(produced.events.get(&kinesis_stream).copied(), Some(400));
    let kinesis_url = kinesalite
        .settings()
        .endpoint_url
        .ok_or("kinesalite has an endpoint")?;
    let run = etl_async(
        tmp.path(),
        &[
            &common[..],
            &[
                "run",
                "--until-caught-up",
                "--aws-endpoint-url",
                &kinesis_url,
            ],
        ]
        .concat(),
    )
    .await?;
    assert!(run.status.success(), "run: {}", text(&run.stderr));
    let run_out = text(&run.stdout);
    assert!(
        run_out.contains(
            "sms_events: read 400 = written 400 + duplicates 0 + filtered 0 + dead-lettered 0 [ok]"
        ),
        "{run_out}"
    );

    // 3. The warehouse ([warehouse.redshift] of the configuration file; only the stand-in's
    // endpoint on the command line): migrate creates the table from the schema file and needs
    // no IAM role, load brings every batch.
    let target = ["--redshift-endpoint-url", standin.endpoint()];
    let migrate = etl_async(
        tmp.path(),
        &[&common[..], &["warehouse", "migrate"], &target].concat(),
    )
    .await?;
    assert!(
        migrate.status.success(),
        "migrate: {}",
        text(&migrate.stderr)
    );
    let load = etl_async(
        tmp.path(),
        &[
            &common[..],
            &["warehouse", "load", "--stream", "sms_events"],
            &target,
            &[
                "--iam-role-arn",
                "arn:aws:iam::123456789012:role/lake-reader",
            ],
        ]
        .concat(),
    )
    .await?;
    assert!(load.status.success(), "load: {}", text(&load.stderr));
    let row = db
        .client
        .query_one(
            "SELECT count(*), count(DISTINCT event_id), min(event_id), max(event_id), \
             sum(CASE WHEN sender LIKE '+%' OR recipient LIKE '+%' THEN 1 ELSE 0 END) \
             FROM analytics.sms_events",
            &[],
        )
        .await?;
    let (n, distinct): (i64, i64) = (row.get(0), row.get(1));
    assert_eq!(
        (n, distinct),
        (700, 700),
        "every SMS event once in Redshift"
    );
    assert_eq!(row.get::<_, String>(2), "sms-00000");
    assert_eq!(row.get::<_, String>(3), "sms-00699");
    assert_eq!(
        row.get::<_, i64>(4),
        0,
        "no raw phone number reached the warehouse"
    );
    Ok(())
}
