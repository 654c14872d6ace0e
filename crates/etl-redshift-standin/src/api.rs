//! The Data API operations and the in-memory statement store.

use crate::dialect::check_redshift_sql;
use crate::exec::{pg_error, run_statement, Outcome};
use crate::http::{error_body, Request, Response};
use crate::sql::bind_parameters;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};
use tokio_postgres::types::Type;
use tokio_postgres::{CancelToken, NoTls};

/// What the operations share.
pub(crate) struct State {
    pub pg_host: String,
    pub pg_port: u16,
    pub pg_user: String,
    pub s3: Option<etl_aws::s3::Client>,
    pub page_rows: usize,
    pub statements: Mutex<HashMap<String, Statement>>,
    pub counter: AtomicU64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    Submitted,
    Started,
    Finished,
    Failed,
    Aborted,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::Submitted => "SUBMITTED",
            Status::Started => "STARTED",
            Status::Finished => "FINISHED",
            Status::Failed => "FAILED",
            Status::Aborted => "ABORTED",
        }
    }

    fn running(self) -> bool {
        matches!(self, Status::Submitted | Status::Started)
    }
}

pub(crate) struct Sub {
    sql: String,
    status: Status,
    error: Option<String>,
    outcome: Option<Outcome>,
    created_at: f64,
    updated_at: f64,
    duration_ns: i64,
}

pub(crate) struct Statement {
    batch: bool,
    request: Value,
    status: Status,
    error: Option<String>,
    created_at: f64,
    updated_at: f64,
    duration_ns: i64,
    query_id: i64,
    subs: Vec<Sub>,
    cancel: Option<CancelToken>,
    cancel_requested: bool,
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| (d.as_millis() as f64) / 1000.0)
}

fn ok(body: Value) -> Response {
    Response {
        status: 200,
        body: body.to_string(),
    }
}

fn fail(code: &str, message: &str) -> Response {
    Response {
        status: 400,
        body: error_body(code, message),
    }
}

fn not_found(id: &str) -> Response {
    let body = json!({ "__type": "ResourceNotFoundException", "Message": format!("Query {id} does not exist"), "ResourceId": id });
    Response {
        status: 400,
        body: body.to_string(),
    }
}

/// Dispatches one request on its `X-Amz-Target`.
pub(crate) async fn handle(state: Arc<State>, request: Request) -> Response {
    let body: Value = match serde_json::from_slice(&request.body) {
        Ok(v) => v,
        Err(e) => {
            return fail(
                "ValidationException",
                &format!("request body is not JSON: {e}"),
            )
        }
    };
    let operation = request
        .target
        .strip_prefix("RedshiftData.")
        .unwrap_or(&request.target)
        .to_string();
    tracing::debug!(%operation, "Data API stand-in request");
    match operation.as_str() {
        "ExecuteStatement" => submit(&state, body, false),
        "BatchExecuteStatement" => submit(&state, body, true),
        "DescribeStatement" => describe(&state, &body),
        "GetStatementResult" => get_result(&state, &body),
        "CancelStatement" => cancel(&state, &body).await,
        other => fail(
            "ValidationException",
            &format!("the Redshift Data API stand-in does not implement {other}"),
        ),
    }
}

fn text(body: &Value, key: &str) -> Option<String> {
    body.get(key).and_then(Value::as_str).map(str::to_string)
}

fn submit(state: &Arc<State>, body: Value, batch: bool) -> Response {
    let has_cluster = text(&body, "ClusterIdentifier").is_some();
    let has_workgroup = text(&body, "WorkgroupName").is_some();
    if has_cluster == has_workgroup {
        return fail(
            "ValidationException",
            "Either ClusterIdentifier or WorkgroupName must be specified, not both",
        );
    }
    if text(&body, "SessionId").is_some() || body.get("SessionKeepAliveSeconds").is_some() {
        return fail(
            "ValidationException",
            "the Redshift Data API stand-in does not implement sessions",
        );
    }
    let Some(database) = text(&body, "Database") else {
        return fail("ValidationException", "Database must be specified");
    };
    let sqls: Vec<String> = if batch {
        match body.get("Sqls").and_then(Value::as_array) {
            Some(list) if (1..=40).contains(&list.len()) => list
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect(),
            _ => return fail("ValidationException", "Sqls must hold 1 to 40 statements"),
        }
    } else {
        match text(&body, "Sql") {
            Some(sql) => vec![sql],
            None => return fail("ValidationException", "Sql must be specified"),
        }
    };
    if batch && text(&body, "ExecutionMode").is_some_and(|m| m != "TRANSACTION") {
        return fail(
            "ValidationException",
            "the Redshift Data API stand-in runs batches in TRANSACTION mode only",
        );
    }
    let params: Vec<(String, String)> = body
        .get("Parameters")
        .and_then(Value::as_array)
        .map(|ps| {
            ps.iter()
                .filter_map(|p| Some((text(p, "name")?, text(p, "value")?)))
                .collect()
        })
        .unwrap_or_default();
    let n = state.counter.fetch_add(1, Ordering::Relaxed) + 1;
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let id = format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        nanos,
        n & 0xffff,
        (n >> 16) & 0xfff,
        std::process::id() & 0xfff,
        n
    );
    let created = now();
    let subs = sqls
        .iter()
        .map(|sql| Sub {
            sql: sql.clone(),
            status: Status::Submitted,
            error: None,
            outcome: None,
            created_at: created,
            updated_at: created,
            duration_ns: 0,
        })
        .collect();
    let statement = Statement {
        batch,
        request: body.clone(),
        status: Status::Submitted,
        error: None,
        created_at: created,
        updated_at: created,
        duration_ns: 0,
        query_id: i64::try_from(n).unwrap_or(0),
        subs,
        cancel: None,
        cancel_requested: false,
    };
    if let Ok(mut map) = state.statements.lock() {
        map.insert(id.clone(), statement);
    }
    tokio::spawn(run(Arc::clone(state), id.clone(), database, params));
    let mut out = json!({ "Id": id, "CreatedAt": created, "Database": body.get("Database") });
    for key in ["ClusterIdentifier", "WorkgroupName", "DbUser", "SecretArn"] {
        if let Some(v) = body.get(key) {
            out[key] = v.clone();
        }
    }
    ok(out)
}

fn update(state: &State, id: &str, f: impl FnOnce(&mut Statement)) {
    if let Ok(mut map) = state.statements.lock() {
        if let Some(s) = map.get_mut(id) {
            f(s);
            s.updated_at = now();
        }
    }
}

async fn run(state: Arc<State>, id: String, database: String, params: Vec<(String, String)>) {
    let started = Instant::now();
    let result = run_inner(&state, &id, &database, &params).await;
    let elapsed = i64::try_from(started.elapsed().as_nanos()).unwrap_or(i64::MAX);
    update(&state, &id, |s| {
        s.duration_ns = elapsed;
        s.cancel = None;
        match result {
            Ok(()) => s.status = Status::Finished,
            Err(message) => {
                s.status = if s.cancel_requested {
                    Status::Aborted
                } else {
                    Status::Failed
                };
                if s.cancel_requested {
                    for sub in s.subs.iter_mut().filter(|x| x.status.running()) {
                        sub.status = Status::Aborted;
                    }
                }
                s.error = Some(message);
            }
        }
    });
}

async fn run_inner(
    state: &State,
    id: &str,
    database: &str,
    params: &[(String, String)],
) -> Result<(), String> {
    let conn = format!(
        "host={} port={} user={} dbname={database}",
        state.pg_host, state.pg_port, state.pg_user
    );
    let (client, connection) = tokio_postgres::connect(&conn, NoTls)
        .await
        .map_err(|e| format!("FATAL: {}", pg_error(e)))?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!("stand-in postgres connection closed: {e}");
        }
    });
    let mut proceed = true;
    update(state, id, |s| {
        proceed = !s.cancel_requested;
        s.status = Status::Started;
        s.cancel = Some(client.cancel_token());
    });
    if !proceed {
        return Err("Query was cancelled".into());
    }
    let (batch, sqls) = match state.statements.lock() {
        Ok(map) => map
            .get(id)
            .map(|s| {
                (
                    s.batch,
                    s.subs.iter().map(|x| x.sql.clone()).collect::<Vec<_>>(),
                )
            })
            .unwrap_or_default(),
        Err(_) => return Err("ERROR: stand-in state poisoned".into()),
    };
    if batch {
        client.batch_execute("BEGIN").await.map_err(pg_error)?;
    }
    for (i, sql) in sqls.iter().enumerate() {
        let t0 = Instant::now();
        update(state, id, |s| s.subs[i].status = Status::Started);
        let checked = check_redshift_sql(sql).and_then(|()| bind_parameters(sql, params));
        let outcome = match checked {
            Ok(bound) => run_statement(&client, state.s3.as_ref(), &bound).await,
            Err(e) => Err(e),
        };
        let elapsed = i64::try_from(t0.elapsed().as_nanos()).unwrap_or(i64::MAX);
        match outcome {
            Ok(outcome) => update(state, id, |s| {
                let sub = &mut s.subs[i];
                sub.status = Status::Finished;
                sub.outcome = Some(outcome);
                sub.duration_ns = elapsed;
                sub.updated_at = now();
            }),
            Err(message) => {
                update(state, id, |s| {
                    let sub = &mut s.subs[i];
                    sub.status = Status::Failed;
                    sub.error = Some(message.clone());
                    sub.updated_at = now();
                    for later in s.subs.iter_mut().skip(i + 1) {
                        later.status = Status::Aborted;
                    }
                });
                if batch {
                    let _ = client.batch_execute("ROLLBACK").await;
                }
                return Err(message);
            }
        }
    }
    if batch {
        client.batch_execute("COMMIT").await.map_err(pg_error)?;
    }
    Ok(())
}

fn sub_json(id: &str, sub: &Sub, query_id: i64) -> Value {
    let (has_rows, rows) = match &sub.outcome {
        Some(o) => (o.columns.is_some(), o.row_count),
        None => (false, -1),
    };
    let mut v = json!({
        "Id": id,
        "Status": sub.status.as_str(),
        "QueryString": sub.sql,
        "HasResultSet": has_rows,
        "ResultRows": rows,
        "ResultSize": 0,
        "RedshiftQueryId": query_id,
        "CreatedAt": sub.created_at,
        "UpdatedAt": sub.updated_at,
        "Duration": sub.duration_ns,
    });
    if let Some(e) = &sub.error {
        v["Error"] = json!(e);
    }
    v
}

fn describe(state: &State, body: &Value) -> Response {
    let Some(id) = text(body, "Id") else {
        return fail("ValidationException", "Id must be specified");
    };
    let Ok(map) = state.statements.lock() else {
        return fail("InternalServerException", "state poisoned");
    };
    let Some(s) = map.get(&id) else {
        return not_found(&id);
    };
    let mut out = json!({
        "Id": id,
        "Status": s.status.as_str(),
        "CreatedAt": s.created_at,
        "UpdatedAt": s.updated_at,
        "Duration": s.duration_ns,
        "RedshiftQueryId": s.query_id,
        "RedshiftPid": 0,
    });
    for key in [
        "ClusterIdentifier",
        "WorkgroupName",
        "DbUser",
        "SecretArn",
        "Database",
    ] {
        if let Some(v) = s.request.get(key) {
            out[key] = v.clone();
        }
    }
    if let Some(e) = &s.error {
        out["Error"] = json!(e);
    }
    if s.batch {
        out["HasResultSet"] = json!(false);
        out["ResultRows"] = json!(-1);
        let subs: Vec<Value> = s
            .subs
            .iter()
            .enumerate()
            .map(|(i, sub)| sub_json(&format!("{id}:{}", i + 1), sub, s.query_id))
            .collect();
        out["SubStatements"] = Value::Array(subs);
    } else if let Some(sub) = s.subs.first() {
        let v = sub_json(&id, sub, s.query_id);
        for key in ["QueryString", "HasResultSet", "ResultRows", "ResultSize"] {
            out[key] = v[key].clone();
        }
        if let Some(p) = s.request.get("Parameters") {
            out["QueryParameters"] = p.clone();
        }
    }
    ok(out)
}

fn field(ty: &Type, value: &Option<String>) -> Value {
    let Some(v) = value else {
        return json!({ "isNull": true });
    };
    if [Type::INT2, Type::INT4, Type::INT8, Type::OID].contains(ty) {
        v.parse::<i64>().map_or_else(
            |_| json!({ "stringValue": v }),
            |n| json!({ "longValue": n }),
        )
    } else if [Type::FLOAT4, Type::FLOAT8].contains(ty) {
        v.parse::<f64>().map_or_else(
            |_| json!({ "stringValue": v }),
            |n| json!({ "doubleValue": n }),
        )
    } else if *ty == Type::BOOL {
        json!({ "booleanValue": v == "t" })
    } else {
        json!({ "stringValue": v })
    }
}

fn get_result(state: &State, body: &Value) -> Response {
    let Some(id) = text(body, "Id") else {
        return fail("ValidationException", "Id must be specified");
    };
    let (base, index) = match id.rsplit_once(':') {
        Some((b, n)) => match n.parse::<usize>() {
            Ok(n) if n >= 1 => (b.to_string(), Some(n - 1)),
            _ => return not_found(&id),
        },
        None => (id.clone(), None),
    };
    let Ok(map) = state.statements.lock() else {
        return fail("InternalServerException", "state poisoned");
    };
    let Some(s) = map.get(&base) else {
        return not_found(&id);
    };
    let sub = match (s.batch, index) {
        (true, Some(i)) => s.subs.get(i),
        (false, None) => s.subs.first(),
        (true, None) => {
            return fail(
                "ValidationException",
                "Query is a batch; use a sub-statement id (<id>:<n>)",
            )
        }
        (false, Some(_)) => return not_found(&id),
    };
    let Some(sub) = sub else {
        return not_found(&id);
    };
    if sub.status != Status::Finished {
        return fail(
            "ValidationException",
            &format!(
                "Query {id} is not finished (status {})",
                sub.status.as_str()
            ),
        );
    }
    let Some(Outcome {
        columns: Some(columns),
        rows,
        ..
    }) = &sub.outcome
    else {
        return fail(
            "ValidationException",
            &format!(
                "Query {id} does not have result. Please check query status with DescribeStatement"
            ),
        );
    };
    let offset: usize = text(body, "NextToken")
        .and_then(|t| t.strip_prefix("offset:").and_then(|n| n.parse().ok()))
        .unwrap_or(0);
    let end = (offset + state.page_rows.max(1)).min(rows.len());
    let records: Vec<Value> = rows
        .get(offset..end)
        .unwrap_or_default()
        .iter()
        .map(|row| {
            Value::Array(
                row.iter()
                    .zip(columns)
                    .map(|(v, c)| field(&c.ty, v))
                    .collect(),
            )
        })
        .collect();
    let metadata: Vec<Value> = columns
        .iter()
        .map(|c| {
            json!({ "name": c.name, "label": c.name, "typeName": c.ty.name(), "nullable": 1, "isSigned": true,
                    "isCaseSensitive": false, "isCurrency": false, "precision": 0, "scale": 0, "length": 0,
                    "schemaName": "", "tableName": "" })
        })
        .collect();
    let mut out =
        json!({ "Records": records, "ColumnMetadata": metadata, "TotalNumRows": rows.len() });
    if end < rows.len() {
        out["NextToken"] = json!(format!("offset:{end}"));
    }
    ok(out)
}

async fn cancel(state: &State, body: &Value) -> Response {
    let Some(id) = text(body, "Id") else {
        return fail("ValidationException", "Id must be specified");
    };
    let token = {
        let Ok(mut map) = state.statements.lock() else {
            return fail("InternalServerException", "state poisoned");
        };
        let Some(s) = map.get_mut(&id) else {
            return not_found(&id);
        };
        if !s.status.running() {
            return fail(
                "ValidationException",
                &format!(
                    "Could not cancel a query that is already in {} state with ID: {id}",
                    s.status.as_str()
                ),
            );
        }
        s.cancel_requested = true;
        s.cancel.clone()
    };
    if let Some(token) = token {
        if let Err(e) = token.cancel_query(NoTls).await {
            tracing::warn!("cancel of {id} failed: {e}");
        }
    }
    ok(json!({ "Status": true }))
}
