//! [`PgWireWarehouse`]: the same warehouse seam over the PostgreSQL wire protocol
//! (tokio-postgres, no TLS), for PostgreSQL. Not a way to reach Redshift: Redshift refuses
//! `COPY ... FROM STDIN`, which the load uses.
//!
//! Migrate and views use the same DDL as [`crate::RedshiftDataWarehouse`] in the
//! [`SqlFlavor::Postgres`] flavour; the ledger is the same table. A load is **one transaction**
//! on one connection: ledger check, temporary staging table in Parquet order, the batch's
//! Parquet files (read from the lake) streamed in with `COPY ... FROM STDIN`, then the same
//! dedup, `MERGE` on `event_id`, conditional ledger insert and drops as the Data API load.
//! `COPY ... FROM STDIN` maps the file's columns **by name** (a column a file lacks is NULL).
//!
//! Query results come back as text columns (`Utf8`), as the simple-query protocol sends them.

use crate::ddl::{
    create_failures_sql, create_ledger_sql, create_schema_sql, failures_query, view_sqls,
    SqlFlavor, TableDef, FAILURES_TABLE, LEDGER_TABLE,
};
use crate::error::{to_warehouse, RedshiftError};
use crate::ident::Ident;
use crate::load::{load_sqls, staging_name, LoadSpec};
use crate::warehouse::{failure_message, failures_from_rows};
use arrow::array::{ArrayRef, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use async_trait::async_trait;
use etl_lake::Lake;
use etl_schema::StreamSchema;
use etl_warehouse::{LoadFailure, LoadOutcome, LoadRequest, LoadTarget, ViewDef, Warehouse};
use futures::SinkExt;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::Mutex;
use tokio_postgres::{Client, NoTls, SimpleQueryMessage};

/// The warehouse over a PostgreSQL-wire connection.
pub struct PgWireWarehouse {
    client: Mutex<Client>,
    schema: Ident,
    tables: HashMap<String, TableDef>,
    lake: Lake,
    lake_url: String,
}

impl std::fmt::Debug for PgWireWarehouse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgWireWarehouse")
            .field("schema", &self.schema.as_str())
            .field("lake_url", &self.lake_url)
            .finish_non_exhaustive()
    }
}

fn pg_error(sql: &str, err: &tokio_postgres::Error) -> RedshiftError {
    let message = err
        .as_db_error()
        .map(|d| d.message().to_string())
        .unwrap_or_else(|| err.to_string());
    RedshiftError::StatementFailed {
        id: "pgwire".into(),
        status: "FAILED".into(),
        message,
        sql: crate::error::sql_excerpt(sql),
    }
}

/// Text-format `COPY` field: `\N` for NULL, backslash, tab, newline and CR escaped.
fn copy_field(out: &mut String, value: Option<&str>) {
    let Some(value) = value else {
        out.push_str("\\N");
        return;
    };
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
}

impl PgWireWarehouse {
    /// Connects with `connection` (`host=… port=… user=… dbname=…`); the connection task runs
    /// on the current runtime. Tables of `schemas` live in `schema`; load files are read from
    /// `lake`, whose root is `lake_url` (load file URIs start with it).
    pub async fn connect(
        connection: &str,
        schema: &str,
        schemas: &[StreamSchema],
        lake: Lake,
        lake_url: &str,
    ) -> Result<Self, RedshiftError> {
        let schema = Ident::new("schema", schema)?;
        let mut tables = HashMap::new();
        for s in schemas {
            tables.insert(s.stream.clone(), TableDef::from_schema(s)?);
        }
        let (client, conn) = tokio_postgres::connect(connection, NoTls)
            .await
            .map_err(|e| pg_error("connect", &e))?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::warn!(error = %e, "PostgreSQL connection ended");
            }
        });
        Ok(PgWireWarehouse {
            client: Mutex::new(client),
            schema,
            tables,
            lake,
            lake_url: lake_url.trim_end_matches('/').to_string(),
        })
    }

    fn table(&self, name: &str) -> Result<&TableDef, RedshiftError> {
        self.tables.get(name).ok_or_else(|| {
            let mut known: Vec<&str> = self.tables.keys().map(String::as_str).collect();
            known.sort_unstable();
            RedshiftError::UnknownTable {
                table: name.to_string(),
                known: known.join(", "),
            }
        })
    }

    /// Runs `sqls` as one transaction.
    async fn transaction(&self, sqls: &[String]) -> Result<(), RedshiftError> {
        let mut client = self.client.lock().await;
        let tx = client
            .transaction()
            .await
            .map_err(|e| pg_error("BEGIN", &e))?;
        for sql in sqls {
            tx.batch_execute(sql).await.map_err(|e| pg_error(sql, &e))?;
        }
        tx.commit().await.map_err(|e| pg_error("COMMIT", &e))
    }

    /// Creates the schema, the ledger and the tables (adding missing columns), then recreates
    /// `views` in one transaction.
    pub async fn migrate_tables(&self, views: &[ViewDef]) -> Result<(), RedshiftError> {
        let mut defs: Vec<&TableDef> = self.tables.values().collect();
        defs.sort_by(|a, b| a.name.as_str().cmp(b.name.as_str()));
        let mut sqls = vec![
            create_schema_sql(&self.schema),
            create_ledger_sql(&self.schema, SqlFlavor::Postgres),
            create_failures_sql(&self.schema, SqlFlavor::Postgres),
        ];
        sqls.extend(
            defs.iter()
                .map(|d| d.create_sql(&self.schema, SqlFlavor::Postgres)),
        );
        self.transaction(&sqls).await?;
        let mut alters = Vec::new();
        {
            let client = self.client.lock().await;
            let sql = "SELECT column_name::text FROM information_schema.columns \
                       WHERE table_schema = $1 AND table_name = $2 ORDER BY ordinal_position";
            for def in &defs {
                let rows = client
                    .query(sql, &[&self.schema.as_str(), &def.name.as_str()])
                    .await
                    .map_err(|e| pg_error(sql, &e))?;
                let existing: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
                let missing = def.missing_columns(&existing)?;
                alters.extend(def.add_column_sqls(&self.schema, &missing));
            }
        }
        if !alters.is_empty() {
            self.transaction(&alters).await?;
        }
        if !views.is_empty() {
            let mut sqls = view_sqls(&self.schema, views)?;
            // Only for this transaction: later statements on the connection are unaffected.
            if let Some(first) = sqls.first_mut() {
                *first = first.replacen("SET search_path", "SET LOCAL search_path", 1);
            }
            self.transaction(&sqls).await?;
        }
        tracing::info!(
            schema = self.schema.as_str(),
            tables = defs.len(),
            views = views.len(),
            "warehouse migrated (pgwire)"
        );
        Ok(())
    }

    /// The rows of `table` in `request`'s files as `COPY` text, in `table`'s column order.
    async fn copy_text(
        &self,
        table: &TableDef,
        request: &LoadRequest,
    ) -> Result<String, RedshiftError> {
        let mut out = String::new();
        let names = table.column_names();
        for file in &request.files {
            let path = file
                .uri
                .strip_prefix(&self.lake_url)
                .and_then(|p| p.strip_prefix('/'))
                .ok_or_else(|| {
                    RedshiftError::Config(format!(
                        "load file {} is not under the lake {}",
                        file.uri, self.lake_url
                    ))
                })?;
            let bytes = self
                .lake
                .get(path)
                .await
                .map_err(|e| RedshiftError::Lake(e.to_string()))?
                .ok_or_else(|| RedshiftError::Lake(format!("{} is missing", file.uri)))?;
            let reader =
                parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes)
                    .and_then(|b| b.build())
                    .map_err(|e| RedshiftError::Lake(format!("{}: {e}", file.uri)))?;
            for batch in reader {
                let batch = batch.map_err(|e| RedshiftError::Lake(format!("{}: {e}", file.uri)))?;
                let options = FormatOptions::default();
                let formatters = names
                    .iter()
                    .map(|n| {
                        batch
                            .column_by_name(n)
                            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options).map(|f| (c, f)))
                            .transpose()
                    })
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| RedshiftError::Lake(format!("{}: {e}", file.uri)))?;
                for row in 0..batch.num_rows() {
                    for (i, column) in formatters.iter().enumerate() {
                        if i > 0 {
                            out.push('\t');
                        }
                        match column {
                            Some((array, f)) if array.is_valid(row) => {
                                copy_field(&mut out, Some(&f.value(row).to_string()))
                            }
                            _ => copy_field(&mut out, None),
                        }
                    }
                    out.push('\n');
                }
            }
        }
        Ok(out)
    }

    /// Loads one committed lake batch exactly once, as one transaction.
    pub async fn load_batch(&self, request: &LoadRequest) -> Result<LoadOutcome, RedshiftError> {
        let table = &self.table(&request.table)?.for_request(request)?;
        let ledger = format!("{}.\"{LEDGER_TABLE}\"", self.schema);
        let check = format!(
            "SELECT COUNT(*) FROM {ledger} WHERE \"table_name\" = $1 AND \"batch_id\" = ANY($2)"
        );
        let batch_ids: Vec<String> = request
            .ledger_rows()
            .into_iter()
            .map(|b| b.batch_id)
            .collect();
        let loaded_at = chrono::Utc::now().format("%Y-%m-%d %H:%M:%S").to_string();
        // The Data API statement list with its S3 COPY replaced by COPY FROM STDIN.
        let spec = LoadSpec {
            schema: &self.schema,
            request,
            manifest_url: "s3://pgwire-unused/manifest",
            iam_role_arn: "arn:aws:iam::000000000000:role/pgwire-unused",
            loaded_at: &loaded_at,
        };
        let mut sqls = load_sqls(table, &spec)?;
        if sqls.len() < 2 || !sqls[1].starts_with("COPY ") {
            return Err(RedshiftError::Config(
                "unexpected load statement list".into(),
            ));
        }
        sqls.remove(1);
        let staging = staging_name(table, &request.batch_id, "")?;
        let copy = format!(
            "COPY {staging} ({}) FROM STDIN",
            table
                .columns
                .iter()
                .map(|(n, _, _)| n.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
        let text = self.copy_text(table, request).await?;

        let mut client = self.client.lock().await;
        let tx = client
            .transaction()
            .await
            .map_err(|e| pg_error("BEGIN", &e))?;
        let seen: i64 = tx
            .query_one(&check, &[&request.table, &batch_ids])
            .await
            .map_err(|e| pg_error(&check, &e))?
            .try_get(0)
            .map_err(|e| pg_error(&check, &e))?;
        if usize::try_from(seen).unwrap_or(0) >= batch_ids.len() {
            return Ok(LoadOutcome::AlreadyLoaded);
        }
        tx.batch_execute(&sqls[0])
            .await
            .map_err(|e| pg_error(&sqls[0], &e))?;
        let sink = tx.copy_in(&copy).await.map_err(|e| pg_error(&copy, &e))?;
        futures::pin_mut!(sink);
        sink.send(bytes::Bytes::from(text))
            .await
            .map_err(|e| pg_error(&copy, &e))?;
        sink.finish().await.map_err(|e| pg_error(&copy, &e))?;
        for sql in &sqls[1..] {
            tx.batch_execute(sql).await.map_err(|e| pg_error(sql, &e))?;
        }
        tx.commit().await.map_err(|e| pg_error("COMMIT", &e))?;
        tracing::info!(table = %request.table, batch = %request.batch_id, "batch loaded (pgwire)");
        Ok(LoadOutcome::Loaded)
    }

    /// Runs `sql` with the warehouse schema on the search path; every column as text.
    pub async fn query_rows(&self, sql: &str) -> Result<RecordBatch, RedshiftError> {
        let mut client = self.client.lock().await;
        let tx = client
            .transaction()
            .await
            .map_err(|e| pg_error("BEGIN", &e))?;
        let path = format!("SET LOCAL search_path TO {}", self.schema);
        tx.batch_execute(&path)
            .await
            .map_err(|e| pg_error(&path, &e))?;
        let messages = tx.simple_query(sql).await.map_err(|e| pg_error(sql, &e))?;
        tx.commit().await.map_err(|e| pg_error("COMMIT", &e))?;
        let mut names: Vec<String> = Vec::new();
        let mut columns: Vec<Vec<Option<String>>> = Vec::new();
        for message in &messages {
            match message {
                SimpleQueryMessage::RowDescription(desc) => {
                    names = desc.iter().map(|c| c.name().to_string()).collect();
                    columns = vec![Vec::new(); names.len()];
                }
                SimpleQueryMessage::Row(row) => {
                    for (i, column) in columns.iter_mut().enumerate() {
                        column.push(row.get(i).map(str::to_string));
                    }
                }
                _ => {}
            }
        }
        let schema = Schema::new(
            names
                .iter()
                .map(|n| Field::new(n, DataType::Utf8, true))
                .collect::<Vec<_>>(),
        );
        let arrays: Vec<ArrayRef> = columns
            .into_iter()
            .map(|c| Arc::new(StringArray::from(c)) as ArrayRef)
            .collect();
        RecordBatch::try_new(Arc::new(schema), arrays).map_err(|e| RedshiftError::Protocol {
            id: "pgwire".into(),
            message: e.to_string(),
        })
    }
}

#[async_trait]
impl Warehouse for PgWireWarehouse {
    /// `schemas` must be the ones given to [`PgWireWarehouse::connect`] (loads know only those).
    async fn migrate(
        &self,
        schemas: &[StreamSchema],
        views: &[ViewDef],
    ) -> etl_warehouse::Result<()> {
        if let Some(unknown) = schemas
            .iter()
            .find(|s| !self.tables.contains_key(&s.stream))
        {
            return Err(to_warehouse(
                "migrate",
                RedshiftError::Config(format!(
                    "schema {} was not given when connecting",
                    unknown.stream
                )),
            ));
        }
        self.migrate_tables(views)
            .await
            .map_err(|e| to_warehouse("migrate", e))
    }

    async fn load(&self, request: &LoadRequest) -> etl_warehouse::Result<()> {
        self.load_batch(request)
            .await
            .map(|_| ())
            .map_err(|e| to_warehouse(&format!("load {}", request.batch_id), e))
    }

    async fn query(&self, sql: &str) -> etl_warehouse::Result<Vec<RecordBatch>> {
        self.query_rows(sql)
            .await
            .map(|b| vec![b])
            .map_err(|e| to_warehouse(sql, e))
    }
}

#[async_trait]
impl LoadTarget for PgWireWarehouse {
    async fn loaded_batches(
        &self,
        table: &str,
    ) -> etl_warehouse::Result<std::collections::BTreeSet<String>> {
        let sql = format!(
            "SELECT \"batch_id\" FROM {}.\"{LEDGER_TABLE}\" WHERE \"table_name\" = $1",
            self.schema
        );
        let client = self.client.lock().await;
        let rows = client
            .query(&sql, &[&table])
            .await
            .map_err(|e| to_warehouse("reading the load ledger", pg_error(&sql, &e)))?;
        Ok(rows.iter().map(|r| r.get::<_, String>(0)).collect())
    }

    async fn load_batch(&self, request: &LoadRequest) -> etl_warehouse::Result<LoadOutcome> {
        PgWireWarehouse::load_batch(self, request)
            .await
            .map_err(|e| to_warehouse(&format!("loading batch {}", request.batch_id), e))
    }

    async fn record_failure(
        &self,
        table: &str,
        failure: Option<&LoadFailure>,
    ) -> etl_warehouse::Result<()> {
        let target = format!("{}.\"{FAILURES_TABLE}\"", self.schema);
        let delete = format!("DELETE FROM {target} WHERE \"table_name\" = $1");
        let insert = format!(
            "INSERT INTO {target} (\"table_name\", \"batch_id\", \"message\", \"failed_at\") \
             VALUES ($1, $2, $3, CAST($4 AS TEXT)::timestamp)"
        );
        let err = |sql: &str, e: &tokio_postgres::Error| {
            to_warehouse("recording a load failure", pg_error(sql, e))
        };
        let mut client = self.client.lock().await;
        let tx = client.transaction().await.map_err(|e| err("BEGIN", &e))?;
        tx.execute(&delete, &[&table])
            .await
            .map_err(|e| err(&delete, &e))?;
        if let Some(f) = failure {
            let message = failure_message(&f.message);
            tx.execute(&insert, &[&table, &f.batch_id, &message, &f.failed_at])
                .await
                .map_err(|e| err(&insert, &e))?;
        }
        tx.commit().await.map_err(|e| err("COMMIT", &e))
    }

    async fn failures(&self) -> etl_warehouse::Result<Vec<LoadFailure>> {
        let sql = failures_query(&self.schema);
        let client = self.client.lock().await;
        let messages = client
            .simple_query(&sql)
            .await
            .map_err(|e| to_warehouse("reading the load failures", pg_error(&sql, &e)))?;
        let rows = messages
            .iter()
            .filter_map(|m| match m {
                SimpleQueryMessage::Row(row) => Some(
                    (0..row.len())
                        .map(|i| row.get(i).map(str::to_string))
                        .collect(),
                ),
                _ => None,
            })
            .collect();
        Ok(failures_from_rows(rows))
    }
}

#[cfg(test)]
mod tests {
    use super::copy_field;

    #[test]
    fn copy_fields_are_escaped() {
        let mut out = String::new();
        copy_field(&mut out, Some("a\tb\\c\nd\re"));
        out.push('|');
        copy_field(&mut out, None);
        assert_eq!(out, "a\\tb\\\\c\\nd\\re|\\N");
    }
}
