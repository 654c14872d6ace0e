//! `etl ingest` of several streams in one process (`--stream A a.ndjson --stream B b.ndjson`):
//! each stream's counts reconcile, the lake holds exactly the rows the summary says (read back
//! through `etl query`), and the files are the same as those of one process per stream.

use super::{counts, dead_letters, etl, text, walk, TestResult};
use std::collections::BTreeMap;
use std::path::Path;

/// Parquet files of `dir`'s lake: path below the lake → bytes.
fn parquet_files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let lake = dir.join("lake");
    walk(&lake)
        .into_iter()
        .filter(|p| p.ends_with(".parquet"))
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap_or_default();
            (
                p.trim_start_matches(&*lake.to_string_lossy()).to_string(),
                bytes,
            )
        })
        .collect()
}

fn summary_of<'a>(
    json: &'a serde_json::Value,
    stream: &str,
) -> Result<&'a serde_json::Value, String> {
    json["streams"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["stream"] == stream))
        .ok_or(format!("no summary of {stream} in {json}"))
}

#[test]
fn ingest_of_two_streams_in_one_process_writes_what_two_processes_write() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let input = tmp.path().join("input");
    let out = etl(
        tmp.path(),
        &[
            "generate",
            "--events",
            "6000",
            "--out",
            &input.to_string_lossy(),
        ],
    );
    assert!(out.status.success(), "generate: {}", text(&out.stderr));
    let app = input
        .join("app_events.ndjson")
        .to_string_lossy()
        .into_owned();
    let call = input
        .join("call_events.ndjson")
        .to_string_lossy()
        .into_owned();
    // Small batches, so each stream has several and both streams' batches share the permits.
    let config = tmp.path().join("small.toml");
    std::fs::write(&config, "[pipeline]\nbatch_max_records = 700\n")?;
    let config = config.to_string_lossy().into_owned();

    let one = tmp.path().join("one");
    let out = etl(
        &one,
        &[
            "--config",
            &config,
            "ingest",
            "--stream",
            "app_events",
            &app,
            "--stream",
            "call_events",
            &call,
            "--json",
        ],
    );
    assert!(out.status.success(), "ingest: {}", text(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let mut total_read = 0;
    for (stream, file) in [("app_events", &app), ("call_events", &call)] {
        let s = summary_of(&json, stream)?;
        let n = |k: &str| s[k].as_u64().unwrap_or(u64::MAX);
        let lines = std::fs::read_to_string(file)?
            .lines()
            .filter(|l| !l.trim().is_empty())
            .count() as u64;
        assert_eq!(n("read"), lines, "{stream}: every line read once");
        assert_eq!(
            n("read"),
            n("written") + n("duplicates") + n("filtered") + n("dead_lettered"),
            "{stream} does not reconcile: {s}"
        );
        assert!(n("batches") >= 4, "{stream}: {} batches", n("batches"));
        assert!(n("duplicates") > 0, "{stream}: the generator's duplicates");
        // The lake holds exactly the written rows, each event once.
        let (rows, distinct) = counts(&one, stream)?;
        assert_eq!(rows, n("written"), "{stream}: rows in the lake");
        assert_eq!(distinct, rows, "{stream}: an event twice in the lake");
        assert_eq!(
            dead_letters(&one, stream) as u64,
            n("dead_lettered"),
            "{stream}: dead-letter lines"
        );
        total_read += n("read");
    }
    assert_eq!(json["read"].as_u64(), Some(total_read), "totals: {json}");
    assert!(
        dead_letters(&one, "app_events") + dead_letters(&one, "call_events") > 0,
        "the generator's malformed records are dead letters"
    );

    // One process per stream (the single-stream forms, files before and after the options)
    // writes the same Parquet files, byte for byte.
    let two = tmp.path().join("two");
    let out = etl(
        &two,
        &[
            "--config",
            &config,
            "ingest",
            "--stream",
            "app_events",
            &app,
        ],
    );
    assert!(out.status.success(), "ingest app: {}", text(&out.stderr));
    let out = etl(
        &two,
        &[
            "--config",
            &config,
            "ingest",
            "--stream",
            "call_events",
            "--json",
            &call,
        ],
    );
    assert!(out.status.success(), "ingest call: {}", text(&out.stderr));
    let single: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(
        single["written"],
        summary_of(&json, "call_events")?["written"],
        "one stream's JSON is its summary"
    );
    let (a, b) = (parquet_files(&one), parquet_files(&two));
    assert!(!a.is_empty(), "no Parquet file written");
    assert_eq!(
        a.keys().collect::<Vec<_>>(),
        b.keys().collect::<Vec<_>>(),
        "other files"
    );
    assert!(a == b, "same names, other bytes");

    // Two streams with files after the options: refused, naming the fix.
    let out = etl(
        &two,
        &[
            "ingest",
            "--stream",
            "app_events",
            &app,
            "--stream",
            "call_events",
            "--json",
            &call,
        ],
    );
    assert!(!out.status.success(), "ambiguous files accepted");
    assert!(
        text(&out.stderr).contains("put each stream's files right after its name"),
        "{}",
        text(&out.stderr)
    );
    Ok(())
}
