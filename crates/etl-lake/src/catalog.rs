//! The catalog of lake tables and partitions: the seam that Glue fills in production.
//!
//! [`FileCatalog`] keeps the catalog as one JSON object in the lake (`_catalog/catalog.json`),
//! for `etl demo` and local runs. It records each table's schema (so evolution can be checked),
//! its Hive column types, location and partitions.

use crate::layout::{PartitionValues, CATALOG_FILE};
use crate::{Lake, LakeError};
use async_trait::async_trait;
use bytes::Bytes;
use etl_schema::evolution::check_evolution;
use etl_schema::{StreamSchema, PARTITION_KEYS};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use tokio::sync::Mutex;

/// What `sync_table` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TableChange {
    /// The table was created.
    Created,
    /// Columns were appended.
    Extended(Vec<String>),
    /// Nothing to do.
    Unchanged,
}

/// Errors of a catalog.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error(transparent)]
    Lake(#[from] LakeError),
    #[error("refusing to change table `{table}`: {source}")]
    Breaking {
        table: String,
        #[source]
        source: etl_schema::evolution::EvolutionError,
    },
    #[error("table `{0}` is not in the catalog; run `etl catalog sync` first")]
    UnknownTable(String),
    #[error("catalog request failed: {0}")]
    Backend(String),
}

impl CatalogError {
    /// Whether trying again later may succeed: the lake (file catalog) or the catalog service
    /// could not be reached or was throttled after the SDK's retries. A breaking change, an
    /// unknown table or a refused request (permissions) is not transient.
    pub fn is_transient(&self) -> bool {
        match self {
            CatalogError::Lake(e) => e.is_transient(),
            CatalogError::Backend(message) => {
                let m = message.to_ascii_lowercase();
                [
                    "dispatch failure",
                    "timeout",
                    "timed out",
                    "throttl",
                    "connection",
                    "service unavailable",
                    "internalservice",
                    "internal service",
                ]
                .iter()
                .any(|needle| m.contains(needle))
            }
            CatalogError::Breaking { .. } | CatalogError::UnknownTable(_) => false,
        }
    }
}

/// Tables and partitions of the lake.
#[async_trait]
pub trait Catalog: Send + Sync {
    /// Creates the stream's table or extends it with appended columns; refuses breaking changes.
    async fn sync_table(&self, schema: &StreamSchema) -> Result<TableChange, CatalogError>;
    /// Registers partitions of `table`; existing ones are fine. Returns how many were new.
    async fn add_partitions(
        &self,
        table: &str,
        partitions: &[PartitionValues],
    ) -> Result<usize, CatalogError>;
    /// Partitions of `table`, sorted.
    async fn partitions(&self, table: &str) -> Result<Vec<PartitionValues>, CatalogError>;
}

/// One table in the file catalog.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CatalogTable {
    /// Schema version last synced.
    pub schema_version: u32,
    /// The stream schema at that version.
    pub schema: StreamSchema,
    /// Table location, `<lake>/<table>/`.
    pub location: String,
    /// `(name, hive type)` of each column, in order.
    pub columns: Vec<(String, String)>,
    /// Partition keys, `dt` and `hour`.
    pub partition_keys: Vec<String>,
    /// Registered partitions.
    pub partitions: BTreeSet<PartitionValues>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct CatalogFile {
    tables: BTreeMap<String, CatalogTable>,
}

/// A catalog kept as a JSON object in the lake. One writer process at a time.
#[derive(Debug)]
pub struct FileCatalog {
    lake: Lake,
    state: Mutex<Option<CatalogFile>>,
}

impl FileCatalog {
    /// The catalog of `lake`.
    pub fn new(lake: Lake) -> Self {
        FileCatalog {
            lake,
            state: Mutex::new(None),
        }
    }

    /// A snapshot of one table.
    pub async fn table(&self, table: &str) -> Result<Option<CatalogTable>, CatalogError> {
        let mut guard = self.state.lock().await;
        let file = self.loaded(&mut guard).await?;
        Ok(file.tables.get(table).cloned())
    }

    async fn loaded<'a>(
        &self,
        guard: &'a mut Option<CatalogFile>,
    ) -> Result<&'a mut CatalogFile, CatalogError> {
        if guard.is_none() {
            let file = match self.lake.get(CATALOG_FILE).await? {
                Some(bytes) => {
                    serde_json::from_slice(&bytes).map_err(|e| LakeError::CorruptCatalog {
                        path: self.lake.display(CATALOG_FILE),
                        message: e.to_string(),
                    })?
                }
                None => CatalogFile::default(),
            };
            *guard = Some(file);
        }
        guard
            .as_mut()
            .ok_or_else(|| CatalogError::Backend("catalog state vanished".into()))
    }

    async fn save(&self, file: &CatalogFile) -> Result<(), CatalogError> {
        let bytes = serde_json::to_vec_pretty(file).map_err(LakeError::from)?;
        self.lake.put(CATALOG_FILE, Bytes::from(bytes)).await?;
        Ok(())
    }
}

#[async_trait]
impl Catalog for FileCatalog {
    async fn sync_table(&self, schema: &StreamSchema) -> Result<TableChange, CatalogError> {
        let mut guard = self.state.lock().await;
        let file = self.loaded(&mut guard).await?;
        let table = schema.stream.clone();
        let columns: Vec<(String, String)> = schema
            .lake_columns()
            .into_iter()
            .map(|c| (c.name, c.hive_type.to_string()))
            .collect();
        let change = match file.tables.get_mut(&table) {
            None => {
                file.tables.insert(
                    table.clone(),
                    CatalogTable {
                        schema_version: schema.version,
                        schema: schema.clone(),
                        location: format!("{}/{table}/", self.lake.location()),
                        columns,
                        partition_keys: PARTITION_KEYS.iter().map(|k| k.to_string()).collect(),
                        partitions: BTreeSet::new(),
                    },
                );
                TableChange::Created
            }
            Some(existing) => {
                let old = existing.schema.clone();
                let added =
                    check_evolution(&old, schema).map_err(|source| CatalogError::Breaking {
                        table: table.clone(),
                        source,
                    })?;
                if old == *schema {
                    return Ok(TableChange::Unchanged);
                }
                existing.schema_version = schema.version;
                existing.schema = schema.clone();
                existing.columns = columns;
                TableChange::Extended(added.into_iter().map(|c| c.name).collect())
            }
        };
        self.save(file).await?;
        Ok(change)
    }

    async fn add_partitions(
        &self,
        table: &str,
        partitions: &[PartitionValues],
    ) -> Result<usize, CatalogError> {
        let mut guard = self.state.lock().await;
        let file = self.loaded(&mut guard).await?;
        let entry = file
            .tables
            .get_mut(table)
            .ok_or_else(|| CatalogError::UnknownTable(table.to_string()))?;
        let new = partitions
            .iter()
            .filter(|p| entry.partitions.insert((*p).clone()))
            .count();
        if new > 0 {
            self.save(file).await?;
        }
        Ok(new)
    }

    async fn partitions(&self, table: &str) -> Result<Vec<PartitionValues>, CatalogError> {
        let mut guard = self.state.lock().await;
        let file = self.loaded(&mut guard).await?;
        let entry = file
            .tables
            .get(table)
            .ok_or_else(|| CatalogError::UnknownTable(table.to_string()))?;
        Ok(entry.partitions.iter().cloned().collect())
    }
}
