use super::*;
use arrow::array::{
    Array, ArrayRef, AsArray, Float64Array, Int64Array, StringArray, StructArray,
    TimestampMillisecondArray,
};
use arrow::datatypes::{DataType, Fields, TimestampMillisecondType};

fn schemas() -> Vec<StreamSchema> {
    etl_schema::embedded().unwrap()
}

fn key() -> MaskKey {
    MaskKey::new(b"0123456789abcdef-test-key").unwrap()
}

/// Three call events; the third repeats the first event_id and must be dropped.
fn call_batch() -> RecordBatch {
    let schema = schemas()
        .into_iter()
        .find(|s| s.stream == "call_events")
        .unwrap();
    let arrow_schema = schema.decoded_arrow_schema();
    let s = |v: &[Option<&str>]| Arc::new(StringArray::from(v.to_vec())) as ArrayRef;
    let ts =
        |v: Vec<i64>| Arc::new(TimestampMillisecondArray::from(v).with_timezone("UTC")) as ArrayRef;
    let DataType::Struct(qfields) = arrow_schema
        .field_with_name("quality")
        .unwrap()
        .data_type()
        .clone()
    else {
        panic!("quality is a struct")
    };
    let f = |v: Vec<Option<f64>>| Arc::new(Float64Array::from(v)) as ArrayRef;
    let quality = StructArray::new(
        Fields::from(qfields.iter().cloned().collect::<Vec<_>>()),
        vec![
            f(vec![Some(4.2), None, Some(1.0)]),
            f(vec![Some(3.0), None, None]),
            f(vec![Some(0.5), None, None]),
            f(vec![Some(80.0), None, None]),
        ],
        Some(vec![true, false, true].into()),
    );
    // 2026-11-01T23:59:59.999Z, 2026-11-02T00:00:00.000Z, and a duplicate of the first.
    let columns: Vec<ArrayRef> = vec![
        s(&[Some("e1"), Some("e2"), Some("e1")]),
        s(&[Some("c1"), Some("c2"), Some("c1")]),
        s(&[Some("call_ended"), Some("call_started"), Some("call_ended")]),
        ts(vec![
            1_793_577_599_999,
            1_793_577_600_000,
            1_793_577_599_999,
        ]),
        s(&[Some("acct"), Some("acct"), Some("acct")]),
        s(&[
            Some("+14155550100"),
            Some("+442071838750"),
            Some("+14155550100"),
        ]),
        s(&[
            Some("+14155550199"),
            Some("+14155550100"),
            Some("+14155550199"),
        ]),
        s(&[Some("outbound"), Some("inbound"), Some("outbound")]),
        s(&[Some("voice"), Some("video"), Some("voice")]),
        s(&[Some("us-east-1"), None, Some("us-east-1")]),
        s(&[Some("opus"), None, Some("opus")]),
        Arc::new(Int64Array::from(vec![Some(61_000), None, Some(61_000)])),
        s(&[Some("normal_clearing"), None, Some("normal_clearing")]),
        Arc::new(quality),
        s(&[None, Some("{\"experiment\":\"b\"}"), None]),
    ];
    RecordBatch::try_new(arrow_schema, columns).unwrap()
}

#[tokio::test]
async fn call_transform_masks_flattens_partitions_and_dedups() {
    let t = Transformer::new(&schemas(), embedded_sql(), key()).unwrap();
    let out = t.transform("call_events", call_batch()).await.unwrap();
    assert_eq!((out.duplicates, out.filtered), (1, 0));
    let out = out.batches;
    let batch = arrow::compute::concat_batches(&out[0].schema(), &out).unwrap();
    assert_eq!(batch.num_rows(), 2, "the repeated event_id is dropped");
    let col = |name: &str| batch.column_by_name(name).unwrap().clone();
    let strs = |name: &str| {
        col(name)
            .as_string::<i32>()
            .iter()
            .map(|v| v.map(str::to_string))
            .collect::<Vec<_>>()
    };
    assert_eq!(strs("event_id"), [Some("e1".into()), Some("e2".into())]);
    assert_eq!(
        strs("caller"),
        [
            Some(key().mask("+14155550100")),
            Some(key().mask("+442071838750"))
        ]
    );
    assert_eq!(strs("callee")[1], Some(key().mask("+14155550100")));
    assert_eq!(
        strs("dt"),
        [Some("2026-11-01".into()), Some("2026-11-02".into())]
    );
    assert_eq!(strs("hour"), [Some("23".into()), Some("00".into())]);
    assert_eq!(
        strs("extras"),
        [None, Some("{\"experiment\":\"b\"}".into())]
    );
    let mos = col("quality_mos");
    assert_eq!(
        mos.as_primitive::<arrow::datatypes::Float64Type>().value(0),
        4.2
    );
    assert!(mos.is_null(1));
    let ts = col("occurred_at");
    assert_eq!(
        ts.as_primitive::<TimestampMillisecondType>().value(0),
        1_793_577_599_999
    );
    assert_eq!(batch.schema(), schemas()[1].transformed_arrow_schema());
    // No raw number anywhere in the output.
    for c in batch.columns() {
        if let Some(s) = c.as_string_opt::<i32>() {
            assert!(s
                .iter()
                .flatten()
                .all(|v| !v.contains("+1415") && !v.contains("+44")));
        }
    }
}

/// The SQL is planned once per stream; batches transformed one after another and at the same
/// time each get their own rows back, sorted by the query's ORDER BY.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_plan_serves_every_batch_also_concurrently() {
    let t = Arc::new(Transformer::new(&schemas(), embedded_sql(), key()).unwrap());
    // Batch k: the call batch's first two rows with event ids `k-e1`, `k-e2` and occurred_at
    // moved so that the order flips for odd k.
    let batch = |k: i64| {
        let b = call_batch().slice(0, 2);
        let ids = StringArray::from(vec![format!("{k}-e1"), format!("{k}-e2")]);
        let t0 = 1_793_577_599_999 + k * 1000;
        let times = if k % 2 == 0 {
            [t0, t0 + 1]
        } else {
            [t0 + 1, t0]
        };
        let ts = TimestampMillisecondArray::from(times.to_vec()).with_timezone("UTC");
        let mut cols = b.columns().to_vec();
        cols[0] = Arc::new(ids);
        cols[3] = Arc::new(ts);
        RecordBatch::try_new(b.schema(), cols).unwrap()
    };
    let ids_of = |out: Transformed| -> Vec<String> {
        out.batches
            .iter()
            .flat_map(|b| {
                let ids = b.column_by_name("event_id").unwrap().as_string::<i32>();
                ids.iter().flatten().map(str::to_string).collect::<Vec<_>>()
            })
            .collect()
    };
    let expected = |k: i64| {
        if k % 2 == 0 {
            vec![format!("{k}-e1"), format!("{k}-e2")]
        } else {
            vec![format!("{k}-e2"), format!("{k}-e1")]
        }
    };
    for k in 0..3 {
        let out = t.transform("call_events", batch(k)).await.unwrap();
        assert_eq!(ids_of(out), expected(k), "batch {k} in sequence");
    }
    let tasks: Vec<_> = (10..40)
        .map(|k| {
            let t = t.clone();
            tokio::spawn(async move { (k, t.transform("call_events", batch(k)).await) })
        })
        .collect();
    for task in tasks {
        let (k, out) = task.await.unwrap();
        assert_eq!(
            ids_of(out.unwrap()),
            expected(k),
            "batch {k} at the same time"
        );
    }
    // Arrival times given by the source: the same input schema, so the same plan.
    let arrivals = Transformer::with_arrivals(batch(7), vec![Some(5), Some(6)]).unwrap();
    let out = t.transform("call_events", arrivals).await.unwrap();
    assert_eq!(ids_of(out), expected(7));
}

#[tokio::test]
async fn a_query_with_the_wrong_columns_is_refused_with_the_file_name() {
    let sql = vec![
        TransformSql {
            stream: "call_events".into(),
            origin: "bad.sql".into(),
            sql: "SELECT event_id FROM input".into(),
        },
        embedded_sql().remove(0),
    ];
    let t = Transformer::new(&schemas(), sql, key()).unwrap();
    let err = t
        .transform("call_events", call_batch())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("bad.sql") && err.contains("expected 21 columns"),
        "{err}"
    );
}

#[tokio::test]
async fn rows_a_where_drops_are_counted_as_filtered_not_as_duplicates() {
    let mut sql = embedded_sql();
    let call = sql.iter_mut().find(|s| s.stream == "call_events").unwrap();
    call.sql = call
        .sql
        .replace("FROM input", "FROM input WHERE region IS NOT NULL");
    assert!(
        call.sql.contains("WHERE region"),
        "the transform has a WHERE"
    );
    let t = Transformer::new(&schemas(), sql, key()).unwrap();
    // 3 rows: e1 (us-east-1), e2 (no region), e1 again.
    let out = t.transform("call_events", call_batch()).await.unwrap();
    assert_eq!(out.duplicates, 1, "the second e1");
    assert_eq!(out.filtered, 1, "e2 has no region");
    let rows: usize = out.batches.iter().map(|b| b.num_rows()).sum();
    assert_eq!(rows, 1);
}

#[tokio::test]
async fn a_query_that_adds_rows_is_refused() {
    let mut sql = embedded_sql();
    let call = sql.iter_mut().find(|s| s.stream == "call_events").unwrap();
    call.sql = format!(
        "{0} UNION ALL {0}",
        call.sql.replace("ORDER BY occurred_at, event_id", "")
    );
    let t = Transformer::new(&schemas(), sql, key()).unwrap();
    let err = t
        .transform("call_events", call_batch())
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("returned 4 rows for 2 input rows"), "{err}");
}

#[test]
fn missing_sql_is_named() {
    let err = Transformer::new(&schemas(), vec![], key())
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("queries/transform/app_events.sql"), "{err}");
}

#[test]
fn short_keys_are_refused_and_masking_is_keyed() {
    assert!(MaskKey::new(b"short").unwrap_err().contains("at least 16"));
    let other = MaskKey::new(b"another-key-0123456789").unwrap();
    assert_ne!(key().mask("+14155550100"), other.mask("+14155550100"));
    assert_eq!(key().mask("+14155550100").len(), 64);
    assert!(!format!("{:?}", key()).contains("0123"));
}

#[test]
fn days_format_in_the_proleptic_gregorian_calendar() {
    assert_eq!(functions::format_day(0), "1970-01-01");
    assert_eq!(functions::format_day(-1), "1969-12-31");
    assert_eq!(functions::format_day(19_782), "2024-02-29");
    assert_eq!(functions::format_day(20_393), "2025-11-01");
    assert_eq!(functions::format_day(2_932_896), "9999-12-31");
}
