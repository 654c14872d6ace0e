//! The transform step: per-stream DataFusion SQL from `queries/transform/<stream>.sql`, run on
//! each decoded micro-batch.
//!
//! Before the SQL runs, the batch is deduplicated on `event_id` (the first record of each id wins)
//! in one hash pass. The SQL then sees the batch as table `input` (the decoded columns) and must
//! return the stream's lake columns followed by `dt` and `hour`; [`Transformer`] checks that
//! before anything is written. Functions registered for the SQL:
//! `mask_phone(text)` (keyed HMAC-SHA256, see [`MaskKey`]), `lake_dt(ts)` and `lake_hour(ts)`
//! (UTC partition values). The SQL is planned once per stream (and input schema) and the plan
//! is run for every batch (`plan.rs`).
//!
//! This crate does not decode JSON, deduplicate across batches, or write anything.

mod functions;
mod idset;
mod plan;

pub use functions::MaskKey;
pub use idset::{id_digest, id_set, DigestHasher, IdSet};

use arrow::array::{Array, AsArray, BooleanArray, RecordBatch};
use arrow::compute::filter_record_batch;
use arrow::datatypes::Schema;
use datafusion::execution::context::SessionContext;
use datafusion::prelude::SessionConfig;
use etl_schema::{StreamSchema, ARRIVED_AT_COLUMN};
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

/// Errors of the transform step.
#[derive(Debug, thiserror::Error)]
pub enum TransformError {
    #[error("cannot read transform SQL {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("no transform SQL for stream `{0}`: add queries/transform/{0}.sql")]
    Missing(String),
    #[error("transform SQL {origin} failed: {source}")]
    Sql {
        origin: String,
        #[source]
        source: Box<datafusion::error::DataFusionError>,
    },
    #[error("transform SQL {origin} returns the wrong columns: {message}. It must return the lake columns of the stream in schema order, then `dt` and `hour`")]
    Shape { origin: String, message: String },
    #[error("transform SQL {origin} returned {output} rows for {input} input rows: a transform keeps, changes or drops records (WHERE), it never adds any")]
    Grew {
        origin: String,
        input: u64,
        output: u64,
    },
    #[error("internal Arrow error in the transform step: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
}

/// What the transform made of one decoded batch, with every row accounted for:
/// `input rows = duplicates + filtered + rows of batches`.
#[derive(Debug)]
pub struct Transformed {
    /// The stream's lake columns plus `dt` and `hour`.
    pub batches: Vec<RecordBatch>,
    /// Rows dropped because an earlier row of the batch had the same `event_id`.
    pub duplicates: u64,
    /// Rows the transform SQL dropped (its `WHERE`).
    pub filtered: u64,
}

/// One stream's transform query.
#[derive(Debug, Clone)]
pub struct TransformSql {
    /// Stream name (the file stem).
    pub stream: String,
    /// Where it came from, for error messages.
    pub origin: String,
    /// The SELECT statement.
    pub sql: String,
}

/// The transform queries compiled into the binary (the repository's `queries/transform/`).
pub fn embedded_sql() -> Vec<TransformSql> {
    // Every queries/transform/*.sql, listed by build.rs: adding a stream adds no code.
    const FILES: &[(&str, &str)] = include!(concat!(env!("OUT_DIR"), "/embedded_transforms.rs"));
    FILES
        .iter()
        .map(|(file, sql)| {
            let stream = file.strip_suffix(".sql").unwrap_or(file);
            TransformSql {
                stream: stream.into(),
                origin: format!("queries/transform/{file}"),
                sql: (*sql).into(),
            }
        })
        .collect()
}

/// Loads `<dir>/<stream>.sql` for every `*.sql` file of `dir`.
pub fn load_sql_dir(dir: &Path) -> Result<Vec<TransformSql>, TransformError> {
    let io = |source| TransformError::Io {
        path: dir.display().to_string(),
        source,
    };
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        if path.extension().and_then(|e| e.to_str()) != Some("sql") {
            continue;
        }
        let stream = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_string();
        let sql = std::fs::read_to_string(&path).map_err(|source| TransformError::Io {
            path: path.display().to_string(),
            source,
        })?;
        out.push(TransformSql {
            stream,
            origin: path.display().to_string(),
            sql,
        });
    }
    out.sort_by(|a, b| a.stream.cmp(&b.stream));
    Ok(out)
}

/// Runs the transform SQL of each stream on decoded batches. Cheap to share between tasks.
pub struct Transformer {
    config: SessionConfig,
    key: MaskKey,
    streams: HashMap<String, StreamTransform>,
}

struct StreamTransform {
    sql: TransformSql,
    expected: Arc<Schema>,
    /// The SQL planned for the last input schema seen (see [`plan`]).
    plan: Mutex<Option<Arc<plan::CachedPlan>>>,
}

impl Transformer {
    /// Builds a transformer for `schemas`, each of which must have its SQL in `sql`.
    pub fn new(
        schemas: &[StreamSchema],
        sql: Vec<TransformSql>,
        key: MaskKey,
    ) -> Result<Self, TransformError> {
        let mut by_stream: HashMap<String, TransformSql> =
            sql.into_iter().map(|s| (s.stream.clone(), s)).collect();
        let mut streams = HashMap::new();
        for schema in schemas {
            let sql = by_stream
                .remove(&schema.stream)
                .ok_or_else(|| TransformError::Missing(schema.stream.clone()))?;
            streams.insert(
                schema.stream.clone(),
                StreamTransform {
                    sql,
                    expected: schema.transformed_arrow_schema(),
                    plan: Mutex::new(None),
                },
            );
        }
        // One partition per batch: the pipeline runs batches in parallel, not operators.
        // A micro-batch is sorted as ONE run: a batch size above the pipeline's batch sizes keeps
        // DataFusion from splitting it into chunks, and the in-place threshold makes it
        // concatenate rather than sort chunks separately and merge them through the row format
        // (which doubled the cost of the `ORDER BY`).
        let mut config = SessionConfig::new()
            .with_target_partitions(1)
            .with_batch_size(256 * 1024);
        config.options_mut().execution.sort_in_place_threshold_bytes = 1 << 30;
        Ok(Transformer {
            config,
            key,
            streams,
        })
    }

    /// `decoded` with the column `arrived_at` (ms, UTC) appended: `arrivals[i]` for row `i`
    /// (`None`: NULL). The pipeline calls it with the records' arrival times; a batch without
    /// the column gets NULLs when it is transformed.
    pub fn with_arrivals(
        decoded: RecordBatch,
        arrivals: Vec<Option<i64>>,
    ) -> Result<RecordBatch, TransformError> {
        use arrow::array::TimestampMillisecondArray;
        use arrow::datatypes::Field;
        let column = TimestampMillisecondArray::from(arrivals).with_timezone("UTC");
        let mut fields: Vec<Arc<Field>> = decoded.schema().fields().iter().cloned().collect();
        fields.push(Arc::new(Field::new(
            ARRIVED_AT_COLUMN,
            column.data_type().clone(),
            true,
        )));
        let mut columns = decoded.columns().to_vec();
        columns.push(Arc::new(column));
        Ok(RecordBatch::try_new(
            Arc::new(Schema::new(fields)),
            columns,
        )?)
    }

    /// Keeps the first row of each `event_id` (in batch order); returns the batch unchanged when
    /// every id is distinct. A hash pass instead of a SQL window function, which costs a
    /// partition per id.
    pub fn dedup_first(batch: RecordBatch) -> Result<RecordBatch, TransformError> {
        let Some(ids) = batch
            .column_by_name("event_id")
            .and_then(|c| c.as_string_opt::<i32>())
        else {
            return Ok(batch);
        };
        let mut seen = id_set(ids.len());
        let keep: Vec<bool> = ids
            .iter()
            .map(|id| seen.insert(id_digest(id.unwrap_or_default())))
            .collect();
        if seen.len() == ids.len() {
            return Ok(batch);
        }
        Ok(filter_record_batch(&batch, &BooleanArray::from(keep))?)
    }

    /// Transforms one decoded batch of `stream`: dedup on `event_id`, then the SQL. The result
    /// has the stream's transformed schema and counts what each step dropped.
    pub async fn transform(
        &self,
        stream: &str,
        decoded: RecordBatch,
    ) -> Result<Transformed, TransformError> {
        let st = self
            .streams
            .get(stream)
            .ok_or_else(|| TransformError::Missing(stream.to_string()))?;
        let origin = &st.sql.origin;
        let sql_err = |e: datafusion::error::DataFusionError| TransformError::Sql {
            origin: origin.clone(),
            source: Box::new(e),
        };
        let input = decoded.num_rows() as u64;
        let decoded = if decoded.column_by_name(ARRIVED_AT_COLUMN).is_some() {
            decoded
        } else {
            Self::with_arrivals(decoded, vec![None; input as usize])?
        };
        let unique = Self::dedup_first(decoded)?;
        let duplicates = input - unique.num_rows() as u64;
        let sql_input = unique.num_rows() as u64;
        let plan = self.plan(st, unique.schema()).await.map_err(sql_err)?;
        let batches = plan
            .execute(unique, &self.config)
            .await
            .map_err(sql_err)?
            .into_iter()
            .map(|b| conform(b, &st.expected, origin))
            .collect::<Result<Vec<_>, _>>()?;
        let output: u64 = batches.iter().map(|b| b.num_rows() as u64).sum();
        if output > sql_input {
            return Err(TransformError::Grew {
                origin: origin.clone(),
                input: sql_input,
                output,
            });
        }
        Ok(Transformed {
            batches,
            duplicates,
            filtered: sql_input - output,
        })
    }

    /// The stream's SQL planned for `input`: the cached plan when the schema is the one it was
    /// planned for (every batch of a run), else a new one, which replaces it.
    async fn plan(
        &self,
        st: &StreamTransform,
        input: arrow::datatypes::SchemaRef,
    ) -> Result<Arc<plan::CachedPlan>, datafusion::error::DataFusionError> {
        let cached = st.plan.lock().ok().and_then(|p| p.clone());
        if let Some(p) = cached {
            if Arc::ptr_eq(&p.input_schema, &input) || p.input_schema == input {
                return Ok(p);
            }
        }
        let ctx = SessionContext::new_with_config(self.config.clone());
        functions::register(&ctx, &self.key);
        let p = Arc::new(plan::CachedPlan::new(ctx, &st.sql.sql, input).await?);
        if let Ok(mut slot) = st.plan.lock() {
            *slot = Some(p.clone());
        }
        Ok(p)
    }
}

/// Checks names and types of the SQL output against the expected schema, then relabels the batch
/// with the expected schema (nullability as declared by the stream schema).
fn conform(
    batch: RecordBatch,
    expected: &Arc<Schema>,
    origin: &str,
) -> Result<RecordBatch, TransformError> {
    let got = batch.schema();
    let shape = |message: String| TransformError::Shape {
        origin: origin.to_string(),
        message,
    };
    if got.fields().len() != expected.fields().len() {
        let names: Vec<&str> = got.fields().iter().map(|f| f.name().as_str()).collect();
        let missing: Vec<&str> = expected
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .filter(|n| !names.contains(n))
            .collect();
        let hint = if missing.is_empty() {
            String::new()
        } else {
            format!(
                " (missing: {}{})",
                missing.join(", "),
                if missing.contains(&ARRIVED_AT_COLUMN) {
                    "; `arrived_at` is in `input` since the lake gained it: select it after `extras`"
                } else {
                    ""
                }
            )
        };
        return Err(shape(format!(
            "expected {} columns, got {}: {}{hint}",
            expected.fields().len(),
            names.len(),
            names.join(", ")
        )));
    }
    for (g, e) in got.fields().iter().zip(expected.fields()) {
        if g.name() != e.name() || g.data_type() != e.data_type() {
            return Err(shape(format!(
                "expected column `{}` {:?}, got `{}` {:?}",
                e.name(),
                e.data_type(),
                g.name(),
                g.data_type()
            )));
        }
    }
    for (col, e) in batch.columns().iter().zip(expected.fields()) {
        if !e.is_nullable() && col.null_count() > 0 {
            return Err(shape(format!(
                "column `{}` is required but the query produced nulls",
                e.name()
            )));
        }
    }
    Ok(RecordBatch::try_new(
        expected.clone(),
        batch.columns().to_vec(),
    )?)
}

#[cfg(test)]
mod tests;
