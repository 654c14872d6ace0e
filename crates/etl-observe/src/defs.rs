//! Every metric the process exports: name, type, labels, meaning and histogram buckets. The
//! list is the one source of the `# HELP` lines, of the histogram buckets and of the table in
//! `docs/metrics.md` (a test compares the two, and the binary's tests compare it with what the
//! code really emits). The libraries name the metrics in their own `metrics.rs` files with the
//! `metrics` facade; they do not depend on this crate.

/// Prometheus type of a metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up (restarts at 0 with the process).
    Counter,
    /// A value that goes up and down.
    Gauge,
    /// Observations counted in buckets (`_bucket`, `_sum`, `_count` series).
    Histogram,
}

impl Kind {
    /// The Prometheus name of the type (`# TYPE` lines).
    pub const fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// One exported metric.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MetricDef {
    /// Metric name (`etl_` prefix; counters end in `_total`).
    pub name: &'static str,
    /// Prometheus type.
    pub kind: Kind,
    /// Label names, all with bounded values (see the module doc of the crate).
    pub labels: &'static [&'static str],
    /// What it measures: the `# HELP` text and the "meaning" column of `docs/metrics.md`.
    pub help: &'static str,
    /// Upper bounds of the buckets (histograms only; empty otherwise).
    pub buckets: &'static [f64],
}

/// Buckets of the per-stage and commit durations, seconds.
const STAGE_SECONDS: &[f64] = &[
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
/// Buckets of the Redshift load durations, seconds (a COPY + MERGE takes seconds to minutes).
const LOAD_SECONDS: &[f64] = &[
    0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0,
];
/// Buckets of the batch sizes, records (the default batch limit is 65,536 records).
const BATCH_RECORDS: &[f64] = &[1.0, 10.0, 100.0, 1000.0, 4096.0, 16384.0, 65536.0, 262144.0];

const fn counter(
    name: &'static str,
    labels: &'static [&'static str],
    help: &'static str,
) -> MetricDef {
    MetricDef {
        name,
        kind: Kind::Counter,
        labels,
        help,
        buckets: &[],
    }
}

const fn gauge(
    name: &'static str,
    labels: &'static [&'static str],
    help: &'static str,
) -> MetricDef {
    MetricDef {
        name,
        kind: Kind::Gauge,
        labels,
        help,
        buckets: &[],
    }
}

const fn histogram(
    name: &'static str,
    labels: &'static [&'static str],
    help: &'static str,
    buckets: &'static [f64],
) -> MetricDef {
    MetricDef {
        name,
        kind: Kind::Histogram,
        labels,
        help,
        buckets,
    }
}

/// Every metric, in the order of `docs/metrics.md`.
pub const METRICS: &[MetricDef] = &[
    // Pipeline (crates/etl-pipeline/src/metrics.rs), counted when a batch is committed.
    counter(
        "etl_records_read_total",
        &["stream"],
        "Records read from the source, counted when their batch is committed.",
    ),
    counter(
        "etl_records_written_total",
        &["stream"],
        "Rows written to the lake.",
    ),
    counter(
        "etl_records_duplicates_total",
        &["stream"],
        "Records dropped because their event_id was already seen (in the batch or the dedup window).",
    ),
    counter(
        "etl_records_filtered_total",
        &["stream"],
        "Rows the transform SQL's WHERE dropped (not duplicates: those are counted apart).",
    ),
    counter(
        "etl_records_dead_lettered_total",
        &["stream", "reason"],
        "Records sent to dead letters, by reason code (too_large, invalid_json, missing_field, ...; other for unknown codes).",
    ),
    histogram(
        "etl_batch_records",
        &["stream"],
        "Records per committed micro-batch.",
        BATCH_RECORDS,
    ),
    histogram(
        "etl_stage_duration_seconds",
        &["stream", "stage"],
        "Time a batch spends in a stage: decode (validate into Arrow), transform (SQL), encode (Parquet), commit (lake, catalog, positions).",
        STAGE_SECONDS,
    ),
    histogram(
        "etl_lake_commit_duration_seconds",
        &["stream"],
        "Time to make one batch durable in the lake (data files, dead letters, manifest; with Kinesis the shard positions).",
        STAGE_SECONDS,
    ),
    counter(
        "etl_lake_commit_failures_total",
        &["stream"],
        "Lake commits that failed (the run stops; a restart resumes from the committed positions).",
    ),
    // Kinesis (bridged from etl-kinesis' reader metrics by crates/etl/src/observe.rs).
    gauge(
        "etl_kinesis_millis_behind_latest",
        &["stream", "shard"],
        "The last MillisBehindLatest Kinesis reported for the shard.",
    ),
    gauge(
        "etl_event_freshness_seconds",
        &["stream", "shard"],
        "Now minus the newest occurred_at committed from the shard (event-time lag).",
    ),
    counter(
        "etl_kinesis_get_records_calls_total",
        &["stream"],
        "GetRecords calls that returned.",
    ),
    counter(
        "etl_kinesis_records_total",
        &["stream"],
        "Kinesis records received (before KPL de-aggregation).",
    ),
    counter(
        "etl_kinesis_user_records_total",
        &["stream"],
        "User records after KPL de-aggregation.",
    ),
    counter(
        "etl_kinesis_throttled_calls_total",
        &["stream"],
        "GetRecords calls still throttled after the SDK's attempts.",
    ),
    counter(
        "etl_kinesis_failed_calls_total",
        &["stream"],
        "Other Kinesis calls the SDK gave up on and the reader retried.",
    ),
    counter(
        "etl_kinesis_iterators_expired_total",
        &["stream"],
        "Expired shard iterators recovered from.",
    ),
    // Redshift loader (crates/etl-redshift/src/metrics.rs).
    histogram(
        "etl_redshift_load_duration_seconds",
        &["table"],
        "Time of one successful load transaction: a batch or a group of batches (COPY manifest + MERGE + ledger rows).",
        LOAD_SECONDS,
    ),
    counter(
        "etl_redshift_batches_loaded_total",
        &["table"],
        "Committed lake batches loaded into the table (a grouped load counts each of its batches).",
    ),
    gauge(
        "etl_redshift_batches_pending",
        &["table"],
        "Committed lake batches the loader has not yet loaded or found in the load ledger.",
    ),
    counter(
        "etl_redshift_load_failures_total",
        &["table", "kind"],
        "Failed load attempts; kind = transient (retried) or permanent (the loader stops).",
    ),
    // Process (crates/etl-observe).
    gauge(
        "etl_process_resident_memory_bytes",
        &[],
        "Resident memory of the process (from /proc/self/statm), read at each scrape.",
    ),
    gauge(
        "etl_ready",
        &[],
        "1 while /readyz answers 200, else 0 (starting, or stopping after SIGTERM).",
    ),
];

/// The definition of `name`, if it is exported.
pub fn find(name: &str) -> Option<&'static MetricDef> {
    METRICS.iter().find(|m| m.name == name)
}
