//! Shared helpers for the decoder tests.
#![allow(dead_code)]

use etl_decode::{DecodeOptions, DecodedBatch, Decoder, Reject};
use etl_schema::StreamSchema;
use std::sync::Arc;

pub fn schema(stream: &str) -> Arc<StreamSchema> {
    let all = etl_schema::embedded().expect("embedded schemas parse");
    Arc::new(
        all.into_iter()
            .find(|s| s.stream == stream)
            .expect("stream exists"),
    )
}

pub fn decoder(stream: &str) -> Decoder {
    Decoder::new(schema(stream), DecodeOptions::default())
}

pub fn decode(stream: &str, records: &[&str]) -> DecodedBatch {
    decoder(stream)
        .decode(records.iter().map(|r| r.as_bytes()))
        .expect("no internal error")
}

/// The single reject of a one-record batch (panics if the record was accepted).
pub fn reject(stream: &str, record: &str) -> Reject {
    let out = decode(stream, &[record]);
    assert_eq!(out.batch.num_rows(), 0, "record was accepted: {record}");
    assert_eq!(out.rejects.len(), 1);
    out.rejects.into_iter().next().unwrap()
}

pub const APP_OK: &str = r#"{"event_id":"evt-0001","event_type":"message_sent","occurred_at":"2026-11-01T00:00:01.250Z","user_id":"u-42","account_id":"acc-7","session_id":"s-9","platform":"ios","app_version":"5.2.1","country":"US","properties":{"chars": 42, "thread":"t-1","emoji":"\ud83d\ude00"}}"#;

pub const CALL_OK: &str = r#"{"event_id":"c-1","call_id":"call-9","event_type":"call_ended","occurred_at":1793491201000,"account_id":"acc-7","caller":"+14155550100","callee":"+442071838750","direction":"outbound","channel":"voice","region":"us-east-1","codec":"opus","duration_ms":61234,"hangup_cause":"normal_clearing","quality":{"mos":4.2,"jitter_ms":3,"packet_loss_pct":0.1,"rtt_ms":45.5}}"#;

/// `base` with the top-level key `key` replaced by `value` (raw JSON), or removed when `None`.
/// Works on the fixtures above, whose top-level values contain no `,"` sequence except
/// `properties` / `quality`, which are never replaced through this helper.
pub fn with(base: &str, key: &str, value: Option<&str>) -> String {
    let v: serde_json::Value = serde_json::from_str(base).unwrap();
    let obj = v.as_object().unwrap();
    let mut parts = Vec::new();
    let mut replaced = false;
    for (k, val) in obj {
        if k == key {
            replaced = true;
            if let Some(raw) = value {
                parts.push(format!("{}:{}", serde_json::to_string(k).unwrap(), raw));
            }
        } else {
            parts.push(format!("{}:{}", serde_json::to_string(k).unwrap(), val));
        }
    }
    if !replaced {
        if let Some(raw) = value {
            parts.push(format!("{}:{}", serde_json::to_string(key).unwrap(), raw));
        }
    }
    format!("{{{}}}", parts.join(","))
}
