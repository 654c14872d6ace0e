//! [`GlueCatalog`]: the lake's [`Catalog`] in the Glue Data Catalog.

use crate::table::{partition_input, table_input, Projection, SCHEMA_PARAMETER};
use async_trait::async_trait;
use etl_aws::describe_error;
use etl_aws::glue::types::{DatabaseInput, Table};
use etl_aws::glue::Client;
use etl_lake::catalog::{Catalog, CatalogError, TableChange};
use etl_lake::PartitionValues;
use etl_schema::evolution::check_evolution;
use etl_schema::StreamSchema;
use std::collections::HashSet;
use tokio::sync::{Mutex, OnceCell};

mod locations;

/// Most partitions one `BatchCreatePartition` call accepts.
pub const MAX_PARTITIONS_PER_CALL: usize = 100;

/// Error code Glue reports, per partition, for a partition that is already registered.
const ALREADY_EXISTS: &str = "AlreadyExistsException";

fn backend(what: String, err: &(dyn std::error::Error + 'static)) -> CatalogError {
    CatalogError::Backend(format!("{what}: {}", describe_error(err)))
}

/// Tables and partitions of an S3 lake in one Glue database.
///
/// - [`Catalog::sync_table`] creates the database if missing, then creates the stream's table
///   (see [`crate::table::table_input`]) or, when the schema grew, updates it; the schema the
///   table was last synced from is kept in the table parameter `etl.schema`, and the new schema
///   must be an additive evolution of it ([`check_evolution`]) or nothing is changed.
/// - [`Catalog::add_partitions`] registers partitions with `BatchCreatePartition`, at most 100
///   per call, each with the table's full storage descriptor and its own location; a partition
///   that already exists counts as registered. Partitions this instance registered are
///   remembered, so a steady stream of batches into the same hour costs no Glue call.
///
/// Retries are the AWS SDK's (see `etl-aws`); nothing here loops.
#[derive(Debug)]
pub struct GlueCatalog {
    client: Client,
    database: String,
    lake_location: String,
    projection: Option<Projection>,
    database_ready: OnceCell<()>,
    registered: Mutex<HashSet<(String, PartitionValues)>>,
}

impl GlueCatalog {
    /// The catalog of the lake at `lake_location` (`s3://bucket/prefix`) in Glue database
    /// `database`, through `client` (built by `etl_aws::AwsClients::glue`).
    pub fn new(
        client: Client,
        database: impl Into<String>,
        lake_location: impl Into<String>,
    ) -> Self {
        GlueCatalog {
            client,
            database: database.into(),
            lake_location: lake_location.into(),
            projection: None,
            database_ready: OnceCell::new(),
            registered: Mutex::new(HashSet::new()),
        }
    }

    /// Adds Athena partition-projection parameters to the tables this catalog creates or updates.
    pub fn with_projection(mut self, projection: Projection) -> Self {
        self.projection = Some(projection);
        self
    }

    /// The Glue database.
    pub fn database(&self) -> &str {
        &self.database
    }

    /// Creates the database unless it exists (once per instance).
    pub async fn ensure_database(&self) -> Result<(), CatalogError> {
        self.database_ready
            .get_or_try_init(|| async {
                match self.client.get_database().name(&self.database).send().await {
                    Ok(_) => return Ok(()),
                    Err(e)
                        if e.as_service_error()
                            .is_some_and(|s| s.is_entity_not_found_exception()) => {}
                    Err(e) => return Err(backend(format!("GetDatabase {}", self.database), &e)),
                }
                let input = DatabaseInput::builder()
                    .name(&self.database)
                    .description(
                        "Lake tables written by etl (Parquet, partitioned by dt and hour).",
                    )
                    .build()
                    .map_err(|e| {
                        CatalogError::Backend(format!(
                            "building the Glue database input failed: {e}"
                        ))
                    })?;
                match self
                    .client
                    .create_database()
                    .database_input(input)
                    .send()
                    .await
                {
                    Ok(_) => {
                        tracing::info!(database = %self.database, "created Glue database");
                        Ok(())
                    }
                    // Another process created it between our two calls.
                    Err(e)
                        if e.as_service_error()
                            .is_some_and(|s| s.is_already_exists_exception()) =>
                    {
                        Ok(())
                    }
                    Err(e) => Err(backend(format!("CreateDatabase {}", self.database), &e)),
                }
            })
            .await
            .map(|_| ())
    }

    /// The table as Glue stores it; `None` if it does not exist.
    pub async fn table(&self, table: &str) -> Result<Option<Table>, CatalogError> {
        match self
            .client
            .get_table()
            .database_name(&self.database)
            .name(table)
            .send()
            .await
        {
            Ok(out) => Ok(out.table),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_entity_not_found_exception()) =>
            {
                Ok(None)
            }
            Err(e) => Err(backend(format!("GetTable {}.{table}", self.database), &e)),
        }
    }

    fn stored_schema(&self, table: &Table) -> Result<StreamSchema, CatalogError> {
        let name = format!("{}.{}", self.database, table.name());
        let text = table.parameters().and_then(|p| p.get(SCHEMA_PARAMETER)).ok_or_else(|| {
            CatalogError::Backend(format!(
                "Glue table {name} exists but has no `{SCHEMA_PARAMETER}` parameter, so it was not created by `etl catalog sync`; \
                 drop it or point the lake at another database"
            ))
        })?;
        serde_json::from_str(text).map_err(|e| {
            CatalogError::Backend(format!(
                "Glue table {name}: parameter `{SCHEMA_PARAMETER}` is not a stream schema: {e}"
            ))
        })
    }
}

#[async_trait]
impl Catalog for GlueCatalog {
    async fn sync_table(&self, schema: &StreamSchema) -> Result<TableChange, CatalogError> {
        self.ensure_database().await?;
        let table = schema.stream.as_str();
        let input = table_input(schema, &self.lake_location, self.projection.as_ref())?;
        let Some(existing) = self.table(table).await? else {
            self.client
                .create_table()
                .database_name(&self.database)
                .table_input(input)
                .send()
                .await
                .map_err(|e| backend(format!("CreateTable {}.{table}", self.database), &e))?;
            tracing::info!(database = %self.database, table, version = schema.version, "created Glue table");
            return Ok(TableChange::Created);
        };
        let old = self.stored_schema(&existing)?;
        let added = check_evolution(&old, schema).map_err(|source| CatalogError::Breaking {
            table: table.to_string(),
            source,
        })?;
        if old == *schema {
            // Same schema: only a table whose projection parameters differ from this
            // catalog's is updated, so turning projection on (or off: e.g. before compacting,
            // docs/compaction.md) reaches tables created before.
            let have = existing.parameters();
            let stale = match self.projection.as_ref() {
                Some(p) => {
                    let location = crate::table::table_location(&self.lake_location, table);
                    crate::table::projection_parameters(p, &location)
                        .iter()
                        .any(|(k, v)| have.and_then(|h| h.get(k)) != Some(v))
                }
                None => have
                    .and_then(|h| h.get("projection.enabled"))
                    .is_some_and(|v| v == "true"),
            };
            if !stale {
                return Ok(TableChange::Unchanged);
            }
            self.client
                .update_table()
                .database_name(&self.database)
                .table_input(input)
                .send()
                .await
                .map_err(|e| backend(format!("UpdateTable {}.{table}", self.database), &e))?;
            tracing::info!(database = %self.database, table, projection = self.projection.is_some(), "Glue table: partition projection parameters updated");
            return Ok(TableChange::Extended(Vec::new()));
        }
        self.client
            .update_table()
            .database_name(&self.database)
            .table_input(input)
            .send()
            .await
            .map_err(|e| backend(format!("UpdateTable {}.{table}", self.database), &e))?;
        let added: Vec<String> = added.into_iter().map(|c| c.name).collect();
        tracing::info!(database = %self.database, table, from = old.version, to = schema.version, ?added, "updated Glue table");
        Ok(TableChange::Extended(added))
    }

    async fn add_partitions(
        &self,
        table: &str,
        partitions: &[PartitionValues],
    ) -> Result<usize, CatalogError> {
        let mut registered = self.registered.lock().await;
        let mut todo: Vec<&PartitionValues> = Vec::new();
        for p in partitions {
            if !registered.contains(&(table.to_string(), p.clone())) && !todo.contains(&p) {
                todo.push(p);
            }
        }
        if todo.is_empty() {
            return Ok(0);
        }
        let stored = self
            .table(table)
            .await?
            .ok_or_else(|| CatalogError::UnknownTable(table.to_string()))?;
        let sd = stored.storage_descriptor().ok_or_else(|| {
            CatalogError::Backend(format!(
                "Glue table {}.{table} has no StorageDescriptor",
                self.database
            ))
        })?;
        let mut new = 0;
        for chunk in todo.chunks(MAX_PARTITIONS_PER_CALL) {
            let inputs = chunk
                .iter()
                .map(|p| partition_input(sd, p))
                .collect::<Result<Vec<_>, _>>()?;
            let out = self
                .client
                .batch_create_partition()
                .database_name(&self.database)
                .table_name(table)
                .set_partition_input_list(Some(inputs))
                .send()
                .await
                .map_err(|e| {
                    backend(
                        format!("BatchCreatePartition {}.{table}", self.database),
                        &e,
                    )
                })?;
            let mut existed = 0;
            for err in out.errors() {
                let code = err
                    .error_detail()
                    .and_then(|d| d.error_code())
                    .unwrap_or("");
                if code == ALREADY_EXISTS {
                    existed += 1;
                } else {
                    let message = err
                        .error_detail()
                        .and_then(|d| d.error_message())
                        .unwrap_or("");
                    return Err(CatalogError::Backend(format!(
                        "BatchCreatePartition {}.{table}: partition {:?} failed: {code}: {message}",
                        self.database,
                        err.partition_values()
                    )));
                }
            }
            new += chunk.len() - existed;
            registered.extend(chunk.iter().map(|p| (table.to_string(), (*p).clone())));
        }
        tracing::debug!(database = %self.database, table, new, asked = partitions.len(), "registered Glue partitions");
        Ok(new)
    }

    async fn partitions(&self, table: &str) -> Result<Vec<PartitionValues>, CatalogError> {
        if self.table(table).await?.is_none() {
            return Err(CatalogError::UnknownTable(table.to_string()));
        }
        let mut out = Vec::new();
        let mut pages = self
            .client
            .get_partitions()
            .database_name(&self.database)
            .table_name(table)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page =
                page.map_err(|e| backend(format!("GetPartitions {}.{table}", self.database), &e))?;
            for p in page.partitions() {
                match p.values() {
                    [dt, hour] => out.push(PartitionValues { dt: dt.clone(), hour: hour.clone() }),
                    other => {
                        return Err(CatalogError::Backend(format!(
                            "Glue table {}.{table} has a partition with values {other:?}; expected [dt, hour]",
                            self.database
                        )))
                    }
                }
            }
        }
        out.sort();
        Ok(out)
    }
}
