//! The workspace's one integration-test binary. Each topic is a module; later issues add theirs
//! here (not new `[[test]]` targets: every test binary costs a long link).
//!
//! Tests return [`TestResult`] so that `?` works on SDK and test-bed errors and a failure prints
//! the whole error chain (service code and message, or the server's log tail).

mod athena_query;
mod compaction_s3;
mod glue_catalog;
mod kinesis_kpl_agg;
mod kinesis_resilience;
mod kinesis_source;
mod lake_delivery;
mod lake_outage;
mod lake_s3;
mod leases;
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

/// A pipeline into `lake` with `batch_max_records` per batch, two batches at once, the embedded
/// schemas and SQL, and a file catalog in the lake (each pipeline has its own dedup window).
pub(crate) fn pipeline(
    lake: &etl_lake::Lake,
    batch_max_records: usize,
) -> Result<etl_pipeline::Pipeline, Failure> {
    let catalog = std::sync::Arc::new(etl_lake::catalog::FileCatalog::new(lake.clone()));
    pipeline_with_catalog(lake, batch_max_records, catalog)
}

/// [`pipeline`] registering partitions in `catalog` (e.g. Glue) instead of the lake's file
/// catalog.
pub(crate) fn pipeline_with_catalog(
    lake: &etl_lake::Lake,
    batch_max_records: usize,
    catalog: std::sync::Arc<dyn etl_lake::catalog::Catalog>,
) -> Result<etl_pipeline::Pipeline, Failure> {
    let schemas = etl_schema::embedded().context("schemas")?;
    let key = etl_transform::MaskKey::new(b"integration-test-key-0123456789").map_err(Failure)?;
    let transformer = etl_transform::Transformer::new(&schemas, etl_transform::embedded_sql(), key)
        .context("transformer")?;
    let options = etl_pipeline::PipelineOptions {
        batch_max_records,
        parallelism: 2,
        ..etl_pipeline::PipelineOptions::default()
    };
    etl_pipeline::Pipeline::new(options, schemas, transformer, lake.clone(), catalog)
        .context("pipeline")
}

/// The `event_id` of every row of one Parquet file (a local file or bytes read from a lake).
pub(crate) fn parquet_event_ids<R>(file: R) -> Result<Vec<String>, Failure>
where
    R: parquet::file::reader::ChunkReader + 'static,
{
    use arrow::array::AsArray;
    let mut ids = Vec::new();
    for batch in parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .context("parquet")?
        .build()
        .context("parquet reader")?
    {
        let batch = batch.context("parquet batch")?;
        let column = batch
            .column_by_name("event_id")
            .context("event_id column")?
            .as_string_opt::<i32>()
            .context("event_id as string")?;
        ids.extend(column.iter().map(|id| id.unwrap_or_default().to_string()));
    }
    Ok(ids)
}

/// One row of a local lake: its `event_id` and when its data file was written.
pub(crate) struct LakeRow {
    pub(crate) written: std::time::SystemTime,
    pub(crate) event_id: String,
}

/// Every row of the Parquet files under `<lake_dir>/<table>/`.
pub(crate) fn lake_rows(lake_dir: &std::path::Path, table: &str) -> Result<Vec<LakeRow>, Failure> {
    let mut rows = Vec::new();
    let mut dirs = vec![lake_dir.join(table)];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).context("reading the lake")? {
            let path = entry.context("lake entry")?.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "parquet") {
                let file = std::fs::File::open(&path).context("parquet file")?;
                let written = file
                    .metadata()
                    .and_then(|m| m.modified())
                    .context("file time")?;
                rows.extend(
                    parquet_event_ids(file)?
                        .into_iter()
                        .map(|event_id| LakeRow { written, event_id }),
                );
            }
        }
    }
    Ok(rows)
}
