//! Redshift Data API stand-in for tests: an HTTP server on 127.0.0.1 that speaks the Data API's
//! AWS JSON 1.1 protocol and runs the SQL on PostgreSQL (the test bed's `postgres()`).
//!
//! **What it does.** `ExecuteStatement` (with `:name` `Parameters`), `BatchExecuteStatement`
//! (1–40 statements as one transaction: all rolled back if one fails), `DescribeStatement`
//! (statuses `SUBMITTED` → `STARTED` → `FINISHED` / `FAILED` / `ABORTED`, `Error` as
//! `ERROR: <message>`, `SubStatements` with ids `<id>:<n>`), `GetStatementResult` (typed fields:
//! integers as `longValue`, floats as `doubleValue`, booleans, everything else as
//! `stringValue`; `ColumnMetadata`; paging with `NextToken`, [`StandInConfig::page_rows`] rows
//! a page) and `CancelStatement`. Statements run asynchronously, each request on its own
//! PostgreSQL connection to the request's `Database` (so temporary tables live for one request,
//! as in the Data API without sessions).
//!
//! It adapts only what PostgreSQL lacks: it strips `DISTSTYLE`, `DISTKEY`, `SORTKEY`
//! (`COMPOUND`/`INTERLEAVED`, `AUTO`) and `ENCODE`, and it executes
//! `COPY t [(cols)] FROM 's3://…manifest' IAM_ROLE '…' FORMAT AS PARQUET MANIFEST` by reading
//! the manifest and the Parquet files from the S3 stand-in (moto) and inserting the rows **by
//! position** (column counts must match, `meta.content_length` must equal the object size).
//! Anything else PostgreSQL cannot run fails the statement with PostgreSQL's message.
//!
//! It also refuses what PostgreSQL runs but Redshift does not (`ON CONFLICT`, `FILTER (WHERE
//! …)`, `STRING_AGG`, backslashes in literals, MERGE forms Redshift lacks, …; the list is in
//! `dialect.rs`) with a Redshift-style `ERROR: syntax error at or near …`, so that every
//! statement the tests run stays Redshift SQL.
//!
//! **What it does not do.** No authentication (signatures are not checked; `DbUser` and
//! `SecretArn` are echoed, the connection user is [`StandInConfig::pg_user`]), no sessions
//! (`SessionId`, `SessionKeepAliveSeconds` are refused), no `AUTO_COMMIT` batches, no
//! `GetStatementResultV2`/CSV results, no `ListStatements`/`DescribeTable` and friends, no result
//! expiry. Test support only: never a dependency of product code.

mod api;
mod dialect;
mod exec;
mod http;
mod sql;

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// How the stand-in reaches PostgreSQL and S3.
#[derive(Debug, Clone)]
pub struct StandInConfig {
    /// PostgreSQL host (loopback).
    pub pg_host: String,
    /// PostgreSQL port.
    pub pg_port: u16,
    /// PostgreSQL user every statement runs as.
    pub pg_user: String,
    /// S3 client (pointed at moto) for `COPY`; without it a COPY fails.
    pub s3: Option<etl_aws::s3::Client>,
    /// Rows per `GetStatementResult` page.
    pub page_rows: usize,
}

impl StandInConfig {
    /// PostgreSQL on `127.0.0.1:<port>` as `postgres`, no S3, 1000 rows a page.
    pub fn new(pg_port: u16) -> Self {
        StandInConfig {
            pg_host: "127.0.0.1".into(),
            pg_port,
            pg_user: "postgres".into(),
            s3: None,
            page_rows: 1000,
        }
    }
}

/// Why the stand-in could not start.
#[derive(Debug, thiserror::Error)]
pub enum StandInError {
    /// Binding the loopback listener failed.
    #[error("Redshift Data API stand-in cannot listen on 127.0.0.1: {0}")]
    Bind(#[source] std::io::Error),
}

/// A running stand-in. It serves on the runtime that started it (start one per test) and
/// stops when dropped.
pub struct RedshiftDataStandIn {
    endpoint: String,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for RedshiftDataStandIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedshiftDataStandIn")
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

impl RedshiftDataStandIn {
    /// Binds `127.0.0.1:0` and serves in a task of the current runtime.
    pub async fn start(config: StandInConfig) -> Result<Self, StandInError> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(StandInError::Bind)?;
        let port = listener.local_addr().map_err(StandInError::Bind)?.port();
        let state = Arc::new(api::State {
            pg_host: config.pg_host,
            pg_port: config.pg_port,
            pg_user: config.pg_user,
            s3: config.s3,
            page_rows: config.page_rows,
            statements: Mutex::new(HashMap::new()),
            counter: AtomicU64::new(0),
        });
        let task = tokio::spawn(async move {
            loop {
                let stream = match listener.accept().await {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        tracing::warn!("stand-in accept failed: {e}");
                        continue;
                    }
                };
                let state = Arc::clone(&state);
                tokio::spawn(async move {
                    http::serve_connection(stream, move |request| {
                        api::handle(Arc::clone(&state), request)
                    })
                    .await;
                });
            }
        });
        let endpoint = format!("http://127.0.0.1:{port}");
        tracing::info!(%endpoint, "Redshift Data API stand-in ready");
        Ok(RedshiftDataStandIn { endpoint, task })
    }

    /// `http://127.0.0.1:<port>`: the endpoint override for the SDK client.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }
}

impl Drop for RedshiftDataStandIn {
    fn drop(&mut self) {
        self.task.abort();
    }
}
