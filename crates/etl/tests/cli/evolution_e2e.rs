//! Schema evolution end to end (issue 17): `app_events` gains an optional field while the
//! service runs. Version 2 of `etl run --load` consumes the first events from kinesalite; it is
//! replaced by version 3 (new `--schemas` and `--transform-sql`: the field `campaign`), which
//! consumes events of the same hour. Afterwards: the Glue table has the column and the version,
//! the lake's older files read NULL for it in the local engine, Redshift (the stand-in) gained
//! the column without a separate migrate and holds every event once, the existing views still
//! work, and a new view can use the field.

use super::warehouse_ops::{bed_with, Bed};
use super::TestResult;
use etl_aws::kinesis::primitives::Blob;
use etl_aws::kinesis::types::PutRecordsRequestEntry;
use std::path::{Path, PathBuf};

/// App events `<prefix>-<i>` in one hour, each with the key `campaign` (unknown to version 2,
/// which keeps it in `extras`).
pub(super) async fn put_events(
    kinesis: &etl_aws::kinesis::Client,
    stream: &str,
    prefix: &str,
    n: usize,
) -> TestResult {
    put_json(kinesis, stream, prefix, n, |i| {
        format!(
            "{{\"event_id\":\"{prefix}-{i:04}\",\"event_type\":\"signup\",\
             \"occurred_at\":\"2026-11-03T09:{:02}:00.000Z\",\"user_id\":\"u-{i}\",\
             \"account_id\":\"acc-1\",\"platform\":\"web\",\"properties\":{{}},\
             \"campaign\":\"autumn\"}}",
            i % 60
        )
    })
    .await
}

/// Puts `event(i)` for `i` in `0..n` on `stream` in one PutRecords call, partition key
/// `<prefix><i>`; every record must be accepted.
pub(super) async fn put_json(
    kinesis: &etl_aws::kinesis::Client,
    stream: &str,
    prefix: &str,
    n: usize,
    event: impl Fn(usize) -> String,
) -> TestResult {
    let entries = (0..n)
        .map(|i| {
            PutRecordsRequestEntry::builder()
                .data(Blob::new(event(i).into_bytes()))
                .partition_key(format!("{prefix}{i}"))
                .build()
        })
        .collect::<Result<Vec<_>, _>>()?;
    let out = kinesis
        .put_records()
        .stream_name(stream)
        .set_records(Some(entries))
        .send()
        .await?;
    assert_eq!(out.failed_record_count(), Some(0));
    Ok(())
}

/// Copies every file of the repository folder `from` into `to`, changing `file` with `change`.
pub(super) fn copy_with(
    from: &str,
    to: &Path,
    file: &str,
    change: impl Fn(&str) -> String,
) -> Result<PathBuf, Box<dyn std::error::Error>> {
    let from = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(from);
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(&from)? {
        let path = entry?.path();
        if !path.is_file() {
            continue;
        }
        let name = path.file_name().ok_or("file name")?;
        let text = std::fs::read_to_string(&path)?;
        let text = if name == file { change(&text) } else { text };
        std::fs::write(to.join(name), text)?;
    }
    Ok(to.to_path_buf())
}

/// `schema` with its `version = N` line made `N + 1`.
pub(super) fn next_version(schema: &str) -> String {
    schema
        .lines()
        .map(
            |l| match l.strip_prefix("version = ").map(str::parse::<u32>) {
                Some(Ok(n)) => format!("version = {}", n + 1),
                _ => l.to_string(),
            },
        )
        .collect::<Vec<_>>()
        .join("\n")
}

/// The `--schemas`/`--transform-sql`/`--views` folders of version 3.
pub(super) fn version_3(bed: &Bed) -> Result<Vec<String>, Box<dyn std::error::Error>> {
    let root = bed.tmp.path().join("v3");
    let schemas = copy_with("schemas", &root.join("schemas"), "app_events.toml", |t| {
        format!(
            "{}\n[[fields]]\nname = \"campaign\"\ntype = \"string\"\nmax_length = 64\n\
             doc = \"Marketing campaign that brought the user.\"\n",
            next_version(t)
        )
    })?;
    let sql = copy_with(
        "queries/transform",
        &root.join("transform"),
        "app_events.sql",
        |t| t.replacen("    extras,\n", "    campaign,\n    extras,\n", 1),
    )?;
    let views = copy_with("queries/views", &root.join("views"), "", |t| t.to_string())?;
    std::fs::write(
        views.join("campaign_signups.sql"),
        "-- Sign-ups per marketing campaign (app_events.campaign, schema version 3).\n\
         SELECT campaign, COUNT(*) AS signups\nFROM app_events\nWHERE campaign IS NOT NULL\n\
         GROUP BY campaign\nORDER BY campaign\n",
    )?;
    let text = |p: PathBuf| p.to_str().map(str::to_string).ok_or("utf-8");
    Ok(vec![
        "--schemas".into(),
        text(schemas)?,
        "--transform-sql".into(),
        text(sql)?,
        "--views".into(),
        text(views)?,
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_field_added_while_running_flows_through_lake_glue_redshift_and_views() -> TestResult {
    let database = etl_testbed::unique_ident("evolve");
    let bed = bed_with("cli-evolve", &format!("glue_database = \"{database}\""), "").await?;
    let kinesalite = etl_testbed::kinesis().await?;
    let kinesis = kinesalite.client().await?;
    let stream = etl_testbed::unique_name("evolve-app");
    etl_testbed::create_stream(&kinesis, &stream, 2).await?;
    let run = [
        "run",
        "--until-caught-up",
        "--load",
        "--redshift-endpoint-url",
        bed.standin.endpoint(),
        "--aws-endpoint-url",
        kinesalite.endpoint(),
        "--stream",
    ];
    let pair = format!("app_events={stream}");
    bed.ok(&["warehouse", "migrate"]).await?;

    // Version 2 consumes and loads the first events.
    put_events(&kinesis, &stream, "old", 300).await?;
    bed.ok(&[&run[..], &[pair.as_str()]].concat()).await?;
    assert_eq!(bed.counts("app_events").await?, (300, 300));

    // Version 3 takes over (same positions, same lake) and consumes events of the same hour.
    let v3 = version_3(&bed)?;
    let v3: Vec<&str> = v3.iter().map(String::as_str).collect();
    put_events(&kinesis, &stream, "new", 200).await?;
    bed.ok(&[&run[..], &[pair.as_str()], &v3].concat()).await?;

    // Redshift: the column was added by the loader; every event once; old rows NULL there.
    assert_eq!(bed.counts("app_events").await?, (500, 500));
    let rows = bed
        .db
        .client
        .query(
            "SELECT left(event_id, 3), count(*), count(campaign) FROM analytics.app_events \
             GROUP BY 1 ORDER BY 1",
            &[],
        )
        .await?;
    let got: Vec<(String, i64, i64)> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(
        got,
        vec![("new".to_string(), 200, 200), ("old".to_string(), 300, 0)]
    );
    // The views that do not use the field keep working.
    let dau: i64 = bed
        .db
        .client
        .query_one(
            "SELECT CAST(COUNT(*) AS BIGINT) FROM analytics.daily_active_users",
            &[],
        )
        .await?
        .get(0);
    assert!(dau > 0, "daily_active_users has rows");

    // Glue: the table has the column and records version 3.
    let glue = etl_testbed::moto().await?.clients().await?.glue();
    let table = glue
        .get_table()
        .database_name(&database)
        .name("app_events")
        .send()
        .await?;
    let table = table.table().ok_or("Glue table")?;
    let columns: Vec<&str> = table
        .storage_descriptor()
        .map(|sd| sd.columns().iter().map(|c| c.name()).collect())
        .unwrap_or_default();
    assert!(columns.contains(&"campaign"), "{columns:?}");
    assert_eq!(
        table
            .parameters()
            .and_then(|p| p.get("etl.schema_version"))
            .map(String::as_str),
        Some("4")
    );

    // The lake through the local engine: both versions' files, old ones NULL for the column.
    let out = bed
        .ok(&[
            &[
                "query",
                "SELECT COUNT(*) AS n, COUNT(DISTINCT event_id) AS ids, COUNT(campaign) AS with_campaign FROM app_events",
                "--format",
                "csv",
            ][..],
            &v3,
        ]
        .concat())
        .await?;
    assert_eq!(
        out.lines().nth(1),
        Some("500,500,200"),
        "local engine over the lake: {out}"
    );

    // A view can start using the field: migrate with the new view.
    bed.ok(&[&["warehouse", "migrate"][..], &v3].concat())
        .await?;
    let signups: Vec<(String, i64)> = bed
        .db
        .client
        .query(
            "SELECT campaign, signups FROM analytics.campaign_signups",
            &[],
        )
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(signups, vec![("autumn".to_string(), 200)]);
    Ok(())
}
