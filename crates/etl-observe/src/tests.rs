use super::*;
use std::io::{Read, Write};

/// The table of `docs/metrics.md` as [`METRICS`] says it must read.
fn table() -> String {
    let mut out = String::from("| name | type | labels | meaning |\n|---|---|---|---|\n");
    for m in METRICS {
        let labels = if m.labels.is_empty() {
            "(none)".to_string()
        } else {
            m.labels
                .iter()
                .map(|l| format!("`{l}`"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        out.push_str(&format!(
            "| `{}` | {} | {labels} | {} |\n",
            m.name,
            m.kind.as_str(),
            m.help
        ));
    }
    out
}

#[test]
fn docs_metrics_md_lists_exactly_the_exported_metrics() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/metrics.md");
    let doc = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let rows: Vec<&str> = doc
        .lines()
        .filter(|l| {
            l.starts_with("| `etl_") || l.starts_with("| name |") || l == &"|---|---|---|---|"
        })
        .collect();
    let expected = table();
    let expected: Vec<&str> = expected.lines().collect();
    assert_eq!(
        rows,
        expected,
        "docs/metrics.md drifted from etl_observe::METRICS; its table must read:\n{}",
        table()
    );
}

#[test]
fn metric_names_and_labels_follow_the_conventions() {
    let mut names = std::collections::BTreeSet::new();
    for m in METRICS {
        assert!(names.insert(m.name), "{} listed twice", m.name);
        assert!(m.name.starts_with("etl_"), "{}", m.name);
        assert_eq!(
            m.kind == Kind::Counter,
            m.name.ends_with("_total"),
            "{}",
            m.name
        );
        assert_eq!(
            m.kind == Kind::Histogram,
            !m.buckets.is_empty(),
            "{}",
            m.name
        );
        assert!(m.buckets.windows(2).all(|w| w[0] < w[1]), "{}", m.name);
        for label in m.labels {
            assert!(
                ["stream", "shard", "stage", "reason", "table", "kind"].contains(label),
                "{}: label {label} is not one of the bounded labels",
                m.name
            );
        }
    }
}

/// One request to `addr`: (status, body).
fn get(addr: SocketAddr, request: &str) -> (u16, String) {
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    stream.write_all(request.as_bytes()).expect("write");
    let mut text = String::new();
    stream.read_to_string(&mut text).expect("read");
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {text:?}"));
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (status, body.to_string())
}

fn get_path(addr: SocketAddr, path: &str) -> (u16, String) {
    get(
        addr,
        &format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nAccept: */*\r\n\r\n"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_listener_serves_metrics_and_probes_through_the_phases() {
    let (recorder, observer) = Observer::build().expect("build");
    let addr = observer
        .serve("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("serve");
    metrics::with_local_recorder(&recorder, || {
        metrics::counter!("etl_records_read_total", "stream" => "app_events").increment(7);
        metrics::histogram!("etl_batch_records", "stream" => "app_events").record(7.0);
    });
    let readiness = observer.readiness();
    let probe = move |path: &'static str| tokio::task::spawn_blocking(move || get_path(addr, path));

    assert_eq!(probe("/healthz").await.expect("join"), (200, "ok\n".into()));
    assert_eq!(
        probe("/readyz").await.expect("join"),
        (503, "not ready: starting\n".into())
    );
    readiness.ready();
    assert_eq!(
        probe("/readyz").await.expect("join"),
        (200, "ready\n".into())
    );
    let (status, text) = probe("/metrics").await.expect("join");
    assert_eq!(status, 200);
    for line in [
        "# HELP etl_records_read_total Records read from the source, counted when their batch is committed.",
        "# TYPE etl_records_read_total counter",
        "etl_records_read_total{stream=\"app_events\"} 7",
        "# TYPE etl_batch_records histogram",
        "etl_batch_records_bucket{stream=\"app_events\",le=\"10\"} 1",
        "etl_batch_records_count{stream=\"app_events\"} 1",
        "etl_ready 1",
    ] {
        assert!(text.lines().any(|l| l == line), "no {line:?} in:\n{text}");
    }
    let rss: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("etl_process_resident_memory_bytes "))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no RSS in:\n{text}"));
    assert!(rss > 1e6, "{rss}");

    readiness.stopping();
    readiness.ready();
    assert_eq!(
        probe("/readyz").await.expect("join"),
        (503, "not ready: stopping\n".into())
    );
    let (_, text) = probe("/metrics").await.expect("join");
    assert!(text.lines().any(|l| l == "etl_ready 0"), "{text}");
    assert_eq!(probe("/healthz").await.expect("join").0, 200);
    assert_eq!(probe("/nope").await.expect("join").0, 404);

    let raw = move |request: &'static str| tokio::task::spawn_blocking(move || get(addr, request));
    assert_eq!(
        raw("POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n")
            .await
            .expect("join")
            .0,
        405
    );
    assert_eq!(raw("hello\r\n\r\n").await.expect("join").0, 400);
    assert_eq!(
        raw("HEAD /healthz HTTP/1.1\r\n\r\n").await.expect("join"),
        (200, String::new())
    );
}

#[tokio::test]
async fn a_taken_address_is_a_clear_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr");
    let (_, observer) = Observer::build().expect("build");
    let err = observer.serve(addr).await.expect_err("port is taken");
    let text = err.to_string();
    assert!(
        text.contains(&addr.to_string()) && text.contains("--metrics-listen"),
        "{text}"
    );
}
