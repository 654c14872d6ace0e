//! [`RedshiftDataWarehouse`]: the [`Warehouse`] seam over the Redshift Data API.

use crate::data_api::{to_record_batch, DataApi, DataApiTarget, PollSettings};
use crate::ddl::{
    create_failures_sql, create_ledger_sql, create_schema_sql, drop_view_sqls, failure_sqls,
    failures_query, view_sqls, SqlFlavor, TableDef, COLUMNS_QUERY, VARCHAR_WIDTHS_QUERY,
};
use crate::error::{to_warehouse, RedshiftError};
use crate::ident::{iam_role_arn, s3_url, Ident};
use crate::load::{ledger_count_sql, ledger_loaded_sql, load_sqls, LoadSpec, Manifest};
use arrow::array::RecordBatch;
use async_trait::async_trait;
use etl_aws::redshiftdata::types::Field;
use etl_aws::AwsClients;
use etl_schema::StreamSchema;
use etl_warehouse::{LoadFailure, LoadOutcome, LoadRequest, LoadTarget, ViewDef, Warehouse};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::RwLock;
use std::time::Duration;

/// Settings of the Redshift warehouse (the `warehouse.redshift` block of the configuration).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedshiftSettings {
    /// Cluster or workgroup, database and credentials.
    pub target: DataApiTarget,
    /// Schema of the lake tables, the ledger and the views.
    pub schema: String,
    /// IAM role Redshift assumes for `COPY` from S3.
    pub iam_role_arn: String,
    /// Where load manifests are written: `s3://bucket/prefix`.
    pub manifest_prefix: String,
    /// `DescribeStatement` polling.
    #[serde(default)]
    pub poll: PollSettings,
    /// Attempts per batch load when the load transaction fails (1 = no retry).
    #[serde(default = "default_load_attempts")]
    pub load_attempts: u32,
    /// First wait between load attempts, in milliseconds (doubles each time).
    #[serde(default = "default_retry_ms")]
    pub load_retry_initial_ms: u64,
}

fn default_load_attempts() -> u32 {
    5
}

fn default_retry_ms() -> u64 {
    2_000
}

/// The warehouse on Amazon Redshift through the Data API.
pub struct RedshiftDataWarehouse {
    api: DataApi,
    s3: etl_aws::s3::Client,
    settings: RedshiftSettings,
    schema: Ident,
    tables: RwLock<BTreeMap<String, TableDef>>,
}

impl std::fmt::Debug for RedshiftDataWarehouse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedshiftDataWarehouse")
            .field("schema", &self.schema.as_str())
            .finish_non_exhaustive()
    }
}

impl RedshiftDataWarehouse {
    /// Checks `settings` (identifiers, role ARN, manifest prefix, target) and binds the clients.
    /// The tables of `schemas` are known for loads before `migrate` runs.
    pub fn new(
        settings: RedshiftSettings,
        clients: &AwsClients,
        schemas: &[StreamSchema],
    ) -> Result<Self, RedshiftError> {
        Self::with_clients(settings, clients.redshift_data(), clients.s3(), schemas)
    }

    /// [`RedshiftDataWarehouse::new`] with the two clients given separately (the tests point
    /// them at two stand-ins).
    pub fn with_clients(
        settings: RedshiftSettings,
        redshift_data: etl_aws::redshiftdata::Client,
        s3: etl_aws::s3::Client,
        schemas: &[StreamSchema],
    ) -> Result<Self, RedshiftError> {
        let schema = Ident::new("schema", &settings.schema)?;
        iam_role_arn(&settings.iam_role_arn)?;
        s3_url(&format!(
            "{}/x",
            settings.manifest_prefix.trim_end_matches('/')
        ))?;
        let api = DataApi::new(redshift_data, settings.target.clone(), settings.poll)?;
        let warehouse = RedshiftDataWarehouse {
            api,
            s3,
            settings,
            schema,
            tables: RwLock::new(BTreeMap::new()),
        };
        warehouse.remember(schemas)?;
        Ok(warehouse)
    }

    /// The warehouse schema of the tables, the ledger and the views.
    pub fn schema(&self) -> &Ident {
        &self.schema
    }

    /// The Data API client (for callers that need plain statements).
    pub fn data_api(&self) -> &DataApi {
        &self.api
    }

    fn remember(&self, schemas: &[StreamSchema]) -> Result<Vec<TableDef>, RedshiftError> {
        let defs = schemas
            .iter()
            .map(TableDef::from_schema)
            .collect::<Result<Vec<_>, _>>()?;
        if let Ok(mut tables) = self.tables.write() {
            for def in &defs {
                tables.insert(def.name.as_str().to_string(), def.clone());
            }
        }
        Ok(defs)
    }

    fn table(&self, name: &str) -> Result<TableDef, RedshiftError> {
        let tables = self
            .tables
            .read()
            .map_err(|_| RedshiftError::Config("table registry poisoned".into()))?;
        tables
            .get(name)
            .cloned()
            .ok_or_else(|| RedshiftError::UnknownTable {
                table: name.to_string(),
                known: tables.keys().cloned().collect::<Vec<_>>().join(", "),
            })
    }

    /// Creates the schema, the ledger and every table (adding missing columns to existing
    /// ones), then recreates the views in one transaction.
    pub async fn migrate_tables(
        &self,
        schemas: &[StreamSchema],
        views: &[ViewDef],
    ) -> Result<(), RedshiftError> {
        let defs = self.remember(schemas)?;
        let mut sqls = vec![
            create_schema_sql(&self.schema),
            create_ledger_sql(&self.schema, SqlFlavor::Redshift),
            create_failures_sql(&self.schema, SqlFlavor::Redshift),
        ];
        sqls.extend(
            defs.iter()
                .map(|d| d.create_sql(&self.schema, SqlFlavor::Redshift)),
        );
        self.api.batch(&sqls).await?;
        let mut alters = Vec::new();
        let mut widenings = Vec::new();
        for def in &defs {
            alters.extend(self.add_column_sqls(def, true).await?);
            let id = self
                .api
                .execute(
                    VARCHAR_WIDTHS_QUERY,
                    &[
                        ("schema", self.schema.as_str()),
                        ("table", def.name.as_str()),
                    ],
                )
                .await?;
            let widths: Vec<(String, i64)> = self
                .api
                .fetch(&id)
                .await?
                .string_rows()
                .into_iter()
                .filter_map(|row| {
                    let mut cells = row.into_iter();
                    let name = cells.next()??;
                    let width = cells.next()??.parse().ok()?;
                    Some((name, width))
                })
                .collect();
            let widen = def.widen_sqls(&self.schema, &widths);
            if !widen.is_empty() {
                tracing::info!(
                    table = def.name.as_str(),
                    columns = widen.len(),
                    "widening VARCHAR columns to the schema's lengths"
                );
            }
            widenings.extend(widen);
        }
        if !widenings.is_empty() && !views.is_empty() {
            // The views read the columns; they are recreated below.
            self.api
                .batch(&drop_view_sqls(&self.schema, views)?)
                .await?;
        }
        // ALTER TABLE ADD COLUMN / ALTER COLUMN TYPE run one statement at a time (not in a
        // multi-statement block).
        for sql in alters.into_iter().chain(widenings) {
            self.api.execute(&sql, &[]).await?;
        }
        if !views.is_empty() {
            let sqls = view_sqls(&self.schema, views)?;
            for chunk in sqls.chunks(39) {
                // More than 38 views would split the swap in two transactions.
                let mut chunk = chunk.to_vec();
                if !chunk[0].starts_with("SET search_path") {
                    chunk.insert(0, sqls[0].clone());
                }
                self.api.batch(&chunk).await?;
            }
        }
        tracing::info!(
            schema = self.schema.as_str(),
            tables = defs.len(),
            views = views.len(),
            "warehouse migrated"
        );
        Ok(())
    }

    /// `ALTER TABLE … ADD COLUMN` for the columns of `def` the warehouse table lacks (none if
    /// the table does not exist). With `strict`, a column the table has and the schema does
    /// not is an error ([`RedshiftError::ColumnMismatch`]); without, it is left alone (a newer
    /// version added it).
    async fn add_column_sqls(
        &self,
        def: &TableDef,
        strict: bool,
    ) -> Result<Vec<String>, RedshiftError> {
        let id = self
            .api
            .execute(
                COLUMNS_QUERY,
                &[
                    ("schema", self.schema.as_str()),
                    ("table", def.name.as_str()),
                ],
            )
            .await?;
        let existing: Vec<String> = self.api.fetch(&id).await?.first_column_strings();
        if existing.is_empty() {
            return Ok(Vec::new());
        }
        let missing = if strict {
            def.missing_columns(&existing)?
        } else {
            def.columns
                .iter()
                .filter(|(n, _, _)| !existing.iter().any(|e| e == n.as_str()))
                .collect()
        };
        if !missing.is_empty() {
            tracing::info!(
                table = def.name.as_str(),
                added = missing.len(),
                "adding columns"
            );
        }
        Ok(def.add_column_sqls(&self.schema, &missing))
    }

    /// Adds the columns the current schemas of `tables` have and their warehouse tables lack
    /// (what `migrate` does first, without touching views): run by the loader before it loads,
    /// so a batch carrying a new column never waits for a separate migrate.
    pub async fn add_new_columns(&self, tables: &[String]) -> Result<(), RedshiftError> {
        for name in tables {
            let def = self.table(name)?;
            for sql in self.add_column_sqls(&def, false).await? {
                self.api.execute(&sql, &[]).await?;
            }
        }
        Ok(())
    }

    /// Whether the ledger has every batch of `request`.
    async fn all_loaded(&self, request: &LoadRequest) -> Result<bool, RedshiftError> {
        let batches = request.ledger_rows().len();
        let id = self
            .api
            .execute(&ledger_count_sql(&self.schema, request)?, &[])
            .await?;
        let result = self.api.fetch(&id).await?;
        let n = match result.rows.first().and_then(|r| r.first()) {
            Some(Field::LongValue(n)) => usize::try_from(*n).unwrap_or(0),
            Some(Field::StringValue(s)) => s.parse().unwrap_or(0),
            _ => 0,
        };
        Ok(n >= batches)
    }

    /// Loads one committed lake batch (or a group of them) exactly once (see the crate doc). Retries the whole
    /// transaction with backoff on failure; never skips: the last error is returned.
    pub async fn load_batch(&self, request: &LoadRequest) -> Result<LoadOutcome, RedshiftError> {
        let table = self.table(&request.table)?.for_request(request)?;
        if self.all_loaded(request).await? {
            tracing::info!(table = %request.table, batch = %request.batch_id, "batch already loaded; nothing to do");
            return Ok(LoadOutcome::AlreadyLoaded);
        }
        let manifest = Manifest::for_request(request)?;
        let safe_batch: String = request
            .batch_id
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "-_.=".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let manifest_url = format!(
            "{}/{}/{}.manifest",
            self.settings.manifest_prefix.trim_end_matches('/'),
            table.name.as_str(),
            safe_batch
        );
        let (bucket, key) = s3_url(&manifest_url)?;
        self.s3
            .put_object()
            .bucket(&bucket)
            .key(&key)
            .content_type("application/json")
            .body(manifest.to_json().into_bytes().into())
            .send()
            .await
            .map_err(|e| RedshiftError::aws("PutObject (load manifest)", &e))?;
        let loaded_at = chrono::Utc::now().format("%Y-%m-%d %H:%M:%S").to_string();
        let spec = LoadSpec {
            schema: &self.schema,
            request,
            manifest_url: &manifest_url,
            iam_role_arn: &self.settings.iam_role_arn,
            loaded_at: &loaded_at,
        };
        let sqls = load_sqls(&table, &spec)?;
        let attempts = self.settings.load_attempts.max(1);
        let mut delay = Duration::from_millis(self.settings.load_retry_initial_ms);
        let mut attempt = 1;
        loop {
            match self.api.batch(&sqls).await {
                Ok(_) => {
                    tracing::info!(table = %request.table, batch = %request.batch_id, files = manifest.entries.len(), "batch loaded");
                    return Ok(LoadOutcome::Loaded);
                }
                Err(e @ RedshiftError::StatementFailed { .. })
                    if attempt < attempts && e.kind() == etl_warehouse::FailureKind::Transient =>
                {
                    tracing::warn!(table = %request.table, batch = %request.batch_id, attempt, error = %e, "load failed; retrying");
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Runs one SQL statement with the warehouse schema first on the search path and returns
    /// its rows.
    pub async fn query_rows(&self, sql: &str) -> Result<RecordBatch, RedshiftError> {
        let sqls = vec![
            format!("SET search_path TO {}", self.schema),
            sql.to_string(),
        ];
        let ids = self.api.batch(&sqls).await?;
        let id = ids.last().cloned().unwrap_or_default();
        to_record_batch(&self.api.fetch(&id).await?)
    }
}

/// The longest failure message recorded (characters; the column holds 4096 bytes).
pub(crate) const MAX_FAILURE_CHARS: usize = 1000;

/// `message` cut to [`MAX_FAILURE_CHARS`] characters.
pub(crate) fn failure_message(message: &str) -> String {
    if message.chars().count() <= MAX_FAILURE_CHARS {
        message.to_string()
    } else {
        let cut: String = message.chars().take(MAX_FAILURE_CHARS - 1).collect();
        format!("{cut}…")
    }
}

/// Rows of the failures query as [`LoadFailure`]s.
pub(crate) fn failures_from_rows(rows: Vec<Vec<Option<String>>>) -> Vec<LoadFailure> {
    rows.into_iter()
        .filter_map(|row| {
            let mut cells = row.into_iter();
            Some(LoadFailure {
                table: cells.next()??,
                batch_id: cells.next()??,
                message: cells.next()??,
                failed_at: cells.next()?.unwrap_or_default(),
            })
        })
        .collect()
}

impl RedshiftDataWarehouse {
    /// The batch ids of `table` in the load ledger.
    pub async fn ledger_batches(
        &self,
        table: &str,
    ) -> Result<std::collections::BTreeSet<String>, RedshiftError> {
        let id = self
            .api
            .execute(&ledger_loaded_sql(&self.schema), &[("table", table)])
            .await?;
        Ok(self
            .api
            .fetch(&id)
            .await?
            .first_column_strings()
            .into_iter()
            .collect())
    }

    /// Records or clears the failure of `table` (see [`LoadTarget::record_failure`]).
    pub async fn set_failure(
        &self,
        table: &str,
        failure: Option<&LoadFailure>,
    ) -> Result<(), RedshiftError> {
        let (delete, insert) = failure_sqls(&self.schema);
        self.api.execute(&delete, &[("table", table)]).await?;
        if let Some(f) = failure {
            let message = failure_message(&f.message);
            self.api
                .execute(
                    &insert,
                    &[
                        ("table", table),
                        ("batch_id", f.batch_id.as_str()),
                        ("message", message.as_str()),
                        ("failed_at", f.failed_at.as_str()),
                    ],
                )
                .await?;
        }
        Ok(())
    }

    /// The recorded load failures.
    pub async fn recorded_failures(&self) -> Result<Vec<LoadFailure>, RedshiftError> {
        let id = self.api.execute(&failures_query(&self.schema), &[]).await?;
        Ok(failures_from_rows(self.api.fetch(&id).await?.string_rows()))
    }
}

#[async_trait]
impl LoadTarget for RedshiftDataWarehouse {
    async fn loaded_batches(
        &self,
        table: &str,
    ) -> etl_warehouse::Result<std::collections::BTreeSet<String>> {
        self.ledger_batches(table)
            .await
            .map_err(|e| to_warehouse(&format!("reading the load ledger of {table}"), e))
    }

    async fn load_batch(&self, request: &LoadRequest) -> etl_warehouse::Result<LoadOutcome> {
        RedshiftDataWarehouse::load_batch(self, request)
            .await
            .map_err(|e| {
                to_warehouse(
                    &format!("loading batch {} of {}", request.batch_id, request.table),
                    e,
                )
            })
    }

    async fn record_failure(
        &self,
        table: &str,
        failure: Option<&LoadFailure>,
    ) -> etl_warehouse::Result<()> {
        self.set_failure(table, failure)
            .await
            .map_err(|e| to_warehouse(&format!("recording the load failure of {table}"), e))
    }

    async fn failures(&self) -> etl_warehouse::Result<Vec<LoadFailure>> {
        self.recorded_failures()
            .await
            .map_err(|e| to_warehouse("reading the load failures", e))
    }

    async fn prepare(&self, tables: &[String]) -> etl_warehouse::Result<()> {
        self.add_new_columns(tables)
            .await
            .map_err(|e| to_warehouse("adding the schemas' new columns", e))
    }
}

#[async_trait]
impl Warehouse for RedshiftDataWarehouse {
    async fn migrate(
        &self,
        schemas: &[StreamSchema],
        views: &[ViewDef],
    ) -> etl_warehouse::Result<()> {
        self.migrate_tables(schemas, views)
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
