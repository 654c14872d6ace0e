//! `dashboards/datasets/<id>.json`: a QuickSight data set over one curated view.

use serde::{Deserialize, Serialize};

/// `dashboards/datasets/<id>.json`: the properties of `AWS::QuickSight::DataSet` (API
/// `CreateDataSet`) we use, plus an optional refresh schedule for SPICE.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct DataSet {
    /// Id, equal to the file stem.
    pub data_set_id: String,
    /// Display name.
    pub name: String,
    /// `SPICE` (imported, refreshed on a schedule) or `DIRECT_QUERY`.
    pub import_mode: String,
    /// Exactly one physical table: a `RelationalTable` over a curated view.
    pub physical_table_map: std::collections::BTreeMap<String, PhysicalTable>,
    /// SPICE only: the `AWS::QuickSight::RefreshSchedule` `Schedule` property.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_schedule: Option<serde_json::Value>,
}

/// `PhysicalTable` (relational tables only).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct PhysicalTable {
    /// `RelationalTable`.
    pub relational_table: RelationalTable,
}

/// `RelationalTable`: a table or view of the data source.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct RelationalTable {
    /// `arn:aws:quicksight:${region}:${account_id}:datasource/<DataSourceId>`.
    pub data_source_arn: String,
    /// Database schema of the views (`${schema}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    /// The curated view.
    pub name: String,
    /// The columns QuickSight reads, with their QuickSight types.
    pub input_columns: Vec<InputColumn>,
}

/// `InputColumn`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct InputColumn {
    /// Column name of the view.
    pub name: String,
    /// `STRING` | `INTEGER` | `DECIMAL` | `DATETIME` (also `BIT`, `BOOLEAN`, `JSON`).
    pub r#type: String,
}

impl DataSet {
    /// The one relational table of the data set.
    pub fn table(&self) -> Option<&RelationalTable> {
        self.physical_table_map
            .values()
            .next()
            .map(|t| &t.relational_table)
    }
}
