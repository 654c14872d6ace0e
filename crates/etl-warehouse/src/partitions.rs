//! Compacted partitions as the local engine reads them.
//!
//! `etl compact` (crate `etl-compact`) rewrites a closed partition-hour into a new
//! **generation** under `_compacted/<table>/dt=…/hour=…/g=<n>/` and then switches the
//! partition to it by writing one small **partition state** object,
//! `_catalog/partitions/<table>/dt=…/hour=….json` (the file catalog's per-partition location;
//! Glue's partition `Location` mirrors it). The state object is the commit point: a reader
//! that sees generation `n` reads only `g=<n>`, a reader that does not see it reads the
//! partition's original files, which stay until a grace period has passed. Either way each row
//! once.
//!
//! [`CatalogTable`] is how the local engine honours this: every scan reads the state objects of
//! its table again, reads uncompacted partitions from `<table>/` (compacted ones pruned away by
//! their partition values) and compacted partitions from their current generation only.

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::datasource::listing::ListingTable;
use datafusion::datasource::TableType;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::{col, lit, Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::union::UnionExec;
use datafusion::physical_plan::ExecutionPlan;
use futures::TryStreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Prefix (below the lake root) of the partition state objects.
pub const PARTITION_STATE_PREFIX: &str = "_catalog/partitions";
/// Prefix (below the lake root) of compacted generations.
pub const COMPACTED_PREFIX: &str = "_compacted";
/// The Hive key of the generation directory (`g=<n>`).
pub const GENERATION_KEY: &str = "g";

/// `_catalog/partitions/<table>/dt=<dt>/hour=<hour>.json`.
pub fn state_path(table: &str, dt: &str, hour: &str) -> String {
    format!("{PARTITION_STATE_PREFIX}/{table}/dt={dt}/hour={hour}.json")
}

/// `_compacted/<table>/dt=<dt>/hour=<hour>/g=<generation>/`.
pub fn generation_dir(table: &str, dt: &str, hour: &str, generation: u64) -> String {
    format!("{COMPACTED_PREFIX}/{table}/dt={dt}/hour={hour}/{GENERATION_KEY}={generation}/")
}

/// The fields of a partition state object that readers need (the object holds more, see
/// `etl_compact::PartitionState`; unknown fields are ignored here).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionPointer {
    /// `YYYY-MM-DD`.
    pub dt: String,
    /// `HH`.
    pub hour: String,
    /// The generation readers read: files under [`generation_dir`].
    pub generation: u64,
}

/// The current generation of every compacted partition of `table`, from the state objects
/// under `root` (the lake root's path in `store`).
pub async fn read_pointers(
    store: &dyn ObjectStore,
    root: &ObjectPath,
    table: &str,
) -> Result<Vec<PartitionPointer>, String> {
    let prefix = join(root, &format!("{PARTITION_STATE_PREFIX}/{table}"));
    let metas: Vec<_> = match store.list(Some(&prefix)).try_collect().await {
        Ok(m) => m,
        Err(object_store::Error::NotFound { .. }) => return Ok(Vec::new()),
        Err(e) => return Err(format!("listing {prefix}: {e}")),
    };
    let mut out = Vec::with_capacity(metas.len());
    for meta in metas {
        if !meta.location.as_ref().ends_with(".json") {
            continue;
        }
        let bytes = match store.get(&meta.location).await {
            Ok(r) => r
                .bytes()
                .await
                .map_err(|e| format!("reading {}: {e}", meta.location))?,
            // Removed between list and get: the partition is no longer compacted.
            Err(object_store::Error::NotFound { .. }) => continue,
            Err(e) => return Err(format!("reading {}: {e}", meta.location)),
        };
        let pointer: PartitionPointer = serde_json::from_slice(&bytes)
            .map_err(|e| format!("partition state {} is corrupt: {e}", meta.location))?;
        out.push(pointer);
    }
    Ok(out)
}

fn join(root: &ObjectPath, rest: &str) -> ObjectPath {
    let root = root.as_ref().trim_end_matches('/');
    if root.is_empty() {
        ObjectPath::from(rest)
    } else {
        ObjectPath::from(format!("{root}/{rest}"))
    }
}

/// A lake table that honours compaction: see the module doc.
#[derive(Debug)]
pub(crate) struct CatalogTable {
    pub(crate) table: String,
    /// `<lake>/<table>/`, partition columns `dt`, `hour`.
    pub(crate) base: Arc<ListingTable>,
    /// `<lake>/_compacted/<table>/`, partition columns `dt`, `hour`, `g`.
    pub(crate) compacted: Arc<ListingTable>,
    pub(crate) store: Arc<dyn ObjectStore>,
    /// The lake root's path in `store`.
    pub(crate) root: ObjectPath,
}

fn partition_expr(p: &PartitionPointer) -> Expr {
    col("dt")
        .eq(lit(p.dt.clone()))
        .and(col("hour").eq(lit(p.hour.clone())))
}

fn any_of(exprs: impl Iterator<Item = Expr>) -> Option<Expr> {
    exprs.reduce(|a, b| a.or(b))
}

#[async_trait]
impl TableProvider for CatalogTable {
    fn schema(&self) -> SchemaRef {
        self.base.schema()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DfResult<Vec<TableProviderFilterPushDown>> {
        self.base.supports_filters_pushdown(filters)
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let pointers = read_pointers(self.store.as_ref(), &self.root, &self.table)
            .await
            .map_err(|e| DataFusionError::External(e.into()))?;
        let (Some(compacted), Some(current)) = (
            any_of(pointers.iter().map(partition_expr)),
            any_of(pointers.iter().map(|p| {
                partition_expr(p).and(col(GENERATION_KEY).eq(lit(p.generation.to_string())))
            })),
        ) else {
            return self.base.scan(state, projection, filters, limit).await;
        };
        // Both scans must produce the table's columns only (the compacted table has `g` last).
        let all: Vec<usize> = (0..self.base.schema().fields().len()).collect();
        let projection = projection.cloned().unwrap_or(all);
        let mut base_filters = filters.to_vec();
        base_filters.push(Expr::Not(Box::new(compacted)));
        let mut generation_filters = filters.to_vec();
        generation_filters.push(current);
        // No limit below the union: each side could return `limit` rows.
        let base = self
            .base
            .scan(state, Some(&projection), &base_filters, None)
            .await?;
        let generations = self
            .compacted
            .scan(state, Some(&projection), &generation_filters, None)
            .await?;
        UnionExec::try_new(vec![base, generations])
    }
}
