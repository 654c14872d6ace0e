//! The local warehouse: DataFusion reading the Parquet lake in place.

use crate::error::{sql_excerpt, Result, WarehouseError};
use crate::partitions::{CatalogTable, COMPACTED_PREFIX, GENERATION_KEY};
use crate::views::{check_references, order_views, ViewDef};
use crate::{LoadRequest, Warehouse};
use arrow::array::RecordBatch;
use arrow::datatypes::DataType;
use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::TableProvider;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::error::DataFusionError;
use datafusion::execution::cache::cache_manager::CacheManagerConfig;
use datafusion::execution::memory_pool::FairSpillPool;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::{SQLOptions, SessionConfig, SessionContext};
use etl_schema::{StreamSchema, PARTITION_KEYS};
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::ObjectStore;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

/// Where the lake lives.
#[derive(Debug, Clone)]
pub enum LakeLocation {
    /// A local directory holding `<table>/dt=YYYY-MM-DD/hour=HH/*.parquet`.
    Dir(PathBuf),
    /// An object-store URL such as `s3://bucket/lake`, served by `store` (built by the caller,
    /// e.g. with credentials from `etl-aws`). Tables live under `<url>/<table>/`.
    Url {
        url: String,
        store: Arc<dyn ObjectStore>,
    },
}

impl From<&Path> for LakeLocation {
    fn from(path: &Path) -> Self {
        LakeLocation::Dir(path.to_path_buf())
    }
}

impl From<PathBuf> for LakeLocation {
    fn from(path: PathBuf) -> Self {
        LakeLocation::Dir(path)
    }
}

impl std::fmt::Display for LakeLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LakeLocation::Dir(path) => write!(f, "{}", path.display()),
            LakeLocation::Url { url, .. } => f.write_str(url),
        }
    }
}

/// Memory that the queries of one [`LocalWarehouse`] may hold at once (256 MiB); beyond it
/// sorts and aggregations spill to disk.
pub const QUERY_MEMORY_LIMIT: usize = 256 << 20;

/// The warehouse of local runs and tests: each stream is a DataFusion `ListingTable` over
/// `<lake>/<table>/` with Hive partition columns `dt` and `hour` (strings) after the lake
/// columns, and the curated views are DataFusion views over them.
///
/// Every query lists the table directories again (DataFusion 55's list-files cache, on by
/// default and without expiry, is switched off here), so files the lake writer adds are
/// visible to the next query without any refresh step. A table directory that is empty or does
/// not exist yet reads as zero rows. Files must end in `.parquet` (temporary files are skipped)
/// and sit in the `dt=/hour=` layout. Partitions that `etl compact` switched to a compacted
/// generation are read from that generation only ([`crate::partitions`]).
pub struct LocalWarehouse {
    ctx: SessionContext,
    root: String,
    /// The lake's object store and the lake root's path in it (partition state objects).
    store: Arc<dyn ObjectStore>,
    store_root: ObjectPath,
    location: String,
    tables: RwLock<Vec<String>>,
    views: RwLock<Vec<ViewDef>>,
}

impl std::fmt::Debug for LocalWarehouse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalWarehouse")
            .field("lake", &self.location)
            .finish_non_exhaustive()
    }
}

impl LocalWarehouse {
    /// Opens the lake at `lake` (a directory path or a [`LakeLocation::Url`]), registers one
    /// table per schema and creates `views` (in dependency order; they need not be sorted).
    pub async fn open(
        lake: impl Into<LakeLocation>,
        schemas: &[StreamSchema],
        views: &[ViewDef],
    ) -> Result<Self> {
        let lake = lake.into();
        let location = lake.to_string();
        let lake_err = |message: String| WarehouseError::Lake {
            location: location.clone(),
            message,
        };

        // List the lake on every scan: no list-files cache (see the type's doc).
        // Queries share a bounded memory pool; sorts and aggregations beyond it spill to the
        // temporary directory instead of growing the process (the demo's views over millions of
        // events would otherwise dominate its peak memory).
        let runtime = RuntimeEnvBuilder::new()
            .with_cache_manager(CacheManagerConfig::default().with_list_files_cache_limit(0))
            .with_memory_pool(Arc::new(FairSpillPool::new(QUERY_MEMORY_LIMIT)))
            .build_arc()
            .map_err(|e| lake_err(format!("cannot build the DataFusion runtime: {e}")))?;
        let config = SessionConfig::new().with_information_schema(true);
        let ctx = SessionContext::new_with_config_rt(config, runtime);

        let (root, store, store_root) = match &lake {
            LakeLocation::Dir(path) => {
                let absolute = std::path::absolute(path)
                    .map_err(|e| lake_err(format!("cannot make the path absolute: {e}")))?;
                if !absolute.is_dir() {
                    tracing::warn!(lake = %absolute.display(), "lake directory does not exist (yet); tables read as empty");
                }
                let text = absolute
                    .to_str()
                    .ok_or_else(|| lake_err("the path is not valid UTF-8".into()))?;
                let store_root = ObjectPath::from_absolute_path(&absolute)
                    .map_err(|e| lake_err(format!("not a usable path: {e}")))?;
                let store: Arc<dyn ObjectStore> = Arc::new(LocalFileSystem::new());
                (
                    text.trim_end_matches(std::path::MAIN_SEPARATOR).to_string(),
                    store,
                    store_root,
                )
            }
            LakeLocation::Url { url, store } => {
                let parsed = ListingTableUrl::parse(url).map_err(|e| {
                    lake_err(format!("not a valid URL: {e}; use e.g. s3://bucket/prefix"))
                })?;
                let store_url = parsed.object_store();
                let _previous = ctx.register_object_store(store_url.as_ref(), Arc::clone(store));
                (
                    url.trim_end_matches('/').to_string(),
                    Arc::clone(store),
                    parsed.prefix().clone(),
                )
            }
        };

        let warehouse = LocalWarehouse {
            ctx,
            root,
            store,
            store_root,
            location,
            tables: RwLock::new(Vec::new()),
            views: RwLock::new(Vec::new()),
        };
        warehouse.migrate(schemas, views).await?;
        Ok(warehouse)
    }

    /// (Re)registers the tables of `schemas` and (re)creates `views`; views created by an
    /// earlier call that are not in `views` are dropped. Tables not in `schemas` are kept.
    /// Names are checked before anything changes; if the engine then refuses a view, the views
    /// before it exist and the rest do not: fix the file and migrate again.
    pub async fn migrate(&self, schemas: &[StreamSchema], views: &[ViewDef]) -> Result<()> {
        let mut tables = self.tables();
        for schema in schemas {
            if !tables.contains(&schema.stream) {
                tables.push(schema.stream.clone());
            }
        }
        let table_refs: Vec<&str> = tables.iter().map(String::as_str).collect();
        let ordered = order_views(views.to_vec())?;
        if let Some(view) = ordered.iter().find(|v| tables.contains(&v.name)) {
            return Err(WarehouseError::ViewInvalid {
                view: view.name.clone(),
                path: view.path.display().to_string(),
                message: "a view cannot have the name of a lake table; rename the file".into(),
            });
        }
        check_references(&ordered, &table_refs)?;
        for schema in schemas {
            self.register_table(schema)?;
        }

        // Drop every view first: a kept view would still hold the plan of a replaced table.
        let old = std::mem::take(&mut *self.views.write().unwrap_or_else(|e| e.into_inner()));
        for view in old.iter().rev() {
            self.drop_view(&view.name)?;
        }
        for view in &ordered {
            self.ctx
                .sql(&view.create_sql())
                .await
                .map_err(|source| WarehouseError::View {
                    view: view.name.clone(),
                    path: view.path.display().to_string(),
                    source: Box::new(source),
                })?;
            self.views
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .push(view.clone());
        }
        tracing::debug!(tables = tables.len(), views = ordered.len(), lake = %self.location, "warehouse migrated");
        Ok(())
    }

    /// Runs one read-only SQL statement (DDL, DML and `SET` are refused) and collects the result.
    pub async fn query(&self, sql: &str) -> Result<Vec<RecordBatch>> {
        let options = SQLOptions::new()
            .with_allow_ddl(false)
            .with_allow_dml(false)
            .with_allow_statements(false);
        let query_err = |source: DataFusionError| WarehouseError::Query {
            sql: sql_excerpt(sql),
            source: Box::new(source),
        };
        let frame = self
            .ctx
            .sql_with_options(sql, options)
            .await
            .map_err(query_err)?;
        frame.collect().await.map_err(query_err)
    }

    /// The rows of view `name` in the view's own `ORDER BY` order (re-applied here: DataFusion,
    /// like SQL in general, does not keep the order of a view it selects from), at most `limit`.
    pub async fn view_rows(&self, name: &str, limit: Option<usize>) -> Result<Vec<RecordBatch>> {
        let view = self
            .views
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .find(|v| v.name == name)
            .cloned();
        let Some(view) = view else {
            return Err(WarehouseError::UnknownView {
                view: name.to_string(),
                known: self.views().join(", "),
            });
        };
        let mut sql = format!("SELECT * FROM {name}");
        if let Some(order_by) = view.order_by()? {
            sql = format!("{sql} {order_by}");
        }
        if let Some(n) = limit {
            sql = format!("{sql} LIMIT {n}");
        }
        self.query(&sql).await
    }

    /// Names of the registered lake tables, in registration order.
    pub fn tables(&self) -> Vec<String> {
        self.tables
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Names of the views, in creation (dependency) order.
    pub fn views(&self) -> Vec<String> {
        self.views
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|v| v.name.clone())
            .collect()
    }

    /// The DataFusion session, for callers that need more than SQL text (plans, UDFs).
    pub fn session(&self) -> &SessionContext {
        &self.ctx
    }

    fn register_table(&self, schema: &StreamSchema) -> Result<()> {
        let table = schema.stream.clone();
        let location = format!("{}/{}/", self.root, table);
        let table_err = |source: DataFusionError| WarehouseError::Table {
            table: table.clone(),
            location: location.clone(),
            source: Box::new(source),
        };
        let listing = |location: &str, keys: &[&str], schema: SchemaRef| {
            let url = ListingTableUrl::parse(location)?;
            let partition_cols = keys
                .iter()
                .map(|k| (k.to_string(), DataType::Utf8))
                .collect();
            let options = ListingOptions::new(Arc::new(ParquetFormat::default()))
                .with_file_extension(".parquet")
                .with_table_partition_cols(partition_cols);
            let config = ListingTableConfig::new(url)
                .with_listing_options(options)
                .with_schema(schema);
            ListingTable::try_new(config).map(Arc::new)
        };
        let lake_schema = schema.lake_arrow_schema();
        let base = listing(&location, &PARTITION_KEYS, lake_schema.clone()).map_err(table_err)?;
        // Compacted generations: `_compacted/<table>/dt=…/hour=…/g=<n>/` (see `partitions`).
        let generation_keys = [PARTITION_KEYS[0], PARTITION_KEYS[1], GENERATION_KEY];
        let compacted = listing(
            &format!("{}/{COMPACTED_PREFIX}/{table}/", self.root),
            &generation_keys,
            lake_schema,
        )
        .map_err(table_err)?;
        let provider = CatalogTable {
            table: table.clone(),
            base,
            compacted,
            store: Arc::clone(&self.store),
            root: self.store_root.clone(),
        };
        self.ctx
            .deregister_table(table.as_str())
            .map_err(table_err)?;
        self.ctx
            .register_table(table.as_str(), Arc::new(provider) as Arc<dyn TableProvider>)
            .map_err(table_err)?;
        let mut tables = self.tables.write().unwrap_or_else(|e| e.into_inner());
        if !tables.contains(&table) {
            tables.push(table);
        }
        Ok(())
    }

    fn drop_view(&self, name: &str) -> Result<()> {
        self.ctx
            .deregister_table(name)
            .map(|_| ())
            .map_err(|source| WarehouseError::View {
                view: name.to_string(),
                path: "(dropping the previous definition)".into(),
                source: Box::new(source),
            })
    }
}

#[async_trait]
impl Warehouse for LocalWarehouse {
    async fn migrate(&self, schemas: &[StreamSchema], views: &[ViewDef]) -> Result<()> {
        LocalWarehouse::migrate(self, schemas, views).await
    }

    /// A no-op: the local warehouse reads the lake in place, so files are visible to the next
    /// query as soon as the lake writer has written them. Only checks that the table exists.
    async fn load(&self, request: &LoadRequest) -> Result<()> {
        let tables = self.tables();
        if !tables.contains(&request.table) {
            return Err(WarehouseError::UnknownTable {
                table: request.table.clone(),
                known: tables.join(", "),
            });
        }
        tracing::debug!(table = %request.table, batch_id = %request.batch_id, files = request.files.len(), "local load: nothing to copy");
        Ok(())
    }

    async fn query(&self, sql: &str) -> Result<Vec<RecordBatch>> {
        LocalWarehouse::query(self, sql).await
    }
}
