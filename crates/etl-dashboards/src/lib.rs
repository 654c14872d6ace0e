//! QuickSight dashboards as code: the files in `dashboards/` (QuickSight `Definition` JSON, data
//! sets over the curated views, the Redshift data source) checked, previewed and deployed.
//!
//! This crate does
//! - read a dashboards folder into typed QuickSight JSON ([`model`], [`Project`]);
//! - validate it against the curated views' actual output schemas, as the local DataFusion
//!   warehouse reports them ([`validate()`], [`view_schemas`]), naming the file and JSON path
//!   of each problem;
//! - render one self-contained, offline HTML page per dashboard with data from the local
//!   warehouse: KPIs, line/bar/pie charts drawn by `plotters` as SVG, tables, on the
//!   definition's grid ([`render`]); optionally a PNG screenshot with headless Chromium;
//! - generate the CloudFormation template that creates or updates the QuickSight data source,
//!   data sets, refresh schedules and dashboards, byte-identical for the same input ([`deploy`]).
//!
//! It does not call AWS (the template is applied by CloudFormation or Terraform), does not
//! render every QuickSight feature (filters are shown, not applied; only the visual kinds of
//! [`model::Visual`]), and does not own the views (`etl-warehouse` does).

pub mod charts;
pub mod deploy;
mod error;
pub mod model;
mod project;
pub mod query;
pub mod render;
pub mod validate;
mod wells;

pub use error::{DashboardError, Issue, Result};
pub use project::{
    fill, fill_str, stem, DashboardFile, DataSource, Project, SourceFile, DATA_SOURCE_FILE,
};
pub use validate::validate;

use arrow::datatypes::SchemaRef;
use etl_warehouse::LocalWarehouse;
use std::collections::BTreeMap;

/// The output schema of every view of `warehouse` (what QuickSight would see).
pub async fn view_schemas(warehouse: &LocalWarehouse) -> Result<BTreeMap<String, SchemaRef>> {
    let mut out = BTreeMap::new();
    for view in warehouse.views() {
        let frame = warehouse
            .session()
            .table(view.as_str())
            .await
            .map_err(|e| DashboardError::Data {
                what: format!("view {view}"),
                message: e.to_string(),
            })?;
        out.insert(view, SchemaRef::clone(frame.schema().inner()));
    }
    Ok(out)
}

/// Validates `project` against `warehouse`'s views; all problems in one error.
pub async fn check(project: &Project, warehouse: &LocalWarehouse) -> Result<()> {
    let schemas = view_schemas(warehouse).await?;
    let issues = validate(project, &schemas);
    if issues.is_empty() {
        Ok(())
    } else {
        Err(DashboardError::Invalid(issues))
    }
}
