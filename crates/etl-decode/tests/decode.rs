//! Decoding accepted records: exact column values, schema, row mapping and buffer reuse.

use crate::common::*;
use arrow::array::{Array, AsArray, RecordBatch, StructArray};
use arrow::datatypes::{Float64Type, Int64Type, TimestampMillisecondType};
use etl_decode::{DecodeOptions, Decoder, RejectReason};

fn str_col<'a>(b: &'a RecordBatch, name: &str) -> Vec<Option<&'a str>> {
    b.column_by_name(name)
        .unwrap()
        .as_string::<i32>()
        .iter()
        .collect()
}

fn ts_col(b: &RecordBatch, name: &str) -> Vec<Option<i64>> {
    b.column_by_name(name)
        .unwrap()
        .as_primitive::<TimestampMillisecondType>()
        .iter()
        .collect()
}

#[test]
fn app_event_decodes_to_exact_values() {
    let rec = APP_OK.replace(
        "}}",
        "},\"experiment\":\"blue\",\"ab\":[1, {\"x\":null}],\"k\\u00e9y\":\"v\"}",
    );
    let out = decode("app_events", &[&rec]);
    assert!(out.rejects.is_empty(), "{:?}", out.rejects);
    assert_eq!(out.rows, [0]);
    let b = &out.batch;
    assert_eq!(b.schema(), schema("app_events").decoded_arrow_schema());
    assert_eq!(str_col(b, "event_id"), [Some("evt-0001")]);
    assert_eq!(str_col(b, "event_type"), [Some("message_sent")]);
    assert_eq!(ts_col(b, "occurred_at"), [Some(1_793_491_201_250)]);
    assert_eq!(str_col(b, "user_id"), [Some("u-42")]);
    assert_eq!(str_col(b, "account_id"), [Some("acc-7")]);
    assert_eq!(str_col(b, "session_id"), [Some("s-9")]);
    assert_eq!(str_col(b, "platform"), [Some("ios")]);
    assert_eq!(str_col(b, "app_version"), [Some("5.2.1")]);
    assert_eq!(str_col(b, "country"), [Some("US")]);
    // json fields keep the raw text, whitespace and escapes included.
    assert_eq!(
        str_col(b, "properties"),
        [Some(
            r#"{"chars": 42, "thread":"t-1","emoji":"\ud83d\ude00"}"#
        )]
    );
    // Unknown keys, in input order, keys and values raw.
    let extras = str_col(b, "extras")[0].unwrap();
    assert_eq!(
        extras,
        r#"{"experiment":"blue","ab":[1, {"x":null}],"k\u00e9y":"v"}"#
    );
    let parsed: serde_json::Value = serde_json::from_str(extras).unwrap();
    assert_eq!(parsed["kéy"], "v");
}

#[test]
fn call_event_decodes_to_exact_values() {
    let out = decode("call_events", &[CALL_OK]);
    assert!(out.rejects.is_empty(), "{:?}", out.rejects);
    let b = &out.batch;
    assert_eq!(b.schema(), schema("call_events").decoded_arrow_schema());
    assert_eq!(str_col(b, "event_id"), [Some("c-1")]);
    assert_eq!(str_col(b, "call_id"), [Some("call-9")]);
    assert_eq!(str_col(b, "event_type"), [Some("call_ended")]);
    assert_eq!(ts_col(b, "occurred_at"), [Some(1_793_491_201_000)]);
    assert_eq!(str_col(b, "caller"), [Some("+14155550100")]);
    assert_eq!(str_col(b, "callee"), [Some("+442071838750")]);
    assert_eq!(str_col(b, "direction"), [Some("outbound")]);
    assert_eq!(str_col(b, "channel"), [Some("voice")]);
    assert_eq!(str_col(b, "region"), [Some("us-east-1")]);
    assert_eq!(str_col(b, "codec"), [Some("opus")]);
    let d: Vec<_> = b
        .column_by_name("duration_ms")
        .unwrap()
        .as_primitive::<Int64Type>()
        .iter()
        .collect();
    assert_eq!(d, [Some(61234)]);
    assert_eq!(str_col(b, "hangup_cause"), [Some("normal_clearing")]);
    let q = b.column_by_name("quality").unwrap().as_struct();
    assert!(q.is_valid(0));
    let child = |n: &str| {
        q.column_by_name(n)
            .unwrap()
            .as_primitive::<Float64Type>()
            .value(0)
    };
    assert_eq!(
        (
            child("mos"),
            child("jitter_ms"),
            child("packet_loss_pct"),
            child("rtt_ms")
        ),
        (4.2, 3.0, 0.1, 45.5)
    );
    assert_eq!(str_col(b, "extras"), [None]);
}

#[test]
fn optional_fields_absent_null_and_partial_structs() {
    let bare = r#"{"event_id":"c-2","call_id":"k","event_type":"call_started","occurred_at":"2026-11-01T00:00:00Z","account_id":"a","caller":"+14155550100","callee":"+14155550101","direction":"inbound","channel":"video","codec":null,"quality":null}"#;
    let partial = with(CALL_OK, "quality", Some(r#"{"mos":null,"rtt_ms":-1}"#));
    let empty = with(CALL_OK, "quality", Some("{}"));
    let out = decode("call_events", &[bare, &partial, &empty]);
    assert!(out.rejects.is_empty(), "{:?}", out.rejects);
    let b = &out.batch;
    assert_eq!(
        str_col(b, "region"),
        [None, Some("us-east-1"), Some("us-east-1")]
    );
    assert_eq!(str_col(b, "codec"), [None, Some("opus"), Some("opus")]);
    let q: &StructArray = b.column_by_name("quality").unwrap().as_struct();
    assert_eq!(
        (q.is_null(0), q.is_valid(1), q.is_valid(2)),
        (true, true, true)
    );
    let mos: Vec<_> = q
        .column_by_name("mos")
        .unwrap()
        .as_primitive::<Float64Type>()
        .iter()
        .collect();
    let rtt: Vec<_> = q
        .column_by_name("rtt_ms")
        .unwrap()
        .as_primitive::<Float64Type>()
        .iter()
        .collect();
    assert_eq!(mos[1..], [None, None]);
    assert_eq!(rtt[1..], [Some(-1.0), None]);
}

#[test]
fn every_timestamp_form_becomes_utc_millis() {
    let cases: [(&str, i64); 10] = [
        (r#""2026-11-01T00:00:01Z""#, 1_793_491_201_000),
        (r#""2026-11-01t00:00:01z""#, 1_793_491_201_000),
        (r#""2026-11-01 00:00:01Z""#, 1_793_491_201_000),
        (r#""2026-11-01T00:00:01.5Z""#, 1_793_491_201_500),
        (r#""2026-11-01T00:00:01.123456789Z""#, 1_793_491_201_123),
        (r#""2026-11-01T01:00:01+01:00""#, 1_793_491_201_000),
        (r#""2026-10-31T19:30:01.999-04:30""#, 1_793_491_201_999),
        (r#""2026-11-01T00:00:01\u002e25Z""#, 1_793_491_201_250),
        ("1793491201000", 1_793_491_201_000),
        ("0", 0),
    ];
    let recs: Vec<String> = cases
        .iter()
        .map(|(v, _)| with(CALL_OK, "occurred_at", Some(v)))
        .collect();
    let out = decoder("call_events")
        .decode(recs.iter().map(|r| r.as_bytes()))
        .unwrap();
    assert!(out.rejects.is_empty(), "{:?}", out.rejects);
    let expected: Vec<Option<i64>> = cases.iter().map(|(_, ms)| Some(*ms)).collect();
    assert_eq!(ts_col(&out.batch, "occurred_at"), expected);
    // Cross-check the text forms against chrono.
    for (v, ms) in &cases[..7] {
        let text = v.trim_matches('"').replace(' ', "T");
        let c = chrono::DateTime::parse_from_rfc3339(&text).unwrap();
        assert_eq!(c.timestamp_millis(), *ms, "{v}");
    }
}

#[test]
fn escaped_strings_are_unescaped_and_checked_after_unescaping() {
    let rec = with(APP_OK, "user_id", Some(r#""u\"q\\\n\u00e9\ud83d\ude00""#));
    let rec = with(&rec, "platform", Some(r#""\u0069os""#));
    let rec = with(&rec, "country", Some(r#""\u0055S""#));
    let out = decode("app_events", &[&rec]);
    assert!(out.rejects.is_empty(), "{:?}", out.rejects);
    assert_eq!(str_col(&out.batch, "user_id"), [Some("u\"q\\\né😀")]);
    assert_eq!(str_col(&out.batch, "platform"), [Some("ios")]);
    assert_eq!(str_col(&out.batch, "country"), [Some("US")]);
}

#[test]
fn mixed_batch_keeps_row_to_input_mapping() {
    let bad_type = with(CALL_OK, "duration_ms", Some("\"61234\""));
    let other = with(CALL_OK, "event_id", Some("\"c-2\""));
    let third = with(CALL_OK, "event_id", Some("\"c-3\""));
    let records: Vec<&[u8]> = vec![
        b"not json",
        CALL_OK.as_bytes(),
        bad_type.as_bytes(),
        b"\xff\xfe",
        other.as_bytes(),
        b"[]",
        third.as_bytes(),
    ];
    let out = decoder("call_events").decode(records).unwrap();
    assert_eq!(out.rows, [1, 4, 6]);
    assert_eq!(out.batch.num_rows(), 3);
    assert_eq!(
        str_col(&out.batch, "event_id"),
        [Some("c-1"), Some("c-2"), Some("c-3")]
    );
    let rejects: Vec<(u32, RejectReason)> =
        out.rejects.iter().map(|r| (r.index, r.reason)).collect();
    assert_eq!(
        rejects,
        [
            (0, RejectReason::InvalidJson),
            (2, RejectReason::WrongType),
            (3, RejectReason::InvalidUtf8),
            (5, RejectReason::NotAnObject),
        ]
    );
}

#[test]
fn decoder_reuses_buffers_without_leaking_rows_between_calls() {
    let mut d = decoder("call_events");
    let many: Vec<String> = (0..3000)
        .map(|i| with(CALL_OK, "event_id", Some(&format!("\"e{i}\""))))
        .collect();
    let first = d.decode(many.iter().map(|r| r.as_bytes())).unwrap();
    assert_eq!(first.batch.num_rows(), 3000);
    let rejected_only = d.decode([b"{".as_slice()]).unwrap();
    assert_eq!(rejected_only.batch.num_rows(), 0);
    assert_eq!(rejected_only.rejects.len(), 1);
    let empty = d.decode(std::iter::empty()).unwrap();
    assert_eq!((empty.batch.num_rows(), empty.rejects.len()), (0, 0));
    let again = d.decode([CALL_OK.as_bytes(), many[7].as_bytes()]).unwrap();
    assert_eq!(str_col(&again.batch, "event_id"), [Some("c-1"), Some("e7")]);
    assert_eq!(again.rows, [0, 1]);
    // Batches handed out earlier are unaffected by later calls.
    assert_eq!(str_col(&first.batch, "event_id")[2999], Some("e2999"));
}

#[test]
fn whitespace_and_key_order_do_not_matter() {
    let rec = " \t{ \"quality\" : { \"rtt_ms\" : 1 , \"mos\" : 2.5 } ,\n \"hangup_cause\":\"busy\", \"duration_ms\" : 0, \"codec\":\"PCMU\",\"region\":\"eu\",\"channel\":\"voice\",\"direction\":\"inbound\",\"callee\":\"+4915112345678\",\"caller\":\"+14155550100\",\"account_id\":\"a\",\"occurred_at\":\"2024-02-29T23:59:59.999Z\",\"event_type\":\"quality_sample\",\"call_id\":\"x\",\"event_id\":\"y\" } \r\n";
    let out = decode("call_events", &[rec]);
    assert!(out.rejects.is_empty(), "{:?}", out.rejects);
    assert_eq!(str_col(&out.batch, "event_id"), [Some("y")]);
    let q = out.batch.column_by_name("quality").unwrap().as_struct();
    assert_eq!(
        q.column_by_name("mos")
            .unwrap()
            .as_primitive::<Float64Type>()
            .value(0),
        2.5
    );
}

#[test]
fn max_record_bytes_is_configurable() {
    let mut d = Decoder::new(
        schema("call_events"),
        DecodeOptions {
            max_record_bytes: 100,
        },
    );
    let out = d.decode([CALL_OK.as_bytes()]).unwrap();
    assert_eq!(out.rejects[0].reason, RejectReason::TooLarge);
    assert_eq!(DecodeOptions::default().max_record_bytes, 1 << 20);
    assert_eq!(d.validate(b"{}").unwrap_err().0, RejectReason::MissingField);
}
