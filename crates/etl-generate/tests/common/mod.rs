//! A small, independent validator built from the schema TOML files, so the tests check the
//! generator against `schemas/*.toml` rather than against its own idea of the fields.

#![allow(dead_code)]

use std::path::PathBuf;

use serde::Deserialize;
use serde_json::{Map, Value};

use etl_generate::{MalformedKind, Stream};

#[derive(Debug, Deserialize)]
pub struct SchemaFile {
    pub stream: String,
    pub fields: Vec<Field>,
}

#[derive(Debug, Deserialize)]
pub struct Field {
    pub name: String,
    #[serde(rename = "type")]
    pub ty: String,
    #[serde(default)]
    pub required: bool,
    pub values: Option<Vec<String>>,
    pub max_length: Option<usize>,
    pub fields: Option<Vec<Field>>,
}

pub fn load_schema(stream: Stream) -> SchemaFile {
    let path: PathBuf = [
        env!("CARGO_MANIFEST_DIR"),
        "..",
        "..",
        "schemas",
        &format!("{}.toml", stream.as_str()),
    ]
    .iter()
    .collect();
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let schema: SchemaFile =
        toml::from_str(&text).unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()));
    assert_eq!(schema.stream, stream.as_str());
    schema
}

/// Why a line is rejected (the first failing check, in this order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Why {
    NotUtf8,
    NotJson(String),
    NotObject,
    WrongType(String),
    Missing(String),
    UnknownEnum(String, String),
    BadPhone(String),
    BadTimestamp(String),
    TooLong(String),
}

impl Why {
    /// Whether this rejection is the reason a record of `kind` should be rejected for.
    pub fn matches(&self, kind: MalformedKind) -> bool {
        match (self, kind) {
            (Why::NotJson(_), MalformedKind::InvalidJson) => true,
            (Why::WrongType(_), MalformedKind::WrongType) => true,
            (Why::Missing(_), MalformedKind::MissingRequired) => true,
            (Why::UnknownEnum(f, _), MalformedKind::UnknownEventType) => f == "event_type",
            (Why::BadPhone(_), MalformedKind::InvalidPhone) => true,
            (Why::NotUtf8, MalformedKind::InvalidUtf8) => true,
            _ => false,
        }
    }
}

/// E.164: '+', then 8..15 digits, the first 1-9.
pub fn is_e164(s: &str) -> bool {
    let Some(digits) = s.strip_prefix('+') else {
        return false;
    };
    (8..=15).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && digits.as_bytes()[0] != b'0'
}

/// Epoch milliseconds of an `occurred_at` value (RFC 3339 string or epoch-ms integer).
pub fn timestamp_ms(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => chrono::DateTime::parse_from_rfc3339(s)
            .ok()
            .map(|t| t.timestamp_millis()),
        _ => None,
    }
}

fn type_ok(f: &Field, v: &Value) -> bool {
    match f.ty.as_str() {
        "string" | "enum" | "phone" => v.is_string(),
        "int64" => v.is_i64(),
        "double" => v.is_number(),
        "boolean" => v.is_boolean(),
        "timestamp" => v.is_string() || v.is_i64(),
        "json" => true,
        "struct" => match v {
            Value::Object(m) => f.fields.as_deref().unwrap_or_default().iter().all(|c| {
                m.get(&c.name)
                    .is_none_or(|cv| cv.is_null() || type_ok(c, cv))
            }),
            _ => false,
        },
        other => panic!("unknown schema type {other}"),
    }
}

/// Validates one line; returns the parsed object.
pub fn check(schema: &SchemaFile, line: &[u8]) -> Result<Map<String, Value>, Why> {
    let text = std::str::from_utf8(line).map_err(|_| Why::NotUtf8)?;
    let v: Value = serde_json::from_str(text).map_err(|e| Why::NotJson(e.to_string()))?;
    let Value::Object(obj) = v else {
        return Err(Why::NotObject);
    };
    let present = |f: &Field| obj.get(&f.name).filter(|v| !v.is_null());
    for f in &schema.fields {
        if let Some(v) = present(f) {
            if !type_ok(f, v) {
                return Err(Why::WrongType(f.name.clone()));
            }
        }
    }
    for f in &schema.fields {
        if f.required && present(f).is_none() {
            return Err(Why::Missing(f.name.clone()));
        }
    }
    for f in &schema.fields {
        let Some(v) = present(f) else { continue };
        if let (Some(values), Some(s)) = (&f.values, v.as_str()) {
            if !values.iter().any(|x| x == s) {
                return Err(Why::UnknownEnum(f.name.clone(), s.to_string()));
            }
        }
    }
    for f in schema.fields.iter().filter(|f| f.ty == "phone") {
        if let Some(s) = present(f).and_then(Value::as_str) {
            if !is_e164(s) {
                return Err(Why::BadPhone(f.name.clone()));
            }
        }
    }
    for f in &schema.fields {
        let Some(v) = present(f) else { continue };
        if f.ty == "timestamp" && timestamp_ms(v).is_none() {
            return Err(Why::BadTimestamp(f.name.clone()));
        }
        if let (Some(max), Some(s)) = (f.max_length, v.as_str()) {
            if s.chars().count() > max {
                return Err(Why::TooLong(f.name.clone()));
            }
        }
    }
    Ok(obj)
}
