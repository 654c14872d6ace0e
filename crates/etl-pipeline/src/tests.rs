//! End-to-end tests of the local pipeline: generated input in, Parquet and dead letters read back.

use crate::source::LineSource;
use crate::{Pipeline, PipelineOptions};
use etl_generate::{Generator, GeneratorConfig, RecordKind, Stream};
use etl_lake::catalog::{Catalog, FileCatalog};
use etl_lake::{DeadLetter, Lake};
use etl_transform::{MaskKey, Transformer};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::{LogicalType, TimeUnit as PqTimeUnit};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub(super) fn key() -> MaskKey {
    MaskKey::new(b"pipeline-test-key-0123456789").unwrap()
}

fn pipeline(lake_dir: &Path, options: PipelineOptions) -> Pipeline {
    let schemas = etl_schema::embedded().unwrap();
    let transformer = Transformer::new(&schemas, etl_transform::embedded_sql(), key()).unwrap();
    let lake = Lake::open(lake_dir.to_str().unwrap()).unwrap();
    let catalog = Arc::new(FileCatalog::new(lake.clone()));
    Pipeline::new(options, schemas, transformer, lake, catalog).unwrap()
}

pub(super) fn small_batches() -> PipelineOptions {
    PipelineOptions {
        batch_max_records: 1500,
        parallelism: 2,
        ..PipelineOptions::default()
    }
}

/// What the generator produced for one stream: the valid lines by event_id (first copy).
#[derive(Default)]
pub(super) struct Expected {
    pub(super) valid: HashMap<String, serde_json::Value>,
    pub(super) duplicates: u64,
    malformed: BTreeMap<String, u64>,
    phones: HashSet<String>,
}

pub(super) fn generate(
    dir: &Path,
    cfg: GeneratorConfig,
) -> (PathBuf, PathBuf, HashMap<Stream, Expected>) {
    let (app_path, call_path) = (dir.join("app.ndjson"), dir.join("call.ndjson"));
    let mut app = std::io::BufWriter::new(std::fs::File::create(&app_path).unwrap());
    let mut call = std::io::BufWriter::new(std::fs::File::create(&call_path).unwrap());
    let mut expected: HashMap<Stream, Expected> = HashMap::new();
    let mut generator = Generator::new(cfg).unwrap();
    while let Some((stream, kind, line)) = generator.next_record() {
        let out: &mut dyn Write = if stream == Stream::AppEvents {
            &mut app
        } else {
            &mut call
        };
        out.write_all(line).unwrap();
        out.write_all(b"\n").unwrap();
        let e = expected.entry(stream).or_default();
        match kind {
            RecordKind::Valid => {
                let v: serde_json::Value = serde_json::from_slice(line).unwrap();
                for k in ["caller", "callee"] {
                    if let Some(p) = v.get(k).and_then(|p| p.as_str()) {
                        e.phones.insert(p.to_string());
                    }
                }
                let id = v["event_id"].as_str().unwrap().to_string();
                assert!(
                    e.valid.insert(id, v).is_none(),
                    "generator repeated an event_id in a Valid record"
                );
            }
            RecordKind::Duplicate => e.duplicates += 1,
            RecordKind::Malformed(k) => *e.malformed.entry(format!("{k:?}")).or_default() += 1,
        }
    }
    (app_path, call_path, expected)
}

/// Every row of every Parquet file of `table`, as (file, batch) pairs; checks the timestamp type.
pub(super) fn read_table(
    lake_dir: &Path,
    table: &str,
) -> Vec<(PathBuf, arrow::array::RecordBatch)> {
    let mut out = Vec::new();
    let mut stack = vec![lake_dir.join(table)];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "parquet") {
                let file = std::fs::File::open(&path).unwrap();
                let builder = ParquetRecordBatchReaderBuilder::try_new(file).unwrap();
                let descr = builder.metadata().file_metadata().schema_descr();
                for col in descr.columns() {
                    if col.name() == "occurred_at" {
                        assert_eq!(
                            col.logical_type_ref(),
                            Some(&LogicalType::timestamp(true, PqTimeUnit::MILLIS)),
                            "occurred_at must be INT64 TIMESTAMP(MILLIS, UTC)"
                        );
                    }
                    assert_ne!(col.physical_type(), parquet::basic::Type::INT96);
                }
                for batch in builder.build().unwrap() {
                    out.push((path.clone(), batch.unwrap()));
                }
            }
        }
    }
    out
}

fn strings(batch: &arrow::array::RecordBatch, name: &str) -> Vec<Option<String>> {
    use arrow::array::AsArray;
    batch
        .column_by_name(name)
        .unwrap()
        .as_string::<i32>()
        .iter()
        .map(|v| v.map(str::to_string))
        .collect()
}

fn dead_letters(lake_dir: &Path, stream: &str) -> Vec<DeadLetter> {
    let mut out = Vec::new();
    let mut stack = vec![lake_dir.join("dead-letters").join(stream)];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                for line in std::fs::read_to_string(&path).unwrap().lines() {
                    out.push(serde_json::from_str(line).unwrap());
                }
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_events_land_exactly_once_with_dead_letters_reconciled() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = GeneratorConfig {
        seed: 7,
        events: 24_000,
        duplicate_rate: 0.03,
        malformed_rate: 0.01,
        ..GeneratorConfig::default()
    };
    let (app_path, call_path, expected) = generate(tmp.path(), cfg);
    let lake_dir = tmp.path().join("lake");
    let p = pipeline(&lake_dir, small_batches());
    p.sync_catalog().await.unwrap();

    for (stream, path) in [
        (Stream::AppEvents, &app_path),
        (Stream::CallEvents, &call_path),
    ] {
        let name = stream.as_str();
        let exp = &expected[&stream];
        let source = LineSource::open(path.to_str().unwrap()).unwrap();
        let summary = p.ingest(name, Box::new(source), None).await.unwrap();
        assert!(summary.reconciles(), "{summary}");
        assert_eq!(summary.written, exp.valid.len() as u64, "{name}: {summary}");
        assert_eq!(summary.duplicates, exp.duplicates, "{name}: {summary}");
        assert_eq!(
            summary.dead_lettered,
            exp.malformed.values().sum::<u64>(),
            "{name}: {summary}"
        );
        let mut expected_reasons: BTreeMap<String, u64> = BTreeMap::new();
        for (kind, n) in &exp.malformed {
            let reason = match kind.as_str() {
                "InvalidJson" => "invalid_json",
                "WrongType" => "wrong_type",
                "MissingRequired" => "missing_field",
                "UnknownEventType" if name == "app_events" => "pattern_mismatch",
                "UnknownEventType" => "unknown_enum_value",
                "InvalidPhone" => "invalid_phone",
                "InvalidUtf8" => "invalid_utf8",
                "Oversize" => "too_large",
                other => panic!("new malformed kind {other}: map it to its reason code here"),
            };
            *expected_reasons.entry(reason.to_string()).or_default() += n;
        }
        assert_eq!(summary.dead_letter_reasons, expected_reasons, "{name}");

        // Read the Parquet back: every valid event exactly once, with its content.
        let mut seen = HashSet::new();
        let mut rows = 0;
        for (file, batch) in read_table(&lake_dir, name) {
            rows += batch.num_rows();
            let ids = strings(&batch, "event_id");
            let types = strings(&batch, "event_type");
            let accounts = strings(&batch, "account_id");
            let ts = arrow::array::AsArray::as_primitive::<
                arrow::datatypes::TimestampMillisecondType,
            >(batch.column_by_name("occurred_at").unwrap())
            .clone();
            let dir = file.parent().unwrap().to_string_lossy().into_owned();
            for i in 0..batch.num_rows() {
                let id = ids[i].clone().unwrap();
                let input = exp
                    .valid
                    .get(&id)
                    .unwrap_or_else(|| panic!("{id} was not a valid input event"));
                assert!(seen.insert(id.clone()), "{id} written twice");
                assert_eq!(types[i].as_deref(), input["event_type"].as_str());
                assert_eq!(accounts[i].as_deref(), input["account_id"].as_str());
                // The row sits in the partition of its own occurred_at.
                let ms = ts.value(i);
                let dt = chrono::DateTime::from_timestamp_millis(ms).unwrap();
                assert!(
                    dir.ends_with(&format!(
                        "dt={}/hour={}",
                        dt.format("%Y-%m-%d"),
                        dt.format("%H")
                    )),
                    "{dir} vs {dt}"
                );
            }
            // No raw phone number in any text column.
            for (f, col) in batch.schema().fields().iter().zip(batch.columns()) {
                if let Some(s) = arrow::array::AsArray::as_string_opt::<i32>(col) {
                    for v in s.iter().flatten() {
                        assert!(
                            !exp.phones.contains(v) && !v.starts_with('+'),
                            "raw phone in column {}: {v}",
                            f.name()
                        );
                    }
                }
            }
        }
        assert_eq!(rows as u64, summary.written);
        assert_eq!(seen.len(), exp.valid.len());

        let letters = dead_letters(&lake_dir, name);
        assert_eq!(letters.len() as u64, summary.dead_lettered);
        assert!(letters.iter().all(|l| !l.reason.is_empty()
            && !l.message.is_empty()
            && (l.raw.is_some() ^ l.raw_base64.is_some())));
        let partitions = FileCatalog::new(Lake::open(lake_dir.to_str().unwrap()).unwrap())
            .partitions(name)
            .await
            .unwrap();
        assert_eq!(partitions.len(), summary.partitions.len());
    }
    // Re-running the same input rewrites the same files: nothing doubles.
    let before = read_table(&lake_dir, "call_events").len();
    let p2 = pipeline(&lake_dir, small_batches());
    let summary = p2
        .ingest(
            "call_events",
            Box::new(LineSource::open(call_path.to_str().unwrap()).unwrap()),
            None,
        )
        .await
        .unwrap();
    let rows: usize = read_table(&lake_dir, "call_events")
        .iter()
        .map(|(_, b)| b.num_rows())
        .sum();
    assert_eq!(rows as u64, summary.written);
    assert_eq!(read_table(&lake_dir, "call_events").len(), before);
}

#[tokio::test]
async fn every_kind_of_bad_input_is_dead_lettered_with_its_reason() {
    let tmp = tempfile::tempdir().unwrap();
    let good = r#"{"event_id":"ok-1","event_type":"login","occurred_at":"2026-11-01T10:00:00Z","user_id":"u","account_id":"a","platform":"ios"}"#;
    let big = format!(
        r#"{{"event_id":"big","event_type":"login","occurred_at":"2026-11-01T10:00:00Z","user_id":"u","account_id":"a","platform":"ios","properties":{{"blob":"{}"}}}}"#,
        "x".repeat(2 << 20)
    );
    let mut input: Vec<u8> = Vec::new();
    for line in [
        good.as_bytes(),
        br#"{"event_id":"bad-json","event_type":"login""#,
        br#"{"event_id":"wrong-type","event_type":"login","occurred_at":true,"user_id":"u","account_id":"a","platform":"ios"}"#,
        br#"{"event_id":"missing","event_type":"login","occurred_at":"2026-11-01T10:00:00Z","account_id":"a","platform":"ios"}"#,
        br#"{"event_id":"unknown","event_type":"Tele Port","occurred_at":"2026-11-01T10:00:00Z","user_id":"u","account_id":"a","platform":"ios"}"#,
        big.as_bytes(),
        b"{\"event_id\":\"utf8\",\"event_type\":\"login\",\"occurred_at\":\"2026-11-01T10:00:00Z\",\"user_id\":\"\xff\xfe\",\"account_id\":\"a\",\"platform\":\"ios\"}",
        // An event name of a newer app release: app event types are open, so it is kept.
        br#"{"event_id":"new-name","event_type":"screen_share_started","occurred_at":"2026-11-01T10:00:00Z","user_id":"u","account_id":"a","platform":"ios"}"#,
    ] {
        input.extend_from_slice(line);
        input.push(b'\n');
    }
    let lake_dir = tmp.path().join("lake");
    let p = pipeline(&lake_dir, PipelineOptions::default());
    p.sync_catalog().await.unwrap();
    let source = LineSource::from_reader(
        Box::new(std::io::Cursor::new(input)),
        "bad.ndjson",
        "bad",
        0,
    );
    let summary = p
        .ingest("app_events", Box::new(source), None)
        .await
        .unwrap();
    assert_eq!(
        (summary.read, summary.written, summary.dead_lettered),
        (8, 2, 6),
        "{summary}"
    );
    let mut by_position: Vec<(u64, String)> = dead_letters(&lake_dir, "app_events")
        .into_iter()
        .map(|l| (l.source.position.parse().unwrap(), l.reason))
        .collect();
    by_position.sort();
    let reasons: Vec<&str> = by_position.iter().map(|(_, r)| r.as_str()).collect();
    assert_eq!(
        reasons,
        [
            "invalid_json",
            "wrong_type",
            "missing_field",
            "pattern_mismatch",
            "too_large",
            "invalid_utf8"
        ]
    );
    let utf8 = dead_letters(&lake_dir, "app_events")
        .into_iter()
        .find(|l| l.reason == "invalid_utf8")
        .unwrap();
    assert!(utf8.raw.is_none());
    assert!(
        utf8.original_bytes().windows(2).any(|w| w == b"\xff\xfe"),
        "original bytes kept"
    );
    let big_letter = dead_letters(&lake_dir, "app_events")
        .into_iter()
        .find(|l| l.reason == "too_large")
        .unwrap();
    assert_eq!(big_letter.original_bytes().len(), big.len());
}

#[tokio::test]
async fn gzip_input_is_detected() {
    let tmp = tempfile::tempdir().unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    for i in 0..10 {
        writeln!(gz, r#"{{"event_id":"g{i}","event_type":"login","occurred_at":{},"user_id":"u","account_id":"a","platform":"web"}}"#, 1_793_491_200_000i64 + i).unwrap();
    }
    let bytes = gz.finish().unwrap();
    let lake_dir = tmp.path().join("lake");
    let p = pipeline(&lake_dir, PipelineOptions::default());
    p.sync_catalog().await.unwrap();
    let source = LineSource::from_reader(
        Box::new(std::io::Cursor::new(bytes)),
        "in.ndjson.gz",
        "gz",
        0,
    );
    let summary = p
        .ingest("app_events", Box::new(source), None)
        .await
        .unwrap();
    assert_eq!((summary.read, summary.written), (10, 10), "{summary}");
}

/// Lines cut across read chunks and batch limits come out whole, in order, with their line
/// numbers; blank lines are skipped, `\r\n` is accepted, the last line may lack its `\n`.
#[tokio::test]
async fn line_source_cuts_lines_across_chunks_and_batches() {
    use crate::source::{RecordSource, READ_CHUNK};
    let mut input = Vec::new();
    let mut expected = Vec::new();
    let mut line_no = 0u64;
    while input.len() < 3 * READ_CHUNK + 100 {
        line_no += 1;
        match line_no % 7 {
            0 => input.extend_from_slice(b"\n"),
            3 => input.extend_from_slice(b"   \r\n"),
            _ => {
                // Lengths vary so lines straddle the chunk boundaries at different offsets.
                let text = format!(
                    "{{\"n\":{line_no},\"pad\":\"{}\"}}",
                    "x".repeat((line_no % 13) as usize * 97)
                );
                input.extend_from_slice(text.as_bytes());
                input.extend_from_slice(if line_no.is_multiple_of(2) {
                    b"\r\n"
                } else {
                    b"\n"
                });
                expected.push((line_no, text));
            }
        }
    }
    line_no += 1;
    input.extend_from_slice(b"{\"last\":true}");
    expected.push((line_no, "{\"last\":true}".to_string()));

    for (max_records, max_bytes) in [(1000, 1 << 30), (usize::MAX, 300_000), (7, 1 << 30)] {
        let mut source = LineSource::from_reader(
            Box::new(std::io::Cursor::new(input.clone())),
            "cut.ndjson",
            "cut",
            0,
        );
        let mut got = Vec::new();
        while let Some(batch) = source.next_batch(max_records, max_bytes).await.unwrap() {
            let records = &batch.records;
            assert!(records.len() <= max_records);
            for i in 0..records.len() {
                let text = String::from_utf8(records.record(i).to_vec()).unwrap();
                let line: u64 = batch.checkpoint.position(i).parse().unwrap();
                got.push((line, text));
            }
        }
        assert_eq!(
            got.len(),
            expected.len(),
            "limits {max_records}/{max_bytes}"
        );
        assert!(
            got == expected,
            "limits {max_records}/{max_bytes}: lines differ"
        );
    }
}

/// Dead letters replayed after an option fix land in the lake; replaying again changes nothing.
#[tokio::test]
async fn replayed_dead_letters_land_once_and_a_second_replay_changes_nothing() {
    use crate::replay::{dead_letter_files, ReplaySource, REPLAY_PREFIX};
    let tmp = tempfile::tempdir().unwrap();
    let cfg = GeneratorConfig {
        seed: 9,
        events: 3000,
        call_share: 0.0,
        ..GeneratorConfig::default()
    };
    let (app_path, _, _) = generate(tmp.path(), cfg);
    let app = app_path.to_str().unwrap();

    // The reference: everything accepted with the default options.
    let reference_dir = tmp.path().join("reference");
    let reference = pipeline(&reference_dir, small_batches());
    let summary = reference
        .ingest("app_events", Box::new(LineSource::open(app).unwrap()), None)
        .await
        .unwrap();
    assert!(summary.reconciles());

    // A too small record limit dead-letters many records ...
    let lake_dir = tmp.path().join("lake");
    let strict = pipeline(
        &lake_dir,
        PipelineOptions {
            max_record_bytes: 330,
            ..small_batches()
        },
    );
    let first = strict
        .ingest("app_events", Box::new(LineSource::open(app).unwrap()), None)
        .await
        .unwrap();
    let too_large = first
        .dead_letter_reasons
        .get("too_large")
        .copied()
        .unwrap_or(0);
    assert!(too_large > 100, "{first}");

    // ... and after the fix, replaying the dead letters brings them into the lake.
    let fixed = pipeline(&lake_dir, small_batches());
    let event_ids = |dir: &Path| {
        let mut ids: Vec<String> = read_table(dir, "app_events")
            .iter()
            .flat_map(|(_, b)| strings(b, "event_id"))
            .map(Option::unwrap)
            .collect();
        ids.sort();
        ids
    };
    let files = |dir: &Path| {
        let mut names: Vec<PathBuf> = read_table(dir, "app_events")
            .into_iter()
            .map(|(p, _)| p)
            .collect();
        names.sort();
        names.dedup();
        names
    };
    let mut after_first_replay = None;
    for round in 0..2 {
        let lake = Lake::open(lake_dir.to_str().unwrap()).unwrap();
        let sources = dead_letter_files(&lake, "app_events").await.unwrap();
        assert!(!sources.is_empty());
        assert!(sources
            .iter()
            .all(|p| !p.rsplit('/').next().unwrap().starts_with(REPLAY_PREFIX)));
        let mut replayed = 0;
        for path in sources {
            let source = ReplaySource::open(&lake, &path).await.unwrap();
            replayed += source.len() as u64;
            let s = fixed
                .ingest("app_events", Box::new(source), None)
                .await
                .unwrap();
            assert!(s.reconciles(), "{s}");
            assert_eq!(s.dead_letter_reasons.get("too_large"), None, "{s}");
        }
        assert_eq!(
            replayed, first.dead_lettered,
            "round {round}: every dead letter replayed"
        );
        let ids = event_ids(&lake_dir);
        assert_eq!(
            ids,
            event_ids(&reference_dir),
            "round {round}: lake equals the reference"
        );
        let mut distinct = ids.clone();
        distinct.dedup();
        assert_eq!(ids.len(), distinct.len(), "round {round}: an event twice");
        let state = (
            files(&lake_dir),
            dead_letters(&lake_dir, "app_events").len(),
        );
        match &after_first_replay {
            None => after_first_replay = Some(state),
            Some(before) => assert_eq!(&state, before, "the second replay changed the lake"),
        }
    }
    // The records that still fail are dead letters of the replay, with their reasons.
    let replay_letters: Vec<DeadLetter> = dead_letters(&lake_dir, "app_events")
        .into_iter()
        .filter(|l| l.source.name.contains(REPLAY_PREFIX) || l.source.name.contains("dead-letters"))
        .collect();
    assert_eq!(replay_letters.len() as u64, summary.dead_lettered);
}

/// Both streams ingested at once through one pipeline share its `parallelism` batch permits:
/// with one permit and many small batches neither stream blocks the other for good (each batch
/// waits for its predecessor's dedup turn while holding a permit), and both land exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_ingested_at_once_share_the_batch_permits_without_blocking_each_other() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = GeneratorConfig {
        seed: 11,
        events: 12_000,
        duplicate_rate: 0.05,
        malformed_rate: 0.0,
        ..GeneratorConfig::default()
    };
    let (app_path, call_path, expected) = generate(tmp.path(), cfg);
    for parallelism in [1, 2, 3] {
        let lake_dir = tmp.path().join(format!("lake-{parallelism}"));
        let options = PipelineOptions {
            batch_max_records: 250,
            parallelism,
            ..PipelineOptions::default()
        };
        let p = pipeline(&lake_dir, options);
        p.sync_catalog().await.unwrap();
        let ingest = |stream: Stream, path: &PathBuf| {
            let source = LineSource::open(path.to_str().unwrap()).unwrap();
            p.ingest(stream.as_str(), Box::new(source), None)
        };
        let both = async {
            tokio::join!(
                ingest(Stream::AppEvents, &app_path),
                ingest(Stream::CallEvents, &call_path)
            )
        };
        let (app, call) = tokio::time::timeout(std::time::Duration::from_secs(120), both)
            .await
            .unwrap_or_else(|_| panic!("parallelism {parallelism}: the streams blocked"));
        for (stream, summary) in [(Stream::AppEvents, app), (Stream::CallEvents, call)] {
            let summary = summary.unwrap();
            let exp = &expected[&stream];
            assert!(summary.batches > 10, "{summary}");
            assert_eq!(summary.written, exp.valid.len() as u64, "{summary}");
            assert_eq!(summary.duplicates, exp.duplicates, "{summary}");
            let mut seen = HashSet::new();
            for (_, batch) in read_table(&lake_dir, stream.as_str()) {
                for id in strings(&batch, "event_id") {
                    let id = id.unwrap();
                    assert!(exp.valid.contains_key(&id), "{id} was not a valid input");
                    assert!(seen.insert(id.clone()), "{id} written twice");
                }
            }
            assert_eq!(seen.len(), exp.valid.len(), "parallelism {parallelism}");
        }
    }
}
