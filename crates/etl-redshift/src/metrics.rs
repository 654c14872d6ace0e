//! The loader's metrics, recorded through the `metrics` facade (a no-op until a binary installs
//! a recorder; `etl-observe` does for `etl warehouse load --follow`). Names, types and labels are
//! listed in `docs/metrics.md`; the labels are the table (one per stream schema) and the failure
//! kind (`transient` or `permanent`), so the number of series is bounded.

use crate::error::RedshiftError;
use std::future::Future;
use std::time::Instant;

/// Creates the tables' series at 0, so they are exported before the first load.
pub fn register_tables(tables: &[String]) {
    for table in tables {
        metrics::gauge!("etl_redshift_batches_pending", "table" => table.clone()).set(0.0);
        metrics::counter!("etl_redshift_batches_loaded_total", "table" => table.clone())
            .increment(0);
        for kind in ["transient", "permanent"] {
            metrics::counter!("etl_redshift_load_failures_total", "table" => table.clone(), "kind" => kind)
                .increment(0);
        }
    }
}

/// `n` batches of `table` were loaded (one transaction: a group of batches, or one).
pub fn batches_loaded(table: &str, n: u64) {
    metrics::counter!("etl_redshift_batches_loaded_total", "table" => table.to_string())
        .increment(n);
}

/// Runs one load attempt of a batch (or a group of batches) of `table`: records its duration when it succeeds, and a
/// failure of kind `permanent` (as `is_permanent` says) or `transient` when it fails.
pub async fn timed_load<T>(
    table: &str,
    is_permanent: fn(&RedshiftError) -> bool,
    load: impl Future<Output = Result<T, RedshiftError>>,
) -> Result<T, RedshiftError> {
    let started = Instant::now();
    let result = load.await;
    match &result {
        Ok(_) => {
            metrics::histogram!("etl_redshift_load_duration_seconds", "table" => table.to_string())
                .record(started.elapsed().as_secs_f64())
        }
        Err(e) => {
            let kind = if is_permanent(e) {
                "permanent"
            } else {
                "transient"
            };
            metrics::counter!("etl_redshift_load_failures_total", "table" => table.to_string(), "kind" => kind)
                .increment(1);
        }
    }
    result
}

/// `table` has `n` committed batches the loader has not yet loaded or found in the ledger.
pub fn pending(table: &str, n: usize) {
    metrics::gauge!("etl_redshift_batches_pending", "table" => table.to_string()).set(n as f64);
}

/// One pending batch of `table` is done (loaded, already loaded, or empty).
pub fn batch_done(table: &str) {
    metrics::gauge!("etl_redshift_batches_pending", "table" => table.to_string()).decrement(1.0);
}
