//! One statement on Amazon Athena: start, poll, read every result page, or stop.

use crate::error::sdk_err;
use crate::results::{AthenaColumn, ResultBuilder};
use crate::{QueryError, QueryResult};
use etl_aws::athena::types::{QueryExecutionContext, QueryExecutionState, ResultConfiguration};
use etl_aws::athena::Client;
use etl_aws::backoff::Backoff;
use std::future::Future;
use std::time::{Duration, Instant};

/// Largest page `GetQueryResults` returns (its `MaxResults` limit).
pub const MAX_PAGE_ROWS: i32 = 1000;

/// Where and how queries run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AthenaSettings {
    /// The workgroup (`WorkGroup`).
    pub workgroup: String,
    /// The database of unqualified table names (`QueryExecutionContext.Database`).
    pub database: String,
    /// The data catalog (`QueryExecutionContext.Catalog`), `None` = Athena's default
    /// (`AwsDataCatalog`, i.e. Glue).
    pub catalog: Option<String>,
    /// `ResultConfiguration.OutputLocation`; `None` = the workgroup's.
    pub output_location: Option<String>,
    /// First wait between two `GetQueryExecution` calls.
    pub poll_initial: Duration,
    /// Longest wait between two `GetQueryExecution` calls.
    pub poll_max: Duration,
    /// Rows per `GetQueryResults` page (1..=[`MAX_PAGE_ROWS`]).
    pub page_rows: i32,
    /// Stop the query when it has not finished after this long; `None` = wait as long as it runs.
    pub timeout: Option<Duration>,
}

/// What Athena reported about a finished query.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecutionStats {
    /// The `QueryExecutionId`.
    pub execution_id: String,
    /// `Statistics.DataScannedInBytes` (what Athena bills).
    pub data_scanned_bytes: i64,
    /// `Statistics.EngineExecutionTimeInMillis`.
    pub engine_ms: i64,
    /// `Statistics.TotalExecutionTimeInMillis`.
    pub total_ms: i64,
    /// `Statistics.QueryQueueTimeInMillis`.
    pub queue_ms: i64,
    /// `GetQueryExecution` calls made while waiting.
    pub polls: u32,
    /// States seen while waiting, in order, without repeats (e.g. `QUEUED, RUNNING, SUCCEEDED`).
    pub states: Vec<String>,
    /// `GetQueryResults` pages read.
    pub pages: u32,
    /// `StatementType` (`DML`, `DDL`, `UTILITY`).
    pub statement_type: String,
}

impl std::fmt::Display for ExecutionStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Athena query {}: data scanned {} bytes ({:.2} MiB), engine time {} ms, total {} ms (queued {} ms)",
            self.execution_id,
            self.data_scanned_bytes,
            self.data_scanned_bytes as f64 / (1024.0 * 1024.0),
            self.engine_ms,
            self.total_ms,
            self.queue_ms
        )
    }
}

/// Runs statements on Athena with one client and one set of [`AthenaSettings`].
#[derive(Debug, Clone)]
pub struct AthenaEngine {
    client: Client,
    settings: AthenaSettings,
}

/// A fresh `ClientRequestToken`: 32 random hex characters (Athena wants 32 to 128). One per
/// statement run, so the SDK's retries of `StartQueryExecution` reuse it (no second query) and
/// a later run of the same text is a new query.
pub fn request_token() -> String {
    let bytes: [u8; 16] = rand::random();
    hex::encode(bytes)
}

impl AthenaEngine {
    /// An engine using `client` (from `etl_aws::AwsClients::athena`).
    pub fn new(client: Client, settings: AthenaSettings) -> Result<Self, QueryError> {
        if !(1..=MAX_PAGE_ROWS).contains(&settings.page_rows) {
            return Err(QueryError::Params(format!(
                "athena.page_rows {} is out of range: use 1 to {MAX_PAGE_ROWS}",
                settings.page_rows
            )));
        }
        Ok(AthenaEngine { client, settings })
    }

    /// The settings.
    pub fn settings(&self) -> &AthenaSettings {
        &self.settings
    }

    /// The client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Runs `sql` (with `?` placeholders bound to `parameters`, each a SQL literal) to the end
    /// and reads its whole result. When `cancel` resolves first, the query is stopped
    /// (`StopQueryExecution`) and [`QueryError::Cancelled`] returned.
    pub async fn run(
        &self,
        sql: &str,
        parameters: &[String],
        cancel: impl Future<Output = ()>,
    ) -> Result<QueryResult, QueryError> {
        let id = self.start(sql, parameters, &request_token()).await?;
        tracing::info!(execution_id = %id, "Athena query started");
        let mut stats = self.wait(&id, cancel).await?;
        let (schema, batches) = self.fetch(&id, &mut stats).await?;
        Ok(QueryResult {
            schema,
            batches,
            athena: Some(stats),
        })
    }

    /// `StartQueryExecution`; returns the `QueryExecutionId`.
    pub async fn start(
        &self,
        sql: &str,
        parameters: &[String],
        token: &str,
    ) -> Result<String, QueryError> {
        let s = &self.settings;
        let mut context = QueryExecutionContext::builder().database(&s.database);
        if let Some(catalog) = &s.catalog {
            context = context.catalog(catalog);
        }
        let mut request = self
            .client
            .start_query_execution()
            .query_string(sql)
            .client_request_token(token)
            .work_group(&s.workgroup)
            .query_execution_context(context.build());
        if let Some(location) = &s.output_location {
            request = request.result_configuration(
                ResultConfiguration::builder()
                    .output_location(location)
                    .build(),
            );
        }
        if !parameters.is_empty() {
            request = request.set_execution_parameters(Some(parameters.to_vec()));
        }
        let out = request
            .send()
            .await
            .map_err(|e| sdk_err("StartQueryExecution", &e))?;
        out.query_execution_id()
            .map(str::to_string)
            .ok_or_else(|| QueryError::Athena {
                operation: "StartQueryExecution",
                message: "the answer has no QueryExecutionId".into(),
            })
    }

    /// Polls `GetQueryExecution` until the query succeeded (its statistics) or failed, was
    /// cancelled, timed out or `cancel` resolved (then it is stopped first).
    pub async fn wait(
        &self,
        id: &str,
        cancel: impl Future<Output = ()>,
    ) -> Result<ExecutionStats, QueryError> {
        let mut backoff = Backoff::new(self.settings.poll_initial, self.settings.poll_max);
        let started = Instant::now();
        let mut stats = ExecutionStats {
            execution_id: id.to_string(),
            ..Default::default()
        };
        tokio::pin!(cancel);
        loop {
            let out = self
                .client
                .get_query_execution()
                .query_execution_id(id)
                .send()
                .await
                .map_err(|e| sdk_err("GetQueryExecution", &e))?;
            stats.polls += 1;
            let execution = out.query_execution();
            let status = execution.and_then(|e| e.status());
            let state = status
                .and_then(|s| s.state())
                .cloned()
                .unwrap_or(QueryExecutionState::Queued);
            if stats.states.last().map(String::as_str) != Some(state.as_str()) {
                tracing::debug!(
                    execution_id = id,
                    state = state.as_str(),
                    "Athena query state"
                );
                stats.states.push(state.as_str().to_string());
            }
            if let Some(s) = execution.and_then(|e| e.statistics()) {
                stats.data_scanned_bytes = s.data_scanned_in_bytes().unwrap_or_default();
                stats.engine_ms = s.engine_execution_time_in_millis().unwrap_or_default();
                stats.total_ms = s.total_execution_time_in_millis().unwrap_or_default();
                stats.queue_ms = s.query_queue_time_in_millis().unwrap_or_default();
            }
            if let Some(t) = execution.and_then(|e| e.statement_type()) {
                stats.statement_type = t.as_str().to_string();
            }
            let reason = || {
                let mut text = status
                    .and_then(|s| s.state_change_reason())
                    .unwrap_or("Athena gave no reason")
                    .to_string();
                if let Some(err) = status.and_then(|s| s.athena_error()) {
                    text.push_str(&format!(
                        " (error category {}, type {}{})",
                        err.error_category().unwrap_or_default(),
                        err.error_type().unwrap_or_default(),
                        if err.retryable() { ", retryable" } else { "" }
                    ));
                }
                text
            };
            match state {
                QueryExecutionState::Succeeded => return Ok(stats),
                QueryExecutionState::Failed => {
                    return Err(QueryError::Failed {
                        execution_id: id.to_string(),
                        reason: reason(),
                    })
                }
                QueryExecutionState::Cancelled => {
                    return Err(QueryError::Cancelled {
                        execution_id: id.to_string(),
                        reason: reason(),
                    })
                }
                _ => {}
            }
            if let Some(limit) = self.settings.timeout {
                if started.elapsed() >= limit {
                    self.stop(id).await?;
                    return Err(QueryError::TimedOut {
                        execution_id: id.to_string(),
                        seconds: limit.as_secs(),
                    });
                }
            }
            // Full jitter can draw ~0: wait at least a millisecond so a busy loop cannot form.
            let delay = backoff.next_delay().max(Duration::from_millis(1));
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = &mut cancel => {
                    tracing::warn!(execution_id = id, "stopping the Athena query (shutdown requested)");
                    self.stop(id).await?;
                    return Err(QueryError::Cancelled {
                        execution_id: id.to_string(),
                        reason: "stopped on request (Ctrl-C / SIGTERM); StopQueryExecution sent".into(),
                    });
                }
            }
        }
    }

    /// `StopQueryExecution`.
    pub async fn stop(&self, id: &str) -> Result<(), QueryError> {
        self.client
            .stop_query_execution()
            .query_execution_id(id)
            .send()
            .await
            .map_err(|e| sdk_err("StopQueryExecution", &e))?;
        Ok(())
    }

    /// Reads every `GetQueryResults` page of a succeeded query into typed columns.
    pub async fn fetch(
        &self,
        id: &str,
        stats: &mut ExecutionStats,
    ) -> Result<(arrow::datatypes::SchemaRef, Vec<arrow::array::RecordBatch>), QueryError> {
        let expect_header = stats.statement_type.is_empty() || stats.statement_type == "DML";
        let mut builder = ResultBuilder::new(id, expect_header);
        let mut token: Option<String> = None;
        loop {
            let out = self
                .client
                .get_query_results()
                .query_execution_id(id)
                .max_results(self.settings.page_rows)
                .set_next_token(token.take())
                .send()
                .await
                .map_err(|e| sdk_err("GetQueryResults", &e))?;
            stats.pages += 1;
            let set = out.result_set();
            let columns: Vec<AthenaColumn> = set
                .and_then(|s| s.result_set_metadata())
                .map(|m| m.column_info().iter().map(AthenaColumn::from).collect())
                .unwrap_or_default();
            let rows: Vec<Vec<Option<String>>> = set
                .map(|s| {
                    s.rows()
                        .iter()
                        .map(|r| {
                            r.data()
                                .iter()
                                .map(|d| d.var_char_value().map(str::to_string))
                                .collect()
                        })
                        .collect()
                })
                .unwrap_or_default();
            builder.add_page(columns, rows)?;
            match out.next_token() {
                Some(next) if !next.is_empty() => token = Some(next.to_string()),
                _ => break,
            }
        }
        tracing::debug!(
            execution_id = id,
            rows = builder.rows(),
            pages = stats.pages,
            "Athena results read"
        );
        builder.finish()
    }
}
