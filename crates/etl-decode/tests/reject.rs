//! Every reject reason with realistic bad records, and the exact messages of a few.

use crate::common::*;
use etl_decode::RejectReason::{self, *};

fn check(stream: &str, record: &str, reason: RejectReason, message_has: &str) {
    let r = reject(stream, record);
    assert_eq!(r.reason, reason, "{record}: {}", r.message);
    assert!(
        r.message.contains(message_has),
        "{record}: message {:?} lacks {message_has:?}",
        r.message
    );
}

#[test]
fn too_large_is_checked_before_parsing() {
    let big = format!("{{\"event_id\":\"{}\"", "x".repeat(2 << 20)); // 2 MB and not even valid JSON
    let r = reject("app_events", &big);
    assert_eq!(r.reason, TooLarge);
    assert_eq!(
        r.message,
        format!(
            "record is {} bytes, more than the limit of 1048576",
            big.len()
        )
    );
}

#[test]
fn invalid_utf8() {
    let mut bytes = APP_OK.as_bytes().to_vec();
    let at = APP_OK.find("u-42").unwrap();
    bytes[at] = 0xC3; // a lead byte followed by ASCII
    let mut d = decoder("app_events");
    let out = d
        .decode([bytes.as_slice(), b"{\"a\":\"\xed\xa0\x80\"}", b"\xff"])
        .unwrap();
    assert_eq!(out.rejects.len(), 3);
    assert!(out.rejects.iter().all(|r| r.reason == InvalidUtf8));
    assert_eq!(
        out.rejects[0].message,
        format!("invalid UTF-8 at byte {at}")
    );
}

#[test]
fn invalid_json() {
    let truncated = &APP_OK[..APP_OK.len() - 10];
    for rec in [
        "",
        "   ",
        truncated,
        &format!("{APP_OK} trailing"),
        &format!("{APP_OK}{APP_OK}"),
        &APP_OK.replace("\"u-42\"", "u-42"),
        &APP_OK.replace("\"u-42\"", "'u-42'"),
        &APP_OK.replace(",\"platform\"", ",,\"platform\""),
        &APP_OK.replace("\"chars\": 42", "\"chars\": 042"),
        &APP_OK.replace("\"chars\": 42", "\"chars\": NaN"),
        &APP_OK.replace("u-42", "u\t42"),
        &APP_OK.replace("u-42", "u\\x42"),
        &APP_OK.replace("\\ud83d\\ude00", "\\ud83d"),
        &format!("{}{}", "[".repeat(200), "]".repeat(200)),
    ] {
        check("app_events", rec, InvalidJson, "invalid JSON");
    }
    assert_eq!(
        reject("app_events", "").message,
        "invalid JSON: empty record"
    );
    assert_eq!(
        reject("app_events", "{\"event_id\":\"x\",}").message,
        "invalid JSON at byte 16: expected a key string"
    );
    // Syntax errors win over field errors anywhere in the record.
    check(
        "app_events",
        "{\"event_id\":5, \"x\":tru}",
        InvalidJson,
        "literal",
    );
}

#[test]
fn not_an_object() {
    check("app_events", "[1,2]", NotAnObject, "got an array");
    check("app_events", " \"evt\" ", NotAnObject, "got a string");
    check("app_events", "42", NotAnObject, "got an integer");
    check("app_events", "null", NotAnObject, "got null");
}

#[test]
fn duplicate_key() {
    let twice = APP_OK.replacen("{", "{\"user_id\":\"u-1\",", 1);
    let r = reject("app_events", &twice);
    assert_eq!(
        (r.reason, r.message.as_str()),
        (DuplicateKey, "field `user_id`: key appears more than once")
    );
    // Escaped spelling of the same key is still the same key.
    check(
        "app_events",
        &APP_OK.replacen("{", "{\"us\\u0065r_id\":\"u-1\",", 1),
        DuplicateKey,
        "user_id",
    );
    // Unknown keys too.
    check(
        "app_events",
        &APP_OK.replacen("{", "{\"ab\":1,\"a\\u0062\":2,", 1),
        DuplicateKey,
        "`ab`",
    );
    let many: String = (0..40).map(|i| format!("\"k{i}\":{i},")).collect();
    check(
        "app_events",
        &APP_OK.replacen("{", &format!("{{{many}\"k39\":0,"), 1),
        DuplicateKey,
        "`k39`",
    );
    // Inside a struct.
    check(
        "call_events",
        &CALL_OK.replace("{\"mos\":4.2", "{\"mos\":4.2,\"mos\":1"),
        DuplicateKey,
        "quality.mos",
    );
}

#[test]
fn missing_field() {
    let r = reject("app_events", &with(APP_OK, "user_id", None));
    assert_eq!(
        (r.reason, r.message.as_str()),
        (MissingField, "field `user_id`: required but missing")
    );
    let r = reject("call_events", &with(CALL_OK, "caller", Some("null")));
    assert_eq!(
        (r.reason, r.message.as_str()),
        (MissingField, "field `caller`: required but null")
    );
    check("app_events", "{}", MissingField, "event_id");
}

#[test]
fn wrong_type() {
    let r = reject(
        "call_events",
        &with(CALL_OK, "duration_ms", Some("\"61234\"")),
    );
    assert_eq!(
        (r.reason, r.message.as_str()),
        (
            WrongType,
            "field `duration_ms`: expected an integer, got a string"
        )
    );
    check(
        "call_events",
        &with(CALL_OK, "duration_ms", Some("61.5")),
        WrongType,
        "with a fraction",
    );
    check(
        "call_events",
        &with(CALL_OK, "duration_ms", Some("6e4")),
        WrongType,
        "exponent",
    );
    check(
        "call_events",
        &with(CALL_OK, "duration_ms", Some("true")),
        WrongType,
        "got a boolean",
    );
    check(
        "call_events",
        &with(CALL_OK, "event_id", Some("42")),
        WrongType,
        "expected a string, got an integer",
    );
    check(
        "call_events",
        &with(CALL_OK, "quality", Some("[4.2]")),
        WrongType,
        "expected an object, got an array",
    );
    check(
        "call_events",
        &with(CALL_OK, "quality", Some("{\"mos\":\"good\"}")),
        WrongType,
        "field `quality.mos`: expected a number",
    );
    check(
        "call_events",
        &with(CALL_OK, "quality", Some("{\"mos\":4,\"volume\":3}")),
        WrongType,
        "unknown key `volume`",
    );
    check(
        "call_events",
        &with(CALL_OK, "occurred_at", Some("{}")),
        WrongType,
        "got an object",
    );
    check(
        "app_events",
        &with(APP_OK, "platform", Some("1")),
        WrongType,
        "expected a string",
    );
}

#[test]
fn big_numbers_overflow() {
    let ok = with(CALL_OK, "duration_ms", Some("9223372036854775807"));
    assert!(decode("call_events", &[&ok]).rejects.is_empty());
    let ok = with(CALL_OK, "duration_ms", Some("-9223372036854775808"));
    assert!(decode("call_events", &[&ok]).rejects.is_empty());
    for big in [
        "9223372036854775808",
        "-9223372036854775809",
        "123456789012345678901234567890",
    ] {
        check(
            "call_events",
            &with(CALL_OK, "duration_ms", Some(big)),
            WrongType,
            "out of the int64 range",
        );
    }
    check(
        "call_events",
        &with(CALL_OK, "quality", Some("{\"rtt_ms\":1e400}")),
        WrongType,
        "out of the double range",
    );
    check(
        "call_events",
        &with(CALL_OK, "occurred_at", Some("99999999999999999999")),
        InvalidTimestamp,
        "epoch",
    );
    // Big numbers inside json/extras are kept raw.
    let out = decode(
        "app_events",
        &[&APP_OK.replace("42", "123456789012345678901234567890.5e400")],
    );
    assert!(out.rejects.is_empty(), "{:?}", out.rejects);
}

#[test]
fn unknown_enum_value() {
    let r = reject("app_events", &with(APP_OK, "platform", Some("\"IOS\"")));
    assert_eq!(
        (r.reason, r.message.as_str()),
        (
            UnknownEnumValue,
            "field `platform`: `IOS` is not one of: ios, android, web"
        )
    );
    check(
        "call_events",
        &with(CALL_OK, "event_type", Some("\"call_ended \"")),
        UnknownEnumValue,
        "event_type",
    );
    check(
        "call_events",
        &with(CALL_OK, "event_type", Some("\"\"")),
        UnknownEnumValue,
        "event_type",
    );
}

#[test]
fn open_enum_accepts_new_names_and_refuses_names_off_its_pattern() {
    // app event_type is open: a name of a newer release is kept as it is.
    let out = decode(
        "app_events",
        &[&with(
            APP_OK,
            "event_type",
            Some("\"screen_share_started\""),
        )],
    );
    assert!(out.rejects.is_empty(), "{:?}", out.rejects);
    assert_eq!(out.batch.num_rows(), 1);
    let r = reject(
        "app_events",
        &with(APP_OK, "event_type", Some("\"Tele Port\"")),
    );
    assert_eq!(r.reason, PatternMismatch);
    assert!(
        r.message.contains("field `event_type`") && r.message.contains("^[a-z][a-z0-9_]*$"),
        "{}",
        r.message
    );
    check(
        "app_events",
        &with(APP_OK, "event_type", Some("\"\"")),
        PatternMismatch,
        "event_type",
    );
    // At and just over max_length (64 bytes).
    let at = format!("\"{}\"", "a".repeat(64));
    let out = decode("app_events", &[&with(APP_OK, "event_type", Some(&at))]);
    assert!(out.rejects.is_empty(), "{:?}", out.rejects);
    let over = format!("\"{}\"", "a".repeat(65));
    check(
        "app_events",
        &with(APP_OK, "event_type", Some(&over)),
        TooLong,
        "event_type",
    );
    // Closed enums stay closed.
    check(
        "call_events",
        &with(CALL_OK, "event_type", Some("\"call_parked\"")),
        UnknownEnumValue,
        "event_type",
    );
}

#[test]
fn invalid_timestamp() {
    for v in [
        "\"2026-02-30T00:00:00Z\"",
        "\"yesterday\"",
        "\"2026-11-01\"",
        "\"2026-11-01T00:00:00\"",
        "\"2026-11-01T00:00:00+0100\"",
        "\"1969-12-31T23:59:59.999Z\"",
        "\"10000-01-01T00:00:00Z\"",
        "\"1793491201000\"",
        "-5",
        "1793491201000.0",
        "253402300800000",
    ] {
        check(
            "app_events",
            &with(APP_OK, "occurred_at", Some(v)),
            InvalidTimestamp,
            "field `occurred_at`",
        );
    }
    let r = reject(
        "app_events",
        &with(APP_OK, "occurred_at", Some("\"2026-13-01T00:00:00Z\"")),
    );
    assert_eq!(
        r.message,
        "field `occurred_at`: `2026-13-01T00:00:00Z`: a date or time part is out of range"
    );
}

#[test]
fn invalid_phone_never_echoes_the_number() {
    for v in [
        "\"4155550100\"",
        "\"+1 415 555 0100\"",
        "\"+0155550100\"",
        "\"+1234567\"",
        "\"+1234567890123456\"",
    ] {
        let r = reject("call_events", &with(CALL_OK, "callee", Some(v)));
        assert_eq!(r.reason, InvalidPhone, "{v}");
        assert!(
            r.message.starts_with("field `callee`: not an E.164 number"),
            "{}",
            r.message
        );
        assert!(!r.message.contains("555"), "{}", r.message);
    }
}

#[test]
fn too_long_counts_bytes() {
    let r = reject("app_events", &with(APP_OK, "country", Some("\"USA\"")));
    assert_eq!(
        (r.reason, r.message.as_str()),
        (
            TooLong,
            "field `country`: 3 bytes, longer than max_length 2"
        )
    );
    check(
        "app_events",
        &with(APP_OK, "country", Some("\"éx\"")),
        TooLong,
        "3 bytes",
    );
    let id = format!("\"{}\"", "x".repeat(129));
    check(
        "app_events",
        &with(APP_OK, "event_id", Some(&id)),
        TooLong,
        "field `event_id`: 129 bytes",
    );
    let ok = format!("\"{}\"", "x".repeat(128));
    assert!(
        decode("app_events", &[&with(APP_OK, "event_id", Some(&ok))])
            .rejects
            .is_empty()
    );
}

#[test]
fn first_failing_field_in_schema_order_wins() {
    let rec = with(
        &with(CALL_OK, "duration_ms", Some("\"x\"")),
        "direction",
        Some("\"up\""),
    );
    check("call_events", &rec, UnknownEnumValue, "direction");
}

/// JSON columns and `extras` are `VARCHAR(65535)` in the warehouse: at the limit a record is
/// accepted, one byte over it is dead-lettered `too_long` naming the field (issue 12, defect 2).
#[test]
fn json_and_extras_longer_than_the_warehouse_column_are_too_long() {
    let limit = etl_schema::WAREHOUSE_TEXT_MAX_BYTES;
    let properties = |n: usize| format!("{{\"p\":\"{}\"}}", "x".repeat(n - 8));
    let at = APP_OK.replace(
        r#"{"chars": 42, "thread":"t-1","emoji":"\ud83d\ude00"}"#,
        &properties(limit),
    );
    assert_ne!(at, APP_OK, "the fixture's properties were replaced");
    let out = decode("app_events", &[&at]);
    assert!(out.rejects.is_empty(), "{:?}", out.rejects);
    assert_eq!(out.batch.num_rows(), 1);
    let over = APP_OK.replace(
        r#"{"chars": 42, "thread":"t-1","emoji":"\ud83d\ude00"}"#,
        &properties(limit + 1),
    );
    let r = reject("app_events", &over);
    assert_eq!(
        (r.reason, r.message.as_str()),
        (
            TooLong,
            "field `properties`: 65536 bytes of JSON, longer than the warehouse column's 65535"
        )
    );

    // extras = {"zz":"y…"}: 9 bytes around the value.
    let extra = |n: usize| {
        format!(
            "{},\"zz\":\"{}\"}}",
            &APP_OK[..APP_OK.len() - 1],
            "y".repeat(n - 9)
        )
    };
    let out = decode("app_events", &[&extra(limit)]);
    assert!(out.rejects.is_empty(), "{:?}", out.rejects);
    check(
        "app_events",
        &extra(limit + 1),
        TooLong,
        "field `extras`: the keys the schema does not know make 65536 bytes",
    );
}
