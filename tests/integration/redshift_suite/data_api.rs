//! The Redshift Data API stand-in through the real SDK client, and the warehouse's migrate
//! through it.

use std::time::Duration;

use etl_aws::redshiftdata::types::{Field, SqlParameter, StatusString};
use etl_aws::redshiftdata::Client;
use etl_redshift::{
    DataApi, DataApiTarget, PollSettings, RedshiftDataWarehouse, RedshiftError, RedshiftSettings,
};
use etl_redshift_standin::{RedshiftDataStandIn, StandInConfig};
use etl_testbed::{PgDatabase, StandIn};

use crate::{Context, Failure, TestResult};

pub(crate) struct Bed {
    pub db: PgDatabase,
    /// Kept alive for the test (the stand-in stops when dropped).
    pub _standin: RedshiftDataStandIn,
    pub client: Client,
}

/// A fresh database, a stand-in over PostgreSQL (with `s3` for COPY) and an SDK client for it.
pub(crate) async fn bed(
    prefix: &str,
    s3: Option<etl_aws::s3::Client>,
    page_rows: usize,
) -> Result<Bed, Failure> {
    let pg = etl_testbed::postgres().await?;
    let db = pg.fresh_database(prefix).await?;
    let mut config = StandInConfig::new(pg.port());
    config.s3 = s3;
    config.page_rows = page_rows;
    let standin = RedshiftDataStandIn::start(config).await?;
    let client = etl_testbed::aws_clients_for(StandIn::RedshiftData, standin.endpoint())
        .await?
        .redshift_data();
    Ok(Bed {
        db,
        _standin: standin,
        client,
    })
}

pub(crate) fn target(db: &PgDatabase) -> DataApiTarget {
    DataApiTarget {
        cluster_identifier: Some("etl-test".into()),
        workgroup_name: None,
        db_user: Some("etl".into()),
        secret_arn: None,
        database: db.name.clone(),
    }
}

pub(crate) fn fast_poll() -> PollSettings {
    PollSettings {
        initial_ms: 5,
        max_ms: 50,
        timeout_ms: 60_000,
    }
}

async fn wait_terminal(
    client: &Client,
    id: &str,
) -> Result<etl_aws::redshiftdata::operation::describe_statement::DescribeStatementOutput, Failure>
{
    for _ in 0..1000 {
        let out = client
            .describe_statement()
            .id(id)
            .send()
            .await
            .context("DescribeStatement")?;
        if matches!(
            out.status(),
            Some(StatusString::Finished | StatusString::Failed | StatusString::Aborted)
        ) {
            return Ok(out);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Err(Failure(format!("statement {id} never finished")))
}

#[tokio::test]
async fn execute_with_parameters_and_page_through_typed_results() -> TestResult {
    let bed = bed("rsdata", None, 2).await?;
    let param = |n: &str, v: &str| SqlParameter::builder().name(n).value(v).build();
    let sql = "SELECT g AS n, g * 1.5 AS half, CAST(g * 0.25 AS DOUBLE PRECISION) AS f, g % 2 = 0 AS even, \
               CASE WHEN g = 3 THEN NULL ELSE 'r' || g END AS label, CAST('2024-05-01 10:00:00' AS TIMESTAMP) AS ts \
               FROM generate_series(1, CAST(:upto AS INT)) AS g WHERE 'x' = :tag ORDER BY g";
    let out = bed
        .client
        .execute_statement()
        .cluster_identifier("etl-test")
        .db_user("etl")
        .database(&bed.db.name)
        .sql(sql)
        .parameters(param("upto", "5")?)
        .parameters(param("tag", "x")?)
        .send()
        .await
        .context("ExecuteStatement")?;
    let id = out.id().context("statement id")?.to_string();
    assert!(out.created_at().is_some(), "CreatedAt is returned");
    let described = wait_terminal(&bed.client, &id).await?;
    assert_eq!(
        described.status(),
        Some(&StatusString::Finished),
        "error: {:?}",
        described.error()
    );
    assert_eq!(described.has_result_set(), Some(true));
    assert_eq!(described.result_rows(), 5);
    assert_eq!(described.query_parameters().len(), 2);

    // Pages of 2 rows: 3 pages, the last without NextToken.
    let mut token: Option<String> = None;
    let mut rows: Vec<Vec<Field>> = Vec::new();
    let mut pages = 0;
    loop {
        let page = bed
            .client
            .get_statement_result()
            .id(&id)
            .set_next_token(token.take())
            .send()
            .await
            .context("GetStatementResult")?;
        pages += 1;
        assert_eq!(page.total_num_rows(), 5);
        let names: Vec<&str> = page
            .column_metadata()
            .iter()
            .filter_map(|c| c.name())
            .collect();
        assert_eq!(names, ["n", "half", "f", "even", "label", "ts"]);
        rows.extend(page.records().iter().cloned());
        match page.next_token() {
            Some(t) => token = Some(t.to_string()),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(rows.len(), 5);
    assert_eq!(
        rows[2],
        [
            Field::LongValue(3),
            Field::StringValue("4.5".into()),
            Field::DoubleValue(0.75),
            Field::BooleanValue(false),
            Field::IsNull(true),
            Field::StringValue("2024-05-01 10:00:00".into()),
        ]
    );
    assert_eq!(rows[3][4], Field::StringValue("r4".into()));
    Ok(())
}

#[tokio::test]
async fn a_batch_is_one_transaction_and_errors_carry_the_redshift_message() -> TestResult {
    let bed = bed("rsbatch", None, 1000).await?;
    let api = DataApi::new(bed.client.clone(), target(&bed.db), fast_poll())?;
    let ok = api
        .batch(&[
            "CREATE TABLE t (a BIGINT NOT NULL ENCODE az64, b VARCHAR(8)) DISTSTYLE AUTO COMPOUND SORTKEY (a)".into(),
            "INSERT INTO t VALUES (1, 'x'), (2, 'y')".into(),
            "SELECT a, b FROM t ORDER BY a".into(),
        ])
        .await?;
    assert_eq!(ok.len(), 3);
    assert!(
        ok[2].ends_with(":3"),
        "sub-statement ids are <id>:<n>: {ok:?}"
    );
    let rows = api.fetch(&ok[2]).await?;
    assert_eq!(
        rows.columns,
        [
            ("a".to_string(), "int8".to_string()),
            ("b".to_string(), "varchar".to_string())
        ]
    );
    assert_eq!(rows.rows.len(), 2);

    // The third statement fails: the batch is FAILED, the insert before it is rolled back.
    let err = api
        .batch(&[
            "INSERT INTO t VALUES (3, 'z')".into(),
            "CREATE TABLE u (c INT)".into(),
            "SELECT nope FROM t".into(),
        ])
        .await
        .expect_err("the batch must fail");
    match &err {
        RedshiftError::StatementFailed {
            status, message, ..
        } => {
            assert_eq!(status, "FAILED");
            assert!(
                message.contains("column \"nope\" does not exist"),
                "{message}"
            );
        }
        other => panic!("expected StatementFailed, got {other}"),
    }
    let count = api.execute("SELECT COUNT(*) AS n FROM t", &[]).await?;
    assert_eq!(
        api.fetch(&count).await?.rows,
        [[Field::LongValue(2)]],
        "the failed batch left its insert behind"
    );
    let err = api
        .execute("SELECT * FROM u", &[])
        .await
        .expect_err("u was rolled back");
    assert!(
        err.to_string().contains("relation \"u\" does not exist"),
        "{err}"
    );

    // DescribeStatement of a failed batch names the failing sub-statement.
    let out = bed
        .client
        .batch_execute_statement()
        .cluster_identifier("etl-test")
        .database(&bed.db.name)
        .sqls("SELECT 1")
        .sqls("SELECT 1/0")
        .sqls("SELECT 2")
        .send()
        .await
        .context("BatchExecuteStatement")?;
    let described = wait_terminal(&bed.client, out.id().context("id")?).await?;
    assert_eq!(described.status(), Some(&StatusString::Failed));
    let statuses: Vec<String> = described
        .sub_statements()
        .iter()
        .map(|s| format!("{:?}", s.status()))
        .collect();
    assert_eq!(statuses.len(), 3);
    assert!(
        statuses[0].contains("Finished")
            && statuses[1].contains("Failed")
            && statuses[2].contains("Aborted"),
        "{statuses:?}"
    );
    assert!(described.sub_statements()[1]
        .error()
        .is_some_and(|e| e.contains("division by zero")));
    Ok(())
}

#[tokio::test]
async fn cancel_aborts_a_running_statement_and_unknown_ids_are_not_found() -> TestResult {
    let bed = bed("rscancel", None, 1000).await?;
    let out = bed
        .client
        .execute_statement()
        .cluster_identifier("etl-test")
        .database(&bed.db.name)
        .sql("SELECT pg_sleep(30)")
        .send()
        .await
        .context("ExecuteStatement")?;
    let id = out.id().context("id")?.to_string();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let cancelled = bed
        .client
        .cancel_statement()
        .id(&id)
        .send()
        .await
        .context("CancelStatement")?;
    assert_eq!(cancelled.status(), Some(true));
    let described = wait_terminal(&bed.client, &id).await?;
    assert_eq!(described.status(), Some(&StatusString::Aborted));

    let err = bed
        .client
        .describe_statement()
        .id("no-such-id")
        .send()
        .await
        .expect_err("unknown id");
    assert!(
        err.as_service_error()
            .is_some_and(|e| e.is_resource_not_found_exception()),
        "{}",
        etl_aws::describe_error(&err)
    );
    let err = bed
        .client
        .execute_statement()
        .database(&bed.db.name)
        .sql("SELECT 1")
        .send()
        .await
        .expect_err("no target");
    assert!(
        etl_aws::describe_error(&err).contains("ClusterIdentifier or WorkgroupName"),
        "{}",
        etl_aws::describe_error(&err)
    );
    Ok(())
}

pub(crate) fn settings(db: &PgDatabase, schema: &str, manifest_prefix: &str) -> RedshiftSettings {
    RedshiftSettings {
        target: target(db),
        schema: schema.into(),
        iam_role_arn: "arn:aws:iam::123456789012:role/EtlCopy".into(),
        manifest_prefix: manifest_prefix.into(),
        poll: fast_poll(),
        load_attempts: 2,
        load_retry_initial_ms: 10,
    }
}

#[tokio::test]
async fn migrate_creates_extends_and_is_idempotent_and_hostile_names_are_refused() -> TestResult {
    let bed = bed("rsmigrate", None, 1000).await?;
    let moto_s3 = etl_testbed::moto().await?.clients().await?.s3();
    let schemas = etl_schema::embedded()?;
    let views = etl_warehouse::embedded_views()?;

    for hostile in ["x\"; drop table y; --", "Analytics", "a.b"] {
        let err = RedshiftDataWarehouse::with_clients(
            settings(&bed.db, hostile, "s3://bucket/m"),
            bed.client.clone(),
            moto_s3.clone(),
            &schemas,
        )
        .expect_err("hostile schema name");
        assert!(err.to_string().contains("invalid schema"), "{err}");
    }
    let mut bad_role = settings(&bed.db, "analytics", "s3://bucket/m");
    bad_role.iam_role_arn = "arn:aws:iam::123456789012:role/x'; drop table y; --".into();
    assert!(RedshiftDataWarehouse::with_clients(
        bad_role,
        bed.client.clone(),
        moto_s3.clone(),
        &schemas
    )
    .is_err());

    // An older call_events table lacking its last columns: migrate adds them.
    bed.db
        .client
        .batch_execute("CREATE SCHEMA analytics; CREATE TABLE analytics.call_events (event_id VARCHAR(128) NOT NULL, call_id VARCHAR(128) NOT NULL)")
        .await
        .context("old table")?;
    let warehouse = RedshiftDataWarehouse::with_clients(
        settings(&bed.db, "analytics", "s3://bucket/m"),
        bed.client.clone(),
        moto_s3,
        &schemas,
    )?;
    warehouse.migrate_tables(&schemas, &views).await?;
    warehouse.migrate_tables(&schemas, &views).await?;
    let columns = |table: &str| {
        format!("SELECT column_name FROM information_schema.columns WHERE table_schema = 'analytics' AND table_name = '{table}' ORDER BY ordinal_position")
    };
    for stream in &schemas {
        let rows = bed
            .db
            .client
            .query(&columns(&stream.stream), &[])
            .await
            .context("columns")?;
        let mut got: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
        let mut expected: Vec<String> = stream.lake_columns().into_iter().map(|c| c.name).collect();
        if stream.stream != "call_events" {
            assert_eq!(got, expected, "{}: Parquet order", stream.stream);
        }
        got.sort();
        expected.sort();
        assert_eq!(got, expected, "{}", stream.stream);
    }
    let view_count = bed
        .db
        .client
        .query_one(
            "SELECT COUNT(*) FROM information_schema.views WHERE table_schema = 'analytics'",
            &[],
        )
        .await
        .context("views")?;
    assert_eq!(view_count.get::<_, i64>(0), views.len() as i64);
    let rows = warehouse
        .query_rows("SELECT COUNT(*) AS n FROM answer_seizure_ratio")
        .await?;
    assert_eq!(rows.num_rows(), 1);
    Ok(())
}
