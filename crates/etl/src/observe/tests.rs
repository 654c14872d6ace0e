use super::*;
use etl_observe::{Kind, Observer, METRICS};
use etl_pipeline::metrics::{Stage, StageClock};
use std::collections::{BTreeMap, BTreeSet};

/// Family name → (type, label names) of a Prometheus text rendering.
fn families(text: &str) -> BTreeMap<String, (String, BTreeSet<String>)> {
    let mut out: BTreeMap<String, (String, BTreeSet<String>)> = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("# TYPE name kind");
            out.entry(name.to_string()).or_default().0 = kind.to_string();
        } else if !line.starts_with('#') && !line.is_empty() {
            let series = line.split(' ').next().expect("series");
            let (name, labels) = series.split_once('{').unwrap_or((series, "}"));
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s).filter(|f| out.contains_key(*f)))
                .unwrap_or(name);
            let keys = labels
                .trim_end_matches('}')
                .split(',')
                .filter(|kv| !kv.is_empty())
                .map(|kv| kv.split_once('=').expect("k=v").0.to_string())
                .filter(|k| k != "le");
            out.entry(family.to_string()).or_default().1.extend(keys);
        }
    }
    out
}

/// Every metric the code records is in `etl_observe::METRICS` (and so in docs/metrics.md) with
/// the same type and labels, and every listed metric is recorded by some code path.
#[test]
fn the_code_records_exactly_the_listed_metrics() {
    let (recorder, observer) = Observer::build().expect("observer");
    metrics::with_local_recorder(&recorder, || {
        let stream = "app_events";
        etl_pipeline::metrics::register_stream(stream);
        etl_pipeline::metrics::batch_committed(
            stream,
            10,
            7,
            1,
            0,
            &["invalid_json".into(), "no_such_reason".into()],
        );
        let mut clock = StageClock::new(stream);
        for stage in [Stage::Decode, Stage::Transform, Stage::Encode] {
            clock.lap(stage);
        }
        etl_pipeline::metrics::commit_timer(stream).written();
        drop(etl_pipeline::metrics::commit_timer(stream));

        let tables = vec!["call_events".to_string()];
        etl_redshift::metrics::register_tables(&tables);
        etl_redshift::metrics::pending("call_events", 3);
        etl_redshift::metrics::batch_done("call_events");
        etl_redshift::metrics::batches_loaded("call_events", 2);
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let ok = rt.block_on(etl_redshift::metrics::timed_load(
            "call_events",
            |_| false,
            async { Ok(()) },
        ));
        assert!(ok.is_ok());

        let lag = BTreeMap::from([(
            "shardId-000000000000".to_string(),
            ShardLag {
                millis_behind_latest: Some(1500),
                event_time_lag_ms: Some(2500),
            },
        )]);
        export_kinesis(stream, &lag, ReaderCounts::default());
    });
    let text = observer.render();
    let found = families(&text);
    for m in METRICS {
        let (kind, labels) = found
            .get(m.name)
            .unwrap_or_else(|| panic!("{} is listed but no code recorded it:\n{text}", m.name));
        assert_eq!(kind, m.kind.as_str(), "{}", m.name);
        let expected: BTreeSet<String> = m.labels.iter().map(|l| l.to_string()).collect();
        assert_eq!(labels, &expected, "labels of {}", m.name);
    }
    for name in found.keys() {
        assert!(
            etl_observe::find(name).is_some(),
            "{name} is recorded but not listed in etl_observe::METRICS / docs/metrics.md"
        );
    }
    // Unknown reason codes collapse into `other`; values are what was recorded.
    for line in [
        "etl_records_dead_lettered_total{stream=\"app_events\",reason=\"other\"} 1",
        "etl_records_dead_lettered_total{stream=\"app_events\",reason=\"invalid_json\"} 1",
        "etl_records_read_total{stream=\"app_events\"} 10",
        "etl_lake_commit_failures_total{stream=\"app_events\"} 1",
        "etl_redshift_batches_pending{table=\"call_events\"} 2",
        "etl_kinesis_millis_behind_latest{stream=\"app_events\",shard=\"shardId-000000000000\"} 1500",
        "etl_event_freshness_seconds{stream=\"app_events\",shard=\"shardId-000000000000\"} 2.5",
    ] {
        assert!(text.lines().any(|l| l == line), "no {line:?} in:\n{text}");
    }
    assert!(METRICS.iter().any(|m| m.kind == Kind::Histogram));
}

#[test]
fn listen_addresses_are_checked_with_the_field_and_the_fix() {
    let config = ObservabilityConfig::default();
    assert_eq!(
        config.address(None).expect("default"),
        Some("0.0.0.0:9464".parse().expect("addr"))
    );
    assert_eq!(config.address(Some("off")).expect("off"), None);
    let err = config.address(Some("localhost:9464")).expect_err("a name");
    assert!(
        err.to_string()
            .contains("--metrics-listen \"localhost:9464\" is not an address"),
        "{err}"
    );
    let bad: crate::config::ConfigFile =
        toml::from_str("[observability]\nlisten = \"nine\"\n").expect("parses");
    let err = bad.observability.address(None).expect_err("not an address");
    assert!(err.to_string().contains("observability.listen"), "{err}");
    let unknown = toml::from_str::<crate::config::ConfigFile>("[observability]\nport = 1\n");
    assert!(unknown.is_err());
}
