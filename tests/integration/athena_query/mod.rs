//! `etl_query::athena` against moto's Athena: the call sequence (StartQueryExecution with
//! workgroup, database, output location, token and parameters; GetQueryExecution polls through
//! QUEUED and RUNNING; GetQueryResults), typed values from ColumnInfo over more than 1,000 rows,
//! the header row, cancel (StopQueryExecution), a query cancelled elsewhere, the timeout, and
//! idempotent named queries.
//!
//! moto runs no SQL: results are queued with `/moto-api/static/athena/query-results`, and the
//! state progression is set with `/moto-api/state-manager/set-transition` (global to the server,
//! so every test holds `athena_lock` and puts the progression back to `immediate`).
//! moto answers `GetQueryResults` in one page (no `NextToken`, `MaxResults` ignored); the paging
//! test puts [`paging_proxy::PagingProxy`] in front of moto, which cuts that answer into Athena's
//! pages (`MaxResults`, `NextToken`), to drive the page loop over 2,345 rows.

mod paging_proxy;

use crate::{Context, TestResult};
use etl_query::athena::{AthenaEngine, AthenaSettings};
use etl_query::QueryError;
use std::time::Duration;

const REGION: &str = etl_testbed::TEST_REGION;

fn settings(workgroup: &str, bucket: &str) -> AthenaSettings {
    AthenaSettings {
        workgroup: workgroup.to_string(),
        database: "analytics".into(),
        catalog: None,
        output_location: Some(format!("s3://{bucket}/athena/")),
        poll_initial: Duration::from_millis(5),
        poll_max: Duration::from_millis(40),
        page_rows: 1000,
        timeout: None,
    }
}

async fn setup(
    moto: &etl_testbed::Moto,
) -> Result<(etl_aws::AwsClients, String, String), crate::Failure> {
    let clients = moto.clients().await?;
    let workgroup = etl_testbed::unique_ident("wg");
    clients
        .athena()
        .create_work_group()
        .name(&workgroup)
        .send()
        .await
        .context("CreateWorkGroup")?;
    let bucket = etl_testbed::unique_name("athena-results");
    clients
        .s3()
        .create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .context("CreateBucket")?;
    Ok((clients, workgroup, bucket))
}

fn manual(times: u32) -> serde_json::Value {
    serde_json::json!({"progression": "manual", "times": times})
}

fn immediate() -> serde_json::Value {
    serde_json::json!({"progression": "immediate"})
}

#[tokio::test]
async fn a_query_polls_through_queued_and_running_and_reads_1500_typed_rows() -> TestResult {
    let moto = etl_testbed::moto().await?;
    let _guard = moto.athena_lock().await;
    let (clients, workgroup, bucket) = setup(moto).await?;

    let columns = serde_json::json!([
        {"Name": "call_id", "Type": "varchar"},
        {"Name": "events", "Type": "bigint"},
        {"Name": "first_at", "Type": "timestamp"},
        {"Name": "mos", "Type": "double"},
    ]);
    let mut rows = vec![serde_json::json!({"Data": [
        {"VarCharValue": "call_id"}, {"VarCharValue": "events"},
        {"VarCharValue": "first_at"}, {"VarCharValue": "mos"}]})];
    for i in 0..1500 {
        let mos = if i % 100 == 0 {
            serde_json::json!({})
        } else {
            serde_json::json!({"VarCharValue": format!("{}.5", i % 5)})
        };
        rows.push(serde_json::json!({"Data": [
            {"VarCharValue": format!("c{i:04}")},
            {"VarCharValue": i.to_string()},
            {"VarCharValue": format!("2024-05-01 10:{:02}:{:02}.250", (i / 60) % 60, i % 60)},
            mos,
        ]}));
    }
    moto.queue_athena_results(
        REGION,
        serde_json::json!([{"rows": rows, "column_info": columns}]),
    )
    .await?;
    moto.set_state_transition("athena::execution", manual(2))
        .await?;

    let engine = AthenaEngine::new(clients.athena(), settings(&workgroup, &bucket))?;
    let sql = "SELECT call_id, count(*) AS events FROM call_events WHERE dt = ? GROUP BY call_id";
    let params = vec!["'2024-05-01'".to_string()];
    let result = engine.run(sql, &params, std::future::pending()).await;
    moto.set_state_transition("athena::execution", immediate())
        .await?;
    let result = result?;

    let stats = result.athena.clone().context("Athena statistics")?;
    assert_eq!(
        stats.states,
        ["QUEUED", "RUNNING", "SUCCEEDED"],
        "{stats:?}"
    );
    assert!(stats.polls >= 4, "{stats:?}");
    assert_eq!(stats.pages, 1, "moto answers in one page");
    assert_eq!(result.rows(), 1500, "the header row is not data");

    // Typed from ColumnInfo.
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::{DataType, Float64Type, Int64Type, TimeUnit, TimestampMillisecondType};
    let types: Vec<DataType> = result
        .schema
        .fields()
        .iter()
        .map(|f| f.data_type().clone())
        .collect();
    assert_eq!(
        types,
        [
            DataType::Utf8,
            DataType::Int64,
            DataType::Timestamp(TimeUnit::Millisecond, None),
            DataType::Float64
        ]
    );
    let batch = arrow::compute::concat_batches(&result.schema, &result.batches)?;
    assert_eq!(batch.column(0).as_string::<i32>().value(1499), "c1499");
    assert_eq!(
        batch.column(1).as_primitive::<Int64Type>().value(1234),
        1234
    );
    assert_eq!(
        batch
            .column(2)
            .as_primitive::<TimestampMillisecondType>()
            .value(61),
        1_714_557_661_250
    );
    assert!(batch.column(3).is_null(200));
    assert_eq!(batch.column(3).as_primitive::<Float64Type>().value(7), 2.5);

    // What Athena was asked.
    let execution = clients
        .athena()
        .get_query_execution()
        .query_execution_id(&stats.execution_id)
        .send()
        .await
        .context("GetQueryExecution")?;
    let execution = execution.query_execution().context("QueryExecution")?;
    assert_eq!(execution.query(), Some(sql));
    assert_eq!(execution.work_group(), Some(workgroup.as_str()));
    assert_eq!(execution.execution_parameters(), params.as_slice());
    assert_eq!(
        execution
            .query_execution_context()
            .and_then(|c| c.database()),
        Some("analytics")
    );
    let output = execution
        .result_configuration()
        .and_then(|c| c.output_location())
        .unwrap_or_default();
    assert!(
        output.starts_with(&format!("s3://{bucket}/athena/")),
        "{output}"
    );
    Ok(())
}

#[tokio::test]
async fn a_first_row_that_is_not_the_header_is_refused() -> TestResult {
    let moto = etl_testbed::moto().await?;
    let _guard = moto.athena_lock().await;
    let (clients, workgroup, bucket) = setup(moto).await?;
    moto.queue_athena_results(
        REGION,
        serde_json::json!([{
            "rows": [{"Data": [{"VarCharValue": "7"}]}],
            "column_info": [{"Name": "n", "Type": "bigint"}],
        }]),
    )
    .await?;
    let engine = AthenaEngine::new(clients.athena(), settings(&workgroup, &bucket))?;
    let err = engine
        .run("SELECT 7 AS n", &[], std::future::pending())
        .await
        .err()
        .context("a result without its header row")?;
    assert!(
        matches!(err, QueryError::BadResult { .. }) && err.to_string().contains("column names"),
        "{err}"
    );
    Ok(())
}

#[tokio::test]
async fn ctrl_c_stops_the_query_and_other_cancellations_are_reported() -> TestResult {
    let moto = etl_testbed::moto().await?;
    let _guard = moto.athena_lock().await;
    let (clients, workgroup, bucket) = setup(moto).await?;
    moto.set_state_transition("athena::execution", manual(100_000))
        .await?;
    let engine = AthenaEngine::new(clients.athena(), settings(&workgroup, &bucket))?;

    // Our cancel signal: StopQueryExecution, then the error.
    let cancelled = engine
        .run(
            "SELECT 1",
            &[],
            tokio::time::sleep(Duration::from_millis(300)),
        )
        .await;
    // Cancelled elsewhere (another user, the console): reported with CANCELLED.
    let id = engine
        .start("SELECT 2", &[], &etl_query::athena::request_token())
        .await;
    let elsewhere = match &id {
        Ok(id) => {
            clients
                .athena()
                .stop_query_execution()
                .query_execution_id(id)
                .send()
                .await
                .context("StopQueryExecution")?;
            Some(engine.wait(id, std::future::pending()).await)
        }
        Err(_) => None,
    };
    // The timeout stops the query too.
    let mut short = settings(&workgroup, &bucket);
    short.timeout = Some(Duration::from_millis(200));
    let timed_out = AthenaEngine::new(clients.athena(), short)?
        .run("SELECT 3", &[], std::future::pending())
        .await;
    moto.set_state_transition("athena::execution", immediate())
        .await?;

    let err = cancelled.err().context("the cancelled query")?;
    let QueryError::Cancelled {
        execution_id,
        reason,
    } = &err
    else {
        return Err(crate::Failure(format!("expected Cancelled, got {err}")));
    };
    assert!(reason.contains("StopQueryExecution"), "{reason}");
    let state = clients
        .athena()
        .get_query_execution()
        .query_execution_id(execution_id)
        .send()
        .await
        .context("GetQueryExecution")?;
    let state = state
        .query_execution()
        .and_then(|e| e.status())
        .and_then(|s| s.state())
        .map(|s| s.as_str().to_string());
    assert_eq!(state.as_deref(), Some("CANCELLED"));

    id?;
    let elsewhere = elsewhere.context("the second query")?;
    assert!(
        matches!(elsewhere, Err(QueryError::Cancelled { .. })),
        "{elsewhere:?}"
    );
    let err = timed_out.err().context("the timed-out query")?;
    assert!(matches!(err, QueryError::TimedOut { .. }), "{err}");
    Ok(())
}

#[tokio::test]
async fn saving_named_queries_twice_creates_them_once() -> TestResult {
    let moto = etl_testbed::moto().await?;
    let (clients, workgroup, _bucket) = setup(moto).await?;
    let files = etl_query::named::embedded();
    let athena = clients.athena();
    let first = etl_query::named::save(&athena, &workgroup, "analytics", &files).await?;
    assert_eq!(first.len(), files.len());
    assert!(
        first
            .iter()
            .all(|(_, s)| matches!(s, etl_query::named::Saved::Created(_))),
        "{first:?}"
    );
    let second = etl_query::named::save(&athena, &workgroup, "analytics", &files).await?;
    assert!(
        second
            .iter()
            .all(|(_, s)| matches!(s, etl_query::named::Saved::Unchanged(_))),
        "{second:?}"
    );
    let ids = athena
        .list_named_queries()
        .work_group(&workgroup)
        .send()
        .await
        .context("ListNamedQueries")?;
    assert_eq!(ids.named_query_ids().len(), files.len());
    let one = athena
        .get_named_query()
        .named_query_id(&ids.named_query_ids()[0])
        .send()
        .await
        .context("GetNamedQuery")?;
    let one = one.named_query().context("NamedQuery")?;
    assert!(!one.query_string().contains("{{"), "{}", one.query_string());
    assert!(one.query_string().contains('?'), "{}", one.query_string());
    assert_eq!(one.database(), "analytics");
    Ok(())
}

#[tokio::test]
async fn results_over_1000_rows_are_read_page_by_page_with_the_header_only_on_the_first(
) -> TestResult {
    let moto = etl_testbed::moto().await?;
    let _guard = moto.athena_lock().await;
    let (_, workgroup, bucket) = setup(moto).await?;
    let proxy = paging_proxy::PagingProxy::start(moto.port()).await?;
    let clients = etl_aws::AwsClients::load(&etl_testbed::settings_for(&proxy.endpoint)).await?;

    // One text column; the first row of the second page is the word "word", the column's name:
    // on any page but the first that is data, not a header.
    let mut rows = vec![serde_json::json!({"Data": [{"VarCharValue": "word"}]})];
    for i in 0..2345 {
        let word = if i == 999 {
            "word".to_string()
        } else {
            format!("w{i}")
        };
        rows.push(serde_json::json!({"Data": [{"VarCharValue": word}]}));
    }
    moto.queue_athena_results(
        REGION,
        serde_json::json!([{"rows": rows, "column_info": [{"Name": "word", "Type": "varchar"}]}]),
    )
    .await?;
    let engine = AthenaEngine::new(clients.athena(), settings(&workgroup, &bucket))?;
    let result = engine
        .run("SELECT word FROM words", &[], std::future::pending())
        .await?;
    let stats = result.athena.clone().context("statistics")?;
    assert_eq!(stats.pages, 3, "{stats:?}");
    assert_eq!(
        proxy.pages.load(std::sync::atomic::Ordering::SeqCst),
        3,
        "GetQueryResults calls through the proxy"
    );
    assert_eq!(result.rows(), 2345);
    use arrow::array::AsArray;
    let batch = arrow::compute::concat_batches(&result.schema, &result.batches)?;
    let words = batch.column(0).as_string::<i32>();
    assert_eq!(words.value(0), "w0");
    assert_eq!(words.value(999), "word");
    assert_eq!(words.value(2344), "w2344");
    Ok(())
}

#[tokio::test]
async fn a_failed_query_is_reported_with_athenas_reason() -> TestResult {
    let moto = etl_testbed::moto().await?;
    let _guard = moto.athena_lock().await;
    let (_, workgroup, bucket) = setup(moto).await?;
    let reason = "SYNTAX_ERROR: line 1:8: Column 'nope' cannot be resolved";
    let proxy = paging_proxy::PagingProxy::failing(moto.port(), reason).await?;
    let clients = etl_aws::AwsClients::load(&etl_testbed::settings_for(&proxy.endpoint)).await?;
    let engine = AthenaEngine::new(clients.athena(), settings(&workgroup, &bucket))?;
    let err = engine
        .run("SELECT nope FROM call_events", &[], std::future::pending())
        .await
        .err()
        .context("a failed query")?;
    let QueryError::Failed { reason: got, .. } = &err else {
        return Err(crate::Failure(format!("expected Failed, got {err}")));
    };
    assert!(got.starts_with(reason), "{got}");
    assert!(got.contains("error category 2, type 1006"), "{got}");
    assert!(err.to_string().contains("FAILED: SYNTAX_ERROR"), "{err}");
    Ok(())
}

/// `[athena] partition_projection` turned on for a lake whose Glue tables already exist: the next
/// sync writes the projection parameters although the schema did not change, and a sync after
/// that changes nothing; turned off, the next sync removes them.
#[tokio::test]
async fn projection_reaches_tables_created_before_it_was_on() -> TestResult {
    use etl_lake::catalog::{Catalog, TableChange};
    let moto = etl_testbed::moto().await?;
    let glue = moto.clients().await?.glue();
    let database = etl_testbed::unique_ident("proj");
    let schemas = etl_schema::embedded().context("schemas")?;
    let calls = schemas
        .iter()
        .find(|s| s.stream == "call_events")
        .context("call_events schema")?;
    let lake = "s3://lake-bucket/events";
    let plain = etl_glue::GlueCatalog::new(glue.clone(), &database, lake);
    assert_eq!(plain.sync_table(calls).await?, TableChange::Created);
    let projected = etl_glue::GlueCatalog::new(glue.clone(), &database, lake).with_projection(
        etl_glue::Projection {
            dt_start: "2024-01-01".into(),
        },
    );
    assert_eq!(
        projected.sync_table(calls).await?,
        TableChange::Extended(Vec::new())
    );
    assert_eq!(projected.sync_table(calls).await?, TableChange::Unchanged);
    let params = table_parameters(&glue, &database, "call_events").await?;
    assert_eq!(
        params.get("storage.location.template").map(String::as_str),
        Some("s3://lake-bucket/events/call_events/dt=${dt}/hour=${hour}/")
    );
    assert_eq!(
        params.get("projection.hour.digits").map(String::as_str),
        Some("2")
    );
    // Turned off again (what a compacted lake needs): the next sync removes the projection.
    assert_eq!(
        plain.sync_table(calls).await?,
        TableChange::Extended(Vec::new())
    );
    assert_eq!(plain.sync_table(calls).await?, TableChange::Unchanged);
    let params = table_parameters(&glue, &database, "call_events").await?;
    assert_ne!(
        params.get("projection.enabled").map(String::as_str),
        Some("true"),
        "projection is off"
    );
    Ok(())
}

/// The parameters of Glue table `database.table`.
async fn table_parameters(
    glue: &etl_aws::glue::Client,
    database: &str,
    table: &str,
) -> Result<std::collections::HashMap<String, String>, crate::Failure> {
    let out = glue
        .get_table()
        .database_name(database)
        .name(table)
        .send()
        .await
        .context("GetTable")?;
    Ok(out
        .table()
        .and_then(|t| t.parameters())
        .cloned()
        .unwrap_or_default())
}
