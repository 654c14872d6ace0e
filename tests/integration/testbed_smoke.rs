//! One smoke test per stand-in, through the real AWS SDK for Rust clients built by `etl-aws`.

use std::time::Duration;

use etl_aws::athena::types::{QueryExecutionState, ResultConfiguration};
use etl_aws::dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType,
    ScalarAttributeType,
};
use etl_aws::glue::types::{
    Column, DatabaseInput, PartitionInput, SerDeInfo, StorageDescriptor, TableInput,
};
use etl_aws::kinesis::primitives::Blob;
use etl_aws::kinesis::types::{ShardIteratorType, StreamStatus};
use etl_aws::s3::error::ProvideErrorMetadata;
use etl_aws::s3::primitives::ByteStream;
use etl_testbed::{unique_ident, unique_name, TEST_REGION};
use serde_json::json;

use crate::{Context, TestResult};

#[tokio::test]
async fn kinesis_create_put_get() -> TestResult {
    let kinesis = etl_testbed::kinesis().await?.client().await?;
    let stream = unique_name("smoke");
    kinesis
        .create_stream()
        .stream_name(&stream)
        .shard_count(2)
        .send()
        .await
        .context("CreateStream")?;

    let mut status = None;
    for _ in 0..100 {
        let summary = kinesis
            .describe_stream_summary()
            .stream_name(&stream)
            .send()
            .await
            .context("DescribeStreamSummary")?;
        status = summary
            .stream_description_summary()
            .map(|d| d.stream_status().clone());
        if status == Some(StreamStatus::Active) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        status,
        Some(StreamStatus::Active),
        "stream {stream} never became ACTIVE"
    );

    let put = kinesis
        .put_record()
        .stream_name(&stream)
        .partition_key("customer-42")
        .data(Blob::new(&b"{\"hello\":\"kinesis\"}"[..]))
        .send()
        .await
        .context("PutRecord")?;
    assert!(
        put.shard_id().starts_with("shardId-"),
        "shard id {}",
        put.shard_id()
    );
    assert!(
        put.sequence_number().len() > 20,
        "kinesalite gives realistic sequence numbers: {}",
        put.sequence_number()
    );

    let iterator = kinesis
        .get_shard_iterator()
        .stream_name(&stream)
        .shard_id(put.shard_id())
        .shard_iterator_type(ShardIteratorType::AtSequenceNumber)
        .starting_sequence_number(put.sequence_number())
        .send()
        .await
        .context("GetShardIterator")?
        .shard_iterator
        .context("shard iterator")?;
    let got = kinesis
        .get_records()
        .shard_iterator(iterator)
        .send()
        .await
        .context("GetRecords")?;
    let records = got.records();
    assert_eq!(records.len(), 1, "records: {records:?}");
    assert_eq!(records[0].data().as_ref(), b"{\"hello\":\"kinesis\"}");
    assert_eq!(records[0].partition_key(), Some("customer-42"));
    assert_eq!(records[0].sequence_number(), put.sequence_number());
    assert!(
        got.next_shard_iterator().is_some(),
        "an open shard always has a next iterator"
    );
    Ok(())
}

#[tokio::test]
async fn s3_put_conditional_put_rejected_get() -> TestResult {
    let s3 = etl_testbed::moto().await?.clients().await?.s3();
    let bucket = unique_name("smoke");
    s3.create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .context("CreateBucket")?;
    s3.put_object()
        .bucket(&bucket)
        .key("lake/part-0.parquet")
        .if_none_match("*")
        .body(ByteStream::from_static(b"first"))
        .send()
        .await
        .context("first PutObject with If-None-Match: *")?;

    let err = s3
        .put_object()
        .bucket(&bucket)
        .key("lake/part-0.parquet")
        .if_none_match("*")
        .body(ByteStream::from_static(b"second"))
        .send()
        .await
        .err()
        .context("second PutObject with If-None-Match: * must be rejected")?;
    let status = err.raw_response().map(|r| r.status().as_u16());
    assert_eq!(status, Some(412), "{}", etl_aws::describe_error(&err));
    assert_eq!(err.code(), Some("PreconditionFailed"));

    let object = s3
        .get_object()
        .bucket(&bucket)
        .key("lake/part-0.parquet")
        .send()
        .await
        .context("GetObject")?;
    let body = object
        .body
        .collect()
        .await
        .context("reading object body")?
        .into_bytes();
    assert_eq!(&body[..], b"first", "the rejected put must not overwrite");
    Ok(())
}

fn parquet_descriptor(location: &str, columns: Vec<Column>) -> StorageDescriptor {
    StorageDescriptor::builder()
        .set_columns(Some(columns))
        .location(location)
        .input_format("org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat")
        .output_format("org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat")
        .serde_info(
            SerDeInfo::builder()
                .serialization_library(
                    "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe",
                )
                .build(),
        )
        .build()
}

#[tokio::test]
async fn glue_database_table_partition_round_trip() -> TestResult {
    let glue = etl_testbed::moto().await?.clients().await?.glue();
    let database = unique_ident("smoke_db");
    glue.create_database()
        .database_input(DatabaseInput::builder().name(&database).build()?)
        .send()
        .await
        .context("CreateDatabase")?;

    let location = format!("s3://lake/{database}/events/");
    let id = Column::builder().name("id").r#type("bigint").build()?;
    let dt = Column::builder().name("dt").r#type("string").build()?;
    let table = TableInput::builder()
        .name("events")
        .table_type("EXTERNAL_TABLE")
        .storage_descriptor(parquet_descriptor(&location, vec![id.clone()]))
        .partition_keys(dt)
        .build()?;
    glue.create_table()
        .database_name(&database)
        .table_input(table)
        .send()
        .await
        .context("CreateTable")?;

    // A schema change makes a second table version.
    let payload = Column::builder().name("payload").r#type("string").build()?;
    let widened = TableInput::builder()
        .name("events")
        .table_type("EXTERNAL_TABLE")
        .storage_descriptor(parquet_descriptor(&location, vec![id, payload]))
        .partition_keys(Column::builder().name("dt").r#type("string").build()?)
        .build()?;
    glue.update_table()
        .database_name(&database)
        .table_input(widened)
        .send()
        .await
        .context("UpdateTable")?;
    let versions = glue
        .get_table_versions()
        .database_name(&database)
        .table_name("events")
        .send()
        .await
        .context("GetTableVersions")?;
    assert_eq!(versions.table_versions().len(), 2, "{versions:?}");

    let partition_location = format!("{location}dt=2024-01-01/");
    let partition = PartitionInput::builder()
        .values("2024-01-01")
        .storage_descriptor(parquet_descriptor(&partition_location, vec![]))
        .build();
    glue.create_partition()
        .database_name(&database)
        .table_name("events")
        .partition_input(partition)
        .send()
        .await
        .context("CreatePartition")?;

    let got = glue
        .get_partition()
        .database_name(&database)
        .table_name("events")
        .partition_values("2024-01-01")
        .send()
        .await
        .context("GetPartition")?
        .partition
        .context("partition")?;
    assert_eq!(got.values(), ["2024-01-01"]);
    assert_eq!(
        got.storage_descriptor().and_then(|sd| sd.location()),
        Some(partition_location.as_str())
    );

    let table = glue
        .get_table()
        .database_name(&database)
        .name("events")
        .send()
        .await
        .context("GetTable")?
        .table
        .context("table")?;
    let columns: Vec<&str> = table
        .storage_descriptor()
        .map(|sd| sd.columns().iter().map(|c| c.name()).collect())
        .unwrap_or_default();
    assert_eq!(columns, ["id", "payload"]);
    assert_eq!(
        table
            .partition_keys()
            .iter()
            .map(|c| c.name())
            .collect::<Vec<_>>(),
        ["dt"]
    );
    Ok(())
}

#[tokio::test]
async fn dynamodb_conditional_write_rejected_on_conflict() -> TestResult {
    let dynamodb = etl_testbed::moto().await?.clients().await?.dynamodb();
    let table = unique_name("smoke-checkpoints");
    dynamodb
        .create_table()
        .table_name(&table)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("pk")
                .attribute_type(ScalarAttributeType::S)
                .build()?,
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("pk")
                .key_type(KeyType::Hash)
                .build()?,
        )
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .context("CreateTable")?;

    let put = |owner: &'static str| {
        dynamodb
            .put_item()
            .table_name(&table)
            .item("pk", AttributeValue::S("shard-0".into()))
            .item("owner", AttributeValue::S(owner.into()))
            .condition_expression("attribute_not_exists(pk)")
            .send()
    };
    put("worker-a").await.context("first conditional PutItem")?;
    let err = put("worker-b")
        .await
        .err()
        .context("second conditional PutItem must be rejected")?;
    assert!(
        err.as_service_error()
            .is_some_and(|e| e.is_conditional_check_failed_exception()),
        "{}",
        etl_aws::describe_error(&err)
    );

    let item = dynamodb
        .get_item()
        .table_name(&table)
        .key("pk", AttributeValue::S("shard-0".into()))
        .consistent_read(true)
        .send()
        .await
        .context("GetItem")?;
    let owner = item
        .item()
        .and_then(|i| i.get("owner"))
        .and_then(|v| v.as_s().ok());
    assert_eq!(
        owner.map(String::as_str),
        Some("worker-a"),
        "the rejected write must not apply"
    );
    Ok(())
}

#[tokio::test]
async fn athena_start_poll_canned_result() -> TestResult {
    let moto = etl_testbed::moto().await?;
    let athena = moto.clients().await?.athena();
    let _athena = moto.athena_lock().await;
    moto.set_state_transition(
        "athena::execution",
        json!({"progression": "manual", "times": 1}),
    )
    .await?;
    let column = |name: &str, ty: &str| {
        json!({"CatalogName": "hive", "SchemaName": "lake", "TableName": "events", "Name": name,
               "Label": name, "Type": ty, "Precision": 10, "Scale": 0, "Nullable": "NULLABLE",
               "CaseSensitive": false})
    };
    moto.queue_athena_results(
        TEST_REGION,
        json!([{
            "rows": [
                {"Data": [{"VarCharValue": "dt"}, {"VarCharValue": "events"}]},
                {"Data": [{"VarCharValue": "2024-01-01"}, {"VarCharValue": "42"}]}
            ],
            "column_info": [column("dt", "varchar"), column("events", "bigint")]
        }]),
    )
    .await?;

    let execution_id = athena
        .start_query_execution()
        .query_string("SELECT dt, count(*) AS events FROM lake.events GROUP BY dt")
        .result_configuration(
            ResultConfiguration::builder()
                .output_location("s3://athena-results/smoke/")
                .build(),
        )
        .send()
        .await
        .context("StartQueryExecution")?
        .query_execution_id
        .context("query execution id")?;

    let mut seen = Vec::new();
    for _ in 0..50 {
        let state = athena
            .get_query_execution()
            .query_execution_id(&execution_id)
            .send()
            .await
            .context("GetQueryExecution")?
            .query_execution()
            .and_then(|q| q.status())
            .and_then(|s| s.state())
            .cloned()
            .context("query state")?;
        seen.push(state.clone());
        if matches!(
            state,
            QueryExecutionState::Succeeded
                | QueryExecutionState::Failed
                | QueryExecutionState::Cancelled
        ) {
            break;
        }
    }
    assert_eq!(
        seen.last(),
        Some(&QueryExecutionState::Succeeded),
        "states: {seen:?}"
    );
    assert!(
        seen.len() >= 2,
        "the query must be seen running before it succeeds: {seen:?}"
    );

    let results = athena
        .get_query_results()
        .query_execution_id(&execution_id)
        .send()
        .await
        .context("GetQueryResults")?;
    let rows: Vec<Vec<&str>> = results
        .result_set()
        .map(|set| {
            set.rows()
                .iter()
                .map(|r| {
                    r.data()
                        .iter()
                        .map(|d| d.var_char_value().unwrap_or(""))
                        .collect()
                })
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(rows, [vec!["dt", "events"], vec!["2024-01-01", "42"]]);
    let types: Vec<&str> = results
        .result_set()
        .and_then(|set| set.result_set_metadata())
        .map(|m| m.column_info().iter().map(|c| c.r#type()).collect())
        .unwrap_or_default();
    assert_eq!(types, ["varchar", "bigint"]);
    Ok(())
}

#[tokio::test]
async fn postgres_merge() -> TestResult {
    let pg = etl_testbed::postgres().await?;
    let schema = pg.fresh_schema("smoke").await?;
    let db = &schema.client;
    let version: String = db.query_one("SHOW server_version", &[]).await?.get(0);
    assert!(version.starts_with("15."), "server_version {version}");

    db.batch_execute(
        "CREATE TABLE target (id int PRIMARY KEY, v text NOT NULL);
         INSERT INTO target VALUES (1, 'old'), (2, 'keep');
         CREATE TABLE staging (id int, v text);
         INSERT INTO staging VALUES (1, 'new'), (3, 'added');",
    )
    .await
    .context("setting up tables")?;
    let merged = db
        .execute(
            "MERGE INTO target t USING staging s ON t.id = s.id
             WHEN MATCHED THEN UPDATE SET v = s.v
             WHEN NOT MATCHED THEN INSERT (id, v) VALUES (s.id, s.v)",
            &[],
        )
        .await
        .context("MERGE")?;
    assert_eq!(merged, 2);
    let rows: Vec<(i32, String)> = db
        .query(
            &format!("SELECT id, v FROM {}.target ORDER BY id", schema.name),
            &[],
        )
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let expected = [(1, "new"), (2, "keep"), (3, "added")].map(|(i, v)| (i, v.to_owned()));
    assert_eq!(rows, expected);
    Ok(())
}

#[tokio::test]
async fn postgres_fresh_database_is_its_own() -> TestResult {
    let pg = etl_testbed::postgres().await?;
    let a = pg.fresh_database("smoke").await?;
    let b = pg.fresh_database("smoke").await?;
    assert_ne!(a.name, b.name);
    let current: String = a
        .client
        .query_one("SELECT current_database()", &[])
        .await?
        .get(0);
    assert_eq!(current, a.name);
    a.client
        .batch_execute("CREATE TABLE only_in_a (x int)")
        .await?;
    let visible: i64 = b
        .client
        .query_one(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = 'only_in_a'",
            &[],
        )
        .await?
        .get(0);
    assert_eq!(visible, 0);
    Ok(())
}
