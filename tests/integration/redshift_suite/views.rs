//! Every curated view on PostgreSQL 15 (C collation) against the golden files: tables from the
//! generated DDL (`etl_redshift::ddl`, PostgreSQL flavour), the fixture rows loaded with
//! `COPY FROM STDIN`, views created by `etl_redshift::ddl::view_sqls` in dependency order.

use std::path::PathBuf;

use bytes::Bytes;
use etl_redshift::ddl::{view_sqls, SqlFlavor, TableDef};
use etl_redshift::Ident;
use etl_warehouse::ViewDef;
use futures::{SinkExt, TryStreamExt};
use tokio_postgres::Client;

use crate::{Context, Failure, TestResult};

pub(crate) fn repo_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

pub(crate) fn views_dir() -> PathBuf {
    repo_dir().join("queries/views")
}

/// Creates the lake tables in `schema` and loads the fixture CSVs.
pub(crate) async fn load_fixture(client: &Client, schema: &Ident) -> TestResult {
    client
        .batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {schema}"))
        .await
        .context("CREATE SCHEMA")?;
    for stream in etl_schema::embedded()? {
        let table = TableDef::from_schema(&stream)?;
        client
            .batch_execute(&table.create_sql(schema, SqlFlavor::Postgres))
            .await
            .context("CREATE TABLE")?;
        let path = views_dir()
            .join("fixtures")
            .join(format!("{}.csv", stream.stream));
        let csv = std::fs::read(&path).context("reading fixture")?;
        let sink = client
            .copy_in(&format!(
                "COPY {schema}.{} FROM STDIN WITH (FORMAT csv, HEADER true)",
                table.name
            ))
            .await
            .context("COPY FROM STDIN")?;
        futures::pin_mut!(sink);
        sink.send(Bytes::from(csv))
            .await
            .context("sending fixture rows")?;
        sink.finish().await.context("finishing COPY")?;
    }
    Ok(())
}

/// `SELECT * FROM <view> <its ORDER BY>` as PostgreSQL CSV.
pub(crate) async fn render(
    client: &Client,
    schema: &Ident,
    view: &ViewDef,
) -> Result<String, Failure> {
    let order = view.order_by()?.unwrap_or_default();
    let sql = format!(
        "COPY (SELECT * FROM {schema}.{} {order}) TO STDOUT WITH (FORMAT csv, HEADER true)",
        Ident::new("view", &view.name)?
    );
    let stream = client.copy_out(&sql).await.context(&sql)?;
    let chunks: Vec<Bytes> = stream.try_collect().await.context(&sql)?;
    let bytes: Vec<u8> = chunks.iter().flat_map(|c| c.iter().copied()).collect();
    String::from_utf8(bytes).context("CSV is UTF-8")
}

fn golden(name: &str) -> Result<String, Failure> {
    let path = views_dir().join("expected").join(format!("{name}.csv"));
    std::fs::read_to_string(&path).context(&format!("golden file {}", path.display()))
}

#[tokio::test]
async fn every_view_matches_its_golden_file_on_postgres() -> TestResult {
    let pg = etl_testbed::postgres().await?;
    let db = pg.fresh_database("views").await?;
    let schema = Ident::new("schema", "analytics")?;
    load_fixture(&db.client, &schema).await?;
    let views = etl_warehouse::load_views(&views_dir())?;
    assert_eq!(views.len(), 10, "queries/views holds 10 views");
    for sql in view_sqls(&schema, &views)? {
        db.client.batch_execute(&sql).await.context(&sql)?;
    }
    let mut failures = Vec::new();
    for view in &views {
        let got = render(&db.client, &schema, view).await?;
        let expected = golden(&view.name)?;
        if got != expected {
            failures.push(format!(
                "view {}:\n--- expected\n{expected}--- got (PostgreSQL)\n{got}",
                view.name
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // Applying the views again is idempotent (drop + create in dependency order).
    for sql in view_sqls(&schema, &views)? {
        db.client.batch_execute(&sql).await.context(&sql)?;
    }
    let again = render(&db.client, &schema, &views[views.len() - 1]).await?;
    assert_eq!(again, golden(&views[views.len() - 1].name)?);

    // The comparison can fail: a wrong threshold changes call_quality.
    let mut wrong = views
        .iter()
        .find(|v| v.name == "call_quality")
        .context("call_quality")?
        .clone();
    assert!(
        wrong.sql_body.contains("quality_mos < 3.5"),
        "call_quality no longer contains the threshold"
    );
    wrong.sql_body = wrong
        .sql_body
        .replace("quality_mos < 3.5", "quality_mos <= 3.5");
    for sql in view_sqls(&schema, std::slice::from_ref(&wrong))? {
        db.client.batch_execute(&sql).await.context(&sql)?;
    }
    assert_ne!(
        render(&db.client, &schema, &wrong).await?,
        golden("call_quality")?,
        "a wrong view still matched"
    );
    Ok(())
}
