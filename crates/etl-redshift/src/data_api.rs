//! The Redshift Data API client: run statements and batches, poll `DescribeStatement` with
//! backoff until a terminal state, page through `GetStatementResult`.

use crate::error::{sql_excerpt, RedshiftError};
use arrow::array::{
    ArrayRef, BooleanBuilder, Float64Builder, Int64Builder, RecordBatch, StringBuilder,
};
use arrow::datatypes::{DataType, Field as ArrowField, Schema};
use etl_aws::redshiftdata::types::{Field, SqlParameter, StatusString};
use etl_aws::redshiftdata::Client;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Where the Data API runs statements and as whom.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataApiTarget {
    /// Provisioned cluster id (with `db_user` or `secret_arn`); exclusive with `workgroup_name`.
    #[serde(default)]
    pub cluster_identifier: Option<String>,
    /// Serverless workgroup name or ARN; exclusive with `cluster_identifier`.
    #[serde(default)]
    pub workgroup_name: Option<String>,
    /// Database user for temporary credentials (clusters only).
    #[serde(default)]
    pub db_user: Option<String>,
    /// Secrets Manager secret holding user name and password.
    #[serde(default)]
    pub secret_arn: Option<String>,
    /// Database to connect to.
    pub database: String,
}

impl DataApiTarget {
    /// Checks that exactly one of cluster / workgroup is set and that `db_user` goes with a
    /// cluster.
    pub fn validate(&self) -> Result<(), RedshiftError> {
        match (&self.cluster_identifier, &self.workgroup_name) {
            (Some(_), Some(_)) => Err(RedshiftError::Config(
                "set cluster_identifier or workgroup_name, not both".into(),
            )),
            (None, None) => Err(RedshiftError::Config(
                "set cluster_identifier (provisioned) or workgroup_name (serverless)".into(),
            )),
            (None, Some(_)) if self.db_user.is_some() => Err(RedshiftError::Config(
                "db_user works with cluster_identifier only; use secret_arn or IAM for a workgroup"
                    .into(),
            )),
            _ if self.database.is_empty() => Err(RedshiftError::Config("database is empty".into())),
            _ => Ok(()),
        }
    }
}

/// How long and how often to poll `DescribeStatement`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PollSettings {
    /// First wait, in milliseconds; doubles after each poll.
    pub initial_ms: u64,
    /// Longest wait between polls.
    pub max_ms: u64,
    /// Give up (and report a timeout) after this long.
    pub timeout_ms: u64,
}

impl Default for PollSettings {
    fn default() -> Self {
        PollSettings {
            initial_ms: 100,
            max_ms: 5_000,
            timeout_ms: 3_600_000,
        }
    }
}

/// A finished statement's rows: column names and Data API type names, then typed fields.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ResultSet {
    /// `(name, typeName)` per column.
    pub columns: Vec<(String, String)>,
    /// Rows of typed fields.
    pub rows: Vec<Vec<Field>>,
}

impl ResultSet {
    /// The text values of the first column (rows whose first field is not text are skipped).
    pub fn first_column_strings(&self) -> Vec<String> {
        self.rows
            .iter()
            .filter_map(|r| match r.first() {
                Some(Field::StringValue(s)) => Some(s.clone()),
                _ => None,
            })
            .collect()
    }

    /// Every row as text: strings as they are, numbers and booleans formatted, NULL as `None`.
    pub fn string_rows(&self) -> Vec<Vec<Option<String>>> {
        self.rows
            .iter()
            .map(|r| {
                r.iter()
                    .map(|f| match f {
                        Field::StringValue(s) => Some(s.clone()),
                        Field::LongValue(n) => Some(n.to_string()),
                        Field::DoubleValue(x) => Some(x.to_string()),
                        Field::BooleanValue(b) => Some(b.to_string()),
                        _ => None,
                    })
                    .collect()
            })
            .collect()
    }
}

/// A Data API client bound to one target.
#[derive(Debug, Clone)]
pub struct DataApi {
    client: Client,
    target: DataApiTarget,
    poll: PollSettings,
}

impl DataApi {
    /// Binds `client` to `target` (validated).
    pub fn new(
        client: Client,
        target: DataApiTarget,
        poll: PollSettings,
    ) -> Result<Self, RedshiftError> {
        target.validate()?;
        Ok(DataApi {
            client,
            target,
            poll,
        })
    }

    /// Runs one statement with `:name` parameters and waits for it; returns its id.
    pub async fn execute(
        &self,
        sql: &str,
        params: &[(&str, &str)],
    ) -> Result<String, RedshiftError> {
        let parameters = params
            .iter()
            .map(|(n, v)| SqlParameter::builder().name(*n).value(*v).build())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| RedshiftError::aws("ExecuteStatement (parameters)", &e))?;
        let t = &self.target;
        let out = self
            .client
            .execute_statement()
            .sql(sql)
            .database(&t.database)
            .set_cluster_identifier(t.cluster_identifier.clone())
            .set_workgroup_name(t.workgroup_name.clone())
            .set_db_user(t.db_user.clone())
            .set_secret_arn(t.secret_arn.clone())
            .set_parameters((!parameters.is_empty()).then_some(parameters))
            .send()
            .await
            .map_err(|e| RedshiftError::aws("ExecuteStatement", &e))?;
        let id = out.id().unwrap_or_default().to_string();
        self.wait(&id, sql).await?;
        Ok(id)
    }

    /// Runs `sqls` as one transaction (`BatchExecuteStatement`, at most 40) and waits for it;
    /// returns the ids of the sub-statements (`<id>:1`, `<id>:2`, …).
    pub async fn batch(&self, sqls: &[String]) -> Result<Vec<String>, RedshiftError> {
        if sqls.is_empty() || sqls.len() > 40 {
            return Err(RedshiftError::Config(format!(
                "a batch holds 1 to 40 statements, not {}",
                sqls.len()
            )));
        }
        let t = &self.target;
        let out = self
            .client
            .batch_execute_statement()
            .set_sqls(Some(sqls.to_vec()))
            .database(&t.database)
            .set_cluster_identifier(t.cluster_identifier.clone())
            .set_workgroup_name(t.workgroup_name.clone())
            .set_db_user(t.db_user.clone())
            .set_secret_arn(t.secret_arn.clone())
            .send()
            .await
            .map_err(|e| RedshiftError::aws("BatchExecuteStatement", &e))?;
        let id = out.id().unwrap_or_default().to_string();
        let summary = sqls.join("; ");
        let subs = self.wait(&id, &summary).await?;
        if subs.len() != sqls.len() {
            return Err(RedshiftError::Protocol {
                id,
                message: format!(
                    "{} sub-statements for {} statements",
                    subs.len(),
                    sqls.len()
                ),
            });
        }
        Ok(subs)
    }

    /// Polls `DescribeStatement` (backoff from `initial_ms` doubling to `max_ms`) until the
    /// statement is `FINISHED` (returns the sub-statement ids), `FAILED` or `ABORTED` (error
    /// with Redshift's message), or the timeout passes.
    pub async fn wait(&self, id: &str, sql: &str) -> Result<Vec<String>, RedshiftError> {
        let started = Instant::now();
        let mut delay = Duration::from_millis(self.poll.initial_ms.max(1));
        loop {
            let out = self
                .client
                .describe_statement()
                .id(id)
                .send()
                .await
                .map_err(|e| RedshiftError::aws("DescribeStatement", &e))?;
            let status = out.status().cloned();
            match status {
                Some(StatusString::Finished) => {
                    return Ok(out
                        .sub_statements()
                        .iter()
                        .map(|s| s.id().to_string())
                        .collect());
                }
                Some(s @ (StatusString::Failed | StatusString::Aborted)) => {
                    // The batch's error names the failing statement; fall back to a sub-statement's.
                    let message = out
                        .error()
                        .map(str::to_string)
                        .or_else(|| {
                            out.sub_statements()
                                .iter()
                                .find_map(|x| x.error().map(str::to_string))
                        })
                        .unwrap_or_else(|| "no error message".into());
                    return Err(RedshiftError::StatementFailed {
                        id: id.to_string(),
                        status: s.as_str().to_string(),
                        message,
                        sql: sql_excerpt(sql),
                    });
                }
                other => {
                    let waited = started.elapsed();
                    if waited >= Duration::from_millis(self.poll.timeout_ms) {
                        return Err(RedshiftError::Timeout {
                            id: id.to_string(),
                            status: other
                                .map_or_else(|| "unknown".into(), |s| s.as_str().to_string()),
                            waited_ms: waited.as_millis(),
                            sql: sql_excerpt(sql),
                        });
                    }
                    tracing::trace!(
                        id,
                        ?other,
                        delay_ms = delay.as_millis() as u64,
                        "statement not finished"
                    );
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_millis(self.poll.max_ms.max(1)));
                }
            }
        }
    }

    /// All rows of a finished statement (or sub-statement), following `NextToken`.
    pub async fn fetch(&self, id: &str) -> Result<ResultSet, RedshiftError> {
        let mut result = ResultSet::default();
        let mut token: Option<String> = None;
        loop {
            let out = self
                .client
                .get_statement_result()
                .id(id)
                .set_next_token(token.take())
                .send()
                .await
                .map_err(|e| RedshiftError::aws("GetStatementResult", &e))?;
            if result.columns.is_empty() {
                result.columns = out
                    .column_metadata()
                    .iter()
                    .map(|c| {
                        (
                            c.name().unwrap_or_default().to_string(),
                            c.type_name().unwrap_or_default().to_string(),
                        )
                    })
                    .collect();
            }
            result.rows.extend(out.records().iter().cloned());
            match out.next_token() {
                Some(next) if !next.is_empty() => token = Some(next.to_string()),
                _ => return Ok(result),
            }
        }
    }
}

/// Converts a [`ResultSet`] to one Arrow batch: integer types → Int64, float types → Float64,
/// booleans → Boolean, everything else (numeric, dates, timestamps, text) → Utf8 as Redshift
/// sends it.
pub fn to_record_batch(result: &ResultSet) -> Result<RecordBatch, RedshiftError> {
    let protocol = |message: String| RedshiftError::Protocol {
        id: "result".into(),
        message,
    };
    let mut fields = Vec::with_capacity(result.columns.len());
    let mut arrays: Vec<ArrayRef> = Vec::with_capacity(result.columns.len());
    for (i, (name, type_name)) in result.columns.iter().enumerate() {
        let cells = result.rows.iter().map(|row| row.get(i));
        let ty = match type_name.to_ascii_lowercase().as_str() {
            "int2" | "int4" | "int8" | "smallint" | "integer" | "bigint" => DataType::Int64,
            "float4" | "float8" | "real" | "float" | "double precision" => DataType::Float64,
            "bool" | "boolean" => DataType::Boolean,
            _ => DataType::Utf8,
        };
        let array: ArrayRef = match ty {
            DataType::Int64 => {
                let mut b = Int64Builder::new();
                for cell in cells {
                    match cell {
                        Some(Field::LongValue(v)) => b.append_value(*v),
                        Some(Field::StringValue(s)) => {
                            b.append_value(s.parse().map_err(|_| {
                                protocol(format!("{name}: `{s}` is not an integer"))
                            })?)
                        }
                        _ => b.append_null(),
                    }
                }
                Arc::new(b.finish())
            }
            DataType::Float64 => {
                let mut b = Float64Builder::new();
                for cell in cells {
                    match cell {
                        Some(Field::DoubleValue(v)) => b.append_value(*v),
                        Some(Field::LongValue(v)) => b.append_value(*v as f64),
                        _ => b.append_null(),
                    }
                }
                Arc::new(b.finish())
            }
            DataType::Boolean => {
                let mut b = BooleanBuilder::new();
                for cell in cells {
                    match cell {
                        Some(Field::BooleanValue(v)) => b.append_value(*v),
                        _ => b.append_null(),
                    }
                }
                Arc::new(b.finish())
            }
            _ => {
                let mut b = StringBuilder::new();
                for cell in cells {
                    match cell {
                        Some(Field::StringValue(s)) => b.append_value(s),
                        Some(Field::LongValue(v)) => b.append_value(v.to_string()),
                        Some(Field::DoubleValue(v)) => b.append_value(v.to_string()),
                        Some(Field::BooleanValue(v)) => b.append_value(v.to_string()),
                        _ => b.append_null(),
                    }
                }
                Arc::new(b.finish())
            }
        };
        fields.push(ArrowField::new(name, ty, true));
        arrays.push(array);
    }
    if fields.is_empty() {
        return Ok(RecordBatch::new_empty(Arc::new(Schema::empty())));
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).map_err(|e| protocol(e.to_string()))
}
