//! End-to-end checks of the generator output against the schema files and its own statistics.

mod common;

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use etl_generate::{
    write_ndjson, GenerateError, Generator, GeneratorConfig, MalformedKind, RecordKind, Stream,
    DUPLICATE_WINDOW, OVERSIZE_BLOB_BYTES,
};
use serde_json::Value;

use common::{check, is_e164, load_schema, timestamp_ms, Why};

const MIB: usize = 1024 * 1024;

fn ndjson(cfg: &GeneratorConfig) -> (Vec<u8>, Vec<u8>) {
    let (mut app, mut call) = (Vec::new(), Vec::new());
    write_ndjson(cfg.clone(), &mut app, &mut call).expect("generation succeeds");
    (app, call)
}

#[test]
fn same_config_same_bytes_other_seed_other_bytes() {
    let cfg = GeneratorConfig {
        events: 30_000,
        malformed_rate: 0.01,
        ..Default::default()
    };
    let a = ndjson(&cfg);
    let b = ndjson(&cfg);
    assert!(a.0.len() > 1_000_000 && a.1.len() > 1_000_000);
    assert!(a == b, "same config must give byte-identical output");
    let c = ndjson(&GeneratorConfig {
        seed: cfg.seed + 1,
        ..cfg.clone()
    });
    assert_ne!(a.0, c.0);
    assert_ne!(a.1, c.1);

    // next_record yields exactly what write_ndjson writes.
    let mut g = Generator::new(cfg).unwrap();
    let (mut app, mut call) = (Vec::new(), Vec::new());
    while let Some((s, _, line)) = g.next_record() {
        let out = if s == Stream::AppEvents {
            &mut app
        } else {
            &mut call
        };
        out.extend_from_slice(line);
        out.push(b'\n');
    }
    assert!((app, call) == a);
    assert!(g.next_record().is_none(), "stays exhausted");
}

#[derive(Default)]
struct Tally {
    valid: u64,
    duplicates: u64,
    late: u64,
    malformed: BTreeMap<MalformedKind, u64>,
    bytes: u64,
    event_types: BTreeMap<String, u64>,
    event_ids: HashSet<String>,
    groups: HashSet<String>,
    duration_sum: u64,
    recent: VecDeque<Vec<u8>>,
}

/// One pass over a realistic run: every line is checked against the schema files, every
/// duplicate against recent lines, every malformed line against the reason it claims, and the
/// statistics are recomputed independently.
#[test]
fn every_line_is_what_it_claims_and_stats_reconcile() {
    let cfg = GeneratorConfig {
        events: 150_000,
        malformed_rate: 0.01,
        ..Default::default()
    };
    let schemas = [
        load_schema(Stream::AppEvents),
        load_schema(Stream::CallEvents),
    ];
    let mut tally: [Tally; 2] = Default::default();
    let mut g = Generator::new(cfg.clone()).unwrap();

    // Distribution counters.
    let mut ts_forms: BTreeMap<&str, u64> = BTreeMap::new();
    let mut extras = 0u64;
    let mut absent_optional = 0u64;
    let mut channels: BTreeMap<String, u64> = BTreeMap::new();
    let mut regions: HashSet<String> = HashSet::new();
    let mut platforms: HashSet<String> = HashSet::new();
    let (mut mos_n, mut mos_mid, mut mos_poor) = (0u64, 0u64, 0u64);

    while let Some((stream, kind, line)) = g.next_record() {
        // Own the line so the generator can be asked whether it was late.
        let line = &line.to_vec()[..];
        let si = stream as usize;
        let schema = &schemas[si];
        let t = &mut tally[si];
        assert!(
            !line.contains(&b'\n'),
            "{stream} line contains a newline: {kind:?}"
        );
        t.bytes += line.len() as u64 + 1;
        match kind {
            RecordKind::Valid | RecordKind::Duplicate => {
                let obj = check(schema, line).unwrap_or_else(|why| {
                    panic!(
                        "{stream} {kind:?} line rejected: {why:?}\n{}",
                        String::from_utf8_lossy(line)
                    )
                });
                assert!(line.len() < 2048, "valid lines are small");
                if kind == RecordKind::Duplicate {
                    t.duplicates += 1;
                    assert!(
                        t.recent.iter().any(|l| l == line),
                        "duplicate is not a copy of a recent line"
                    );
                } else {
                    t.valid += 1;
                    t.late += u64::from(g.last_was_late());
                    let id = obj["event_id"].as_str().unwrap().to_string();
                    assert!(
                        t.event_ids.insert(id),
                        "valid originals have distinct event_ids"
                    );
                    let et = obj["event_type"].as_str().unwrap().to_string();
                    *t.event_types.entry(et.clone()).or_default() += 1;
                    if et == "call_started" {
                        assert!(t
                            .groups
                            .insert(obj["call_id"].as_str().unwrap().to_string()));
                    }
                    if et == "app_open" {
                        assert!(t
                            .groups
                            .insert(obj["session_id"].as_str().unwrap().to_string()));
                    }
                    if let Some(d) = obj.get("duration_ms").and_then(Value::as_u64) {
                        t.duration_sum += d;
                    }
                    // Distributions.
                    let ts = &obj["occurred_at"];
                    let form = match ts {
                        Value::Number(_) => "epoch",
                        Value::String(s) if s.ends_with('Z') && s.contains('.') => "millis",
                        Value::String(s) if s.ends_with('Z') => "seconds",
                        _ => "offset",
                    };
                    *ts_forms.entry(form).or_default() += 1;
                    let known: HashSet<&str> =
                        schema.fields.iter().map(|f| f.name.as_str()).collect();
                    if obj.keys().any(|k| !known.contains(k.as_str())) {
                        extras += 1;
                    }
                    let optional_absent = match stream {
                        Stream::AppEvents => ["app_version", "country"]
                            .iter()
                            .any(|k| !obj.contains_key(*k)),
                        Stream::CallEvents => !obj.contains_key("region"),
                    };
                    absent_optional += u64::from(optional_absent);
                    if stream == Stream::CallEvents {
                        assert!(
                            is_e164(obj["caller"].as_str().unwrap())
                                && is_e164(obj["callee"].as_str().unwrap())
                        );
                        if et == "call_started" {
                            *channels
                                .entry(obj["channel"].as_str().unwrap().into())
                                .or_default() += 1;
                        }
                        if let Some(r) = obj.get("region").and_then(Value::as_str) {
                            regions.insert(r.into());
                        }
                        if et == "quality_sample" {
                            let mos = obj["quality"]["mos"].as_f64().unwrap();
                            assert!((1.0..=5.0).contains(&mos));
                            mos_n += 1;
                            mos_mid += u64::from((3.5..=4.5).contains(&mos));
                            mos_poor += u64::from(mos < 3.5);
                        }
                        if et == "call_ended" {
                            assert!(obj["duration_ms"].as_i64().unwrap() >= 0);
                            assert!(
                                obj.contains_key("hangup_cause") && obj.contains_key("quality")
                            );
                        }
                        if et == "call_failed" {
                            let cause = obj["hangup_cause"].as_str().unwrap();
                            assert!(
                                ["busy", "no_answer", "rejected", "network_error"].contains(&cause)
                            );
                        }
                    } else {
                        platforms.insert(obj["platform"].as_str().unwrap().into());
                    }
                    t.recent.push_back(line.to_vec());
                    if t.recent.len() > DUPLICATE_WINDOW {
                        t.recent.pop_front();
                    }
                }
            }
            RecordKind::Malformed(mk) => {
                *t.malformed.entry(mk).or_default() += 1;
                assert!(mk.applies_to(stream));
                match check(schema, line) {
                    Ok(_) => {
                        assert_eq!(
                            mk,
                            MalformedKind::Oversize,
                            "{stream} line claimed {mk} but is valid"
                        );
                        assert!(line.len() > MIB && line.len() < OVERSIZE_BLOB_BYTES + 2048);
                    }
                    Err(why) => {
                        assert!(
                            why.matches(mk),
                            "{stream} line claimed {mk} but was rejected for {why:?}"
                        );
                        assert!(line.len() < 2048);
                        if let Why::NotJson(_) = why {
                            assert!(
                                std::str::from_utf8(line).is_ok(),
                                "truncated lines stay UTF-8"
                            );
                        }
                    }
                }
            }
        }
    }

    // Statistics reconcile with what was seen.
    let stats = g.stats();
    assert_eq!(stats.events(), cfg.events);
    for s in Stream::ALL {
        let (st, t) = (stats.stream(s), &tally[s as usize]);
        assert_eq!(st.valid + st.duplicates + st.malformed, st.lines());
        assert_eq!(st.valid, t.valid, "{s} valid");
        assert_eq!(st.duplicates, t.duplicates, "{s} duplicates");
        assert_eq!(st.late, t.late, "{s} late");
        assert_eq!(st.bytes, t.bytes, "{s} bytes");
        assert_eq!(st.duration_ms_sum, t.duration_sum, "{s} duration sum");
        assert_eq!(
            st.expected_unique_valid(),
            t.event_ids.len() as u64,
            "{s} unique event ids"
        );
        assert_eq!(st.malformed, st.malformed_by_kind.total());
        for k in MalformedKind::ALL {
            assert_eq!(
                st.malformed_by_kind.get(k),
                t.malformed.get(&k).copied().unwrap_or(0),
                "{s} {k}"
            );
        }
        let types: BTreeMap<String, u64> = st
            .event_types
            .iter()
            .map(|(k, v)| (k.to_string(), *v))
            .collect();
        assert_eq!(types, t.event_types, "{s} event types");
        let group_key = if s == Stream::CallEvents {
            "call_started"
        } else {
            "app_open"
        };
        assert_eq!(st.event_types[group_key], t.groups.len() as u64);
        // Every malformed kind that applies shows up (1% of 150k records).
        for k in MalformedKind::ALL
            .iter()
            .filter(|k| k.applies_to(s) && **k != MalformedKind::Oversize)
        {
            assert!(
                t.malformed.get(k).copied().unwrap_or(0) > 50,
                "{s}: too few {k}"
            );
        }
    }
    assert_eq!(
        stats.total().malformed_by_kind.oversize,
        1,
        "one oversize per 200k records, capped"
    );
    assert_eq!(
        stats.call_events.malformed_by_kind.invalid_phone
            + stats.app_events.malformed_by_kind.invalid_phone,
        stats.call_events.malformed_by_kind.invalid_phone
    );

    // Rates near their configuration.
    let total = stats.total();
    let n = cfg.events as f64;
    let dup = total.duplicates as f64 / n;
    assert!((0.007..0.013).contains(&dup), "duplicate share {dup}");
    let late = total.late as f64 / total.valid as f64;
    assert!((0.015..0.025).contains(&late), "late share {late}");
    let calls = stats.call_events.lines() as f64 / n;
    assert!((0.48..0.52).contains(&calls), "call share {calls}");

    // Realistic mixes.
    let failed = stats.call_events.event_types["call_failed"] as f64
        / stats.call_events.event_types["call_started"] as f64;
    assert!((0.15..0.25).contains(&failed), "failed calls {failed}");
    let video = channels["video"] as f64 / (channels["video"] + channels["voice"]) as f64;
    assert!((0.15..0.25).contains(&video), "video share {video}");
    assert!(regions.len() >= 5, "regions {regions:?}");
    assert_eq!(platforms.len(), 3);
    assert!(mos_mid as f64 / mos_n as f64 > 0.6, "MOS mostly 3.5..4.5");
    assert!(
        (0.05..0.3).contains(&(mos_poor as f64 / mos_n as f64)),
        "a tail of poor samples"
    );
    let sent = stats.app_events.event_types["message_sent"] as f64;
    let failed_msgs = stats.app_events.event_types["message_failed"] as f64
        / (sent + stats.app_events.event_types["message_failed"] as f64);
    assert!(
        (0.02..0.04).contains(&failed_msgs),
        "failed messages {failed_msgs}"
    );
    let valid = total.valid as f64;
    assert!(ts_forms["millis"] as f64 / valid > 0.8, "{ts_forms:?}");
    for form in ["seconds", "offset", "epoch"] {
        assert!(
            (0.03..0.07).contains(&(ts_forms[form] as f64 / valid)),
            "{ts_forms:?}"
        );
    }
    assert!(
        (0.01..0.05).contains(&(extras as f64 / valid)),
        "extras {extras}"
    );
    assert!(absent_optional > 0);
    let avg = total.bytes as f64 / n;
    assert!((300.0..500.0).contains(&avg), "average line {avg} bytes");
}

/// Lifecycle order per call and per session (no late events, so line order and time agree).
#[test]
fn call_lifecycle_and_session_order() {
    let cfg = GeneratorConfig {
        events: 80_000,
        late_rate: 0.0,
        duplicate_rate: 0.0,
        malformed_rate: 0.0,
        ..Default::default()
    };
    let mut g = Generator::new(cfg).unwrap();
    let mut calls: HashMap<String, Vec<(String, i64, Option<i64>)>> = HashMap::new();
    let mut sessions: HashMap<String, Vec<String>> = HashMap::new();
    while let Some((stream, kind, line)) = g.next_record() {
        assert_eq!(kind, RecordKind::Valid);
        let v: Value = serde_json::from_slice(line).unwrap();
        let et = v["event_type"].as_str().unwrap().to_string();
        let ms = timestamp_ms(&v["occurred_at"]).unwrap();
        match stream {
            Stream::CallEvents => calls
                .entry(v["call_id"].as_str().unwrap().into())
                .or_default()
                .push((et, ms, v.get("duration_ms").and_then(Value::as_i64))),
            Stream::AppEvents => sessions
                .entry(v["session_id"].as_str().unwrap().into())
                .or_default()
                .push(et),
        }
    }
    let mut completed = 0;
    for (id, evs) in &calls {
        let types: Vec<&str> = evs.iter().map(|e| e.0.as_str()).collect();
        assert_eq!(types[0], "call_started", "{id}: {types:?}");
        // Grammar: started (ringing)? failed | started ringing answered sample* ended (any prefix).
        let mut i = 1;
        if types.get(i) == Some(&"call_ringing") {
            i += 1;
        }
        match types.get(i) {
            None => {}
            Some(&"call_failed") => {
                completed += 1;
                assert_eq!(
                    i + 1,
                    types.len(),
                    "{id}: nothing after call_failed: {types:?}"
                );
            }
            Some(&"call_answered") => {
                assert_eq!(i, 2, "{id}: answered only after ringing: {types:?}");
                let rest = &types[i + 1..];
                let samples = rest.iter().take_while(|t| **t == "quality_sample").count();
                let tail = &rest[samples..];
                assert!(tail.is_empty() || tail == ["call_ended"], "{id}: {types:?}");
                if tail == ["call_ended"] {
                    completed += 1;
                    assert!(samples >= 1, "{id}: answered calls sample quality");
                    let answered = evs[i].1;
                    let ended = evs.last().unwrap();
                    let d = ended.2.expect("call_ended has duration_ms");
                    assert!(
                        (ended.1 - answered - d).abs() < 1000,
                        "{id}: duration {d} vs {answered}..{}",
                        ended.1
                    );
                }
            }
            other => panic!("{id}: unexpected {other:?} in {types:?}"),
        }
        // Time never goes backwards (1 s slack: some timestamps drop their milliseconds).
        for w in evs.windows(2) {
            assert!(w[1].1 >= w[0].1 - 999, "{id}: time goes backwards: {evs:?}");
        }
    }
    assert!(completed > 1000, "completed calls {completed}");
    for (id, evs) in &sessions {
        assert_eq!(evs[0], "app_open", "{id}: {evs:?}");
        if let Some(end) = evs
            .iter()
            .position(|e| e == "logout" || e == "app_background")
        {
            assert_eq!(
                end + 1,
                evs.len(),
                "{id}: nothing after the session ends: {evs:?}"
            );
        }
        assert_eq!(evs.iter().filter(|e| *e == "app_open").count(), 1);
    }
}

#[test]
fn oversize_is_rare_and_capped() {
    // A high malformed rate makes the rotation ask for oversize often; the limits still hold.
    let run = |events: u64, max_oversize: u32| {
        let cfg = GeneratorConfig {
            events,
            malformed_rate: 0.3,
            max_oversize,
            ..Default::default()
        };
        let mut g = Generator::new(cfg).unwrap();
        let mut at = Vec::new();
        let mut i = 0u64;
        while let Some((_, kind, line)) = g.next_record() {
            if kind == RecordKind::Malformed(MalformedKind::Oversize) {
                assert!(line.len() > MIB && !line.contains(&b'\n'));
                at.push(i);
            } else {
                assert!(line.len() < 4096);
            }
            i += 1;
        }
        assert_eq!(
            g.stats().total().malformed_by_kind.oversize,
            at.len() as u64
        );
        at
    };
    let at = run(450_000, 10);
    assert_eq!(at.len(), 3, "one per 200,000 records: {at:?}");
    for (k, i) in at.iter().enumerate() {
        assert!(*i >= k as u64 * 200_000, "{at:?}");
    }
    assert_eq!(run(450_000, 1).len(), 1);
    assert_eq!(run(20_000, 0).len(), 0);
}

#[test]
fn event_time_spans_hours_without_a_wall_clock() {
    // 1M records at the default 50/s of event time is ~5.6 h; same density, a tenth of the records.
    let cfg = GeneratorConfig {
        events: 100_000,
        events_per_second: 5.0,
        ..Default::default()
    };
    let (app, _) = ndjson(&cfg);
    let mut g = Generator::new(cfg.clone()).unwrap();
    while g.next_record().is_some() {}
    let st = g.stats().total();
    let (min, max) = (st.min_occurred_ms.unwrap(), st.max_occurred_ms.unwrap());
    assert!(
        max - cfg.start_ms > 5 * 3_600_000 && max - cfg.start_ms < 6 * 3_600_000,
        "span {}",
        max - cfg.start_ms
    );
    assert!(min < cfg.start_ms, "late events reach before the start");
    assert!(cfg.start_ms - min <= 3 * 3_600_000 + 1000);
    let hours: HashSet<i64> = app
        .split(|b| *b == b'\n')
        .filter_map(|l| serde_json::from_slice::<Value>(l).ok())
        .filter_map(|v| timestamp_ms(&v["occurred_at"]))
        .map(|ms| ms / 3_600_000)
        .collect();
    assert!(hours.len() >= 6, "dt/hour partitions: {}", hours.len());
}

#[test]
fn bad_config_is_refused_naming_the_field() {
    let err = Generator::new(GeneratorConfig {
        duplicate_rate: 1.5,
        ..Default::default()
    })
    .unwrap_err();
    assert!(
        matches!(
            err,
            GenerateError::InvalidConfig {
                field: "duplicate_rate",
                ..
            }
        ),
        "{err}"
    );
    let err = write_ndjson(
        GeneratorConfig {
            events: 0,
            ..Default::default()
        },
        &mut Vec::new(),
        &mut Vec::new(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("`events`"), "{err}");
}

#[test]
fn io_errors_name_the_stream() {
    struct Broken;
    impl std::io::Write for Broken {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::Error::other("disk full"))
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let cfg = GeneratorConfig {
        events: 10,
        call_share: 1.0,
        ..Default::default()
    };
    let err = write_ndjson(cfg, &mut Vec::new(), &mut Broken).unwrap_err();
    assert!(
        matches!(
            err,
            GenerateError::Io {
                stream: "call_events",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn call_share_extremes() {
    for (share, want) in [(0.0, Stream::AppEvents), (1.0, Stream::CallEvents)] {
        let mut g = Generator::new(GeneratorConfig {
            events: 2_000,
            call_share: share,
            ..Default::default()
        })
        .unwrap();
        while let Some((s, _, _)) = g.next_record() {
            assert_eq!(s, want);
        }
    }
}
