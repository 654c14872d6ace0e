//! The workspace's one integration-test binary. Each topic is a module; later issues add theirs
//! here (not new `[[test]]` targets: every test binary costs a long link).
//!
//! Tests return [`TestResult`] so that `?` works on SDK and test-bed errors and a failure prints
//! the whole error chain (service code and message, or the server's log tail).

mod glue_catalog;
mod kinesis_kpl_agg;
mod kinesis_resilience;
mod kinesis_source;
mod lake_delivery;
mod lake_s3;
mod redshift_suite;
mod testbed_process;
mod testbed_smoke;

use std::fmt;

/// What a test returns.
pub type TestResult = Result<(), Failure>;

/// A test failure: the error's whole source chain, printed as is.
pub struct Failure(pub String);

impl fmt::Debug for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<E: std::error::Error + 'static> From<E> for Failure {
    fn from(err: E) -> Self {
        Failure(etl_aws::describe_error(&err))
    }
}

/// Adds what the test was doing to an error.
pub trait Context<T> {
    /// `Err(e)` becomes `Err(Failure("<what>: <e and its causes>"))`.
    fn context(self, what: &str) -> Result<T, Failure>;
}

impl<T, E: std::error::Error + 'static> Context<T> for Result<T, E> {
    fn context(self, what: &str) -> Result<T, Failure> {
        self.map_err(|e| Failure(format!("{what}: {}", etl_aws::describe_error(&e))))
    }
}

impl<T> Context<T> for Option<T> {
    fn context(self, what: &str) -> Result<T, Failure> {
        self.ok_or_else(|| Failure(format!("{what}: missing")))
    }
}

/// Asserts that `got` holds every id of `expected` exactly once and nothing else; the message
/// names a few repeated, missing and unexpected ids.
pub(crate) fn assert_ids_exactly_once<'a>(
    got: impl IntoIterator<Item = &'a str>,
    expected: &[String],
) -> TestResult {
    use std::collections::{HashMap, HashSet};
    let mut counts: HashMap<&str, u32> = HashMap::new();
    let mut total = 0usize;
    for id in got {
        *counts.entry(id).or_default() += 1;
        total += 1;
    }
    let repeated: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).take(5).collect();
    assert!(
        repeated.is_empty(),
        "event ids in the lake more than once: {repeated:?}"
    );
    let want: HashSet<&str> = expected.iter().map(String::as_str).collect();
    let have: HashSet<&str> = counts.keys().copied().collect();
    let missing: Vec<_> = want.difference(&have).take(5).collect();
    let extra: Vec<_> = have.difference(&want).take(5).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "missing {missing:?} ({} in all), unexpected {extra:?}",
        want.difference(&have).count()
    );
    assert_eq!(total, expected.len());
    Ok(())
}
