//! The subset of the QuickSight `Definition` JSON (API `CreateDashboard`, CloudFormation
//! `AWS::QuickSight::Dashboard`) that the dashboards in `dashboards/` use, plus the data set and
//! data source files. Field names are QuickSight's (PascalCase). Unknown keys are refused, so a
//! definition that uses something the validator and renderer do not understand fails loudly
//! instead of being half-rendered.

use serde::{Deserialize, Serialize};

mod dataset;
pub use dataset::{DataSet, InputColumn, PhysicalTable, RelationalTable};

/// `Definition` of a dashboard.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct Definition {
    /// The data sets the visuals read, by a local identifier.
    pub data_set_identifier_declarations: Vec<DataSetIdentifierDeclaration>,
    /// Sheets (tabs); each holds visuals and exactly one layout.
    pub sheets: Vec<Sheet>,
    /// Filters (date range, region); each group scoped to sheets.
    #[serde(default)]
    pub filter_groups: Vec<FilterGroup>,
}

/// `DataSetIdentifierDeclaration`: a local name for a data set ARN.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct DataSetIdentifierDeclaration {
    /// The name visuals use in `Column.DataSetIdentifier`.
    pub identifier: String,
    /// `arn:aws:quicksight:${region}:${account_id}:dataset/<DataSetId>`; the `<DataSetId>` names
    /// a file `dashboards/datasets/<DataSetId>.json`.
    pub data_set_arn: String,
}

impl DataSetIdentifierDeclaration {
    /// The data set id at the end of the ARN (`…:dataset/<id>`).
    pub fn data_set_id(&self) -> Option<&str> {
        self.data_set_arn.rsplit_once(":dataset/").map(|(_, id)| id)
    }
}

/// `SheetDefinition`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct Sheet {
    /// Unique id of the sheet.
    pub sheet_id: String,
    /// Tab title.
    pub name: String,
    /// The visuals of the sheet.
    pub visuals: Vec<Visual>,
    /// Exactly one layout (a grid).
    pub layouts: Vec<Layout>,
}

/// `Visual`: a union; the dashboards use these five kinds.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub enum Visual {
    /// Big numbers, optionally with the trend against the previous period.
    #[serde(rename = "KPIVisual")]
    Kpi(KpiVisual),
    /// Lines over a category (usually time), one line per colour value.
    #[serde(rename = "LineChartVisual")]
    Line(ChartVisual<LineChartConfiguration>),
    /// Bars per category.
    #[serde(rename = "BarChartVisual")]
    Bar(ChartVisual<BarChartConfiguration>),
    /// Shares of a whole.
    #[serde(rename = "PieChartVisual")]
    Pie(ChartVisual<PieChartConfiguration>),
    /// Grouped rows.
    #[serde(rename = "TableVisual")]
    Table(ChartVisual<TableConfiguration>),
}

/// The parts every visual has.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct ChartVisual<C> {
    /// Unique id; the layout element with this `ElementId` places it.
    pub visual_id: String,
    /// Title shown above the visual.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<VisualTitle>,
    /// Field wells and options.
    pub chart_configuration: C,
}

/// A KPI visual (same shape as the others).
pub type KpiVisual = ChartVisual<KpiConfiguration>;

/// `VisualTitleLabelOptions`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct VisualTitle {
    /// `VISIBLE` or `HIDDEN`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub visibility: Option<String>,
    /// The text.
    pub format_text: FormatText,
}

/// `ShortFormatText`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct FormatText {
    /// Plain text of the title.
    pub plain_text: String,
}

/// `KPIConfiguration`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct KpiConfiguration {
    /// `KPIFieldWells`.
    pub field_wells: KpiFieldWells,
}

/// `KPIFieldWells`: the value, and a date field whose last period is compared with the one
/// before (the trend).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct KpiFieldWells {
    /// One measure.
    pub values: Vec<MeasureField>,
    /// Targets (unused by the dashboards; kept for QuickSight's shape).
    #[serde(default)]
    pub target_values: Vec<MeasureField>,
    /// At most one date dimension: the KPI shows the last period and its change.
    #[serde(default)]
    pub trend_groups: Vec<DimensionField>,
}

/// `LineChartConfiguration`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct LineChartConfiguration {
    /// `LineChartFieldWells`.
    pub field_wells: LineChartFieldWells,
    /// `LINE` | `AREA` | `STACKED_AREA`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub r#type: Option<String>,
}

/// `LineChartFieldWells`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct LineChartFieldWells {
    /// `LineChartAggregatedFieldWells`.
    pub line_chart_aggregated_field_wells: AggregatedFieldWells,
}

/// `BarChartConfiguration`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct BarChartConfiguration {
    /// `BarChartFieldWells`.
    pub field_wells: BarChartFieldWells,
    /// `HORIZONTAL` | `VERTICAL`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub orientation: Option<String>,
    /// `CLUSTERED` | `STACKED` | `STACKED_PERCENT`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bars_arrangement: Option<String>,
    /// How categories are ordered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sort_configuration: Option<BarChartSortConfiguration>,
}

/// `BarChartFieldWells`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct BarChartFieldWells {
    /// `BarChartAggregatedFieldWells`.
    pub bar_chart_aggregated_field_wells: AggregatedFieldWells,
}

/// `BarChartSortConfiguration`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct BarChartSortConfiguration {
    /// Sort of the categories.
    #[serde(default)]
    pub category_sort: Vec<FieldSortOptions>,
}

/// `PieChartConfiguration`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct PieChartConfiguration {
    /// `PieChartFieldWells`.
    pub field_wells: PieChartFieldWells,
}

/// `PieChartFieldWells`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct PieChartFieldWells {
    /// `PieChartAggregatedFieldWells`.
    pub pie_chart_aggregated_field_wells: AggregatedFieldWells,
}

/// Category / Values / Colors wells of line, bar and pie charts.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct AggregatedFieldWells {
    /// The x axis (or slices): one dimension.
    #[serde(default)]
    pub category: Vec<DimensionField>,
    /// The measures.
    #[serde(default)]
    pub values: Vec<MeasureField>,
    /// One series per value of this dimension (line and bar only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub colors: Option<Vec<DimensionField>>,
}

/// `TableConfiguration`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct TableConfiguration {
    /// `TableFieldWells`.
    pub field_wells: TableFieldWells,
    /// Row order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sort_configuration: Option<TableSortConfiguration>,
}

/// `TableFieldWells`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct TableFieldWells {
    /// `TableAggregatedFieldWells`.
    pub table_aggregated_field_wells: TableAggregatedFieldWells,
}

/// `TableAggregatedFieldWells`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct TableAggregatedFieldWells {
    /// Dimensions: one row per combination.
    #[serde(default)]
    pub group_by: Vec<DimensionField>,
    /// Measures.
    #[serde(default)]
    pub values: Vec<MeasureField>,
}

/// `TableSortConfiguration`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct TableSortConfiguration {
    /// Row sort.
    #[serde(default)]
    pub row_sort: Vec<FieldSortOptions>,
}

/// `FieldSortOptions` (field sorts only).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct FieldSortOptions {
    /// `FieldSort`.
    pub field_sort: FieldSort,
}

/// `FieldSort`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct FieldSort {
    /// A `FieldId` of the same visual.
    pub field_id: String,
    /// `ASC` | `DESC`.
    pub direction: String,
}

/// `ColumnIdentifier`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct Column {
    /// A declared data set identifier.
    pub data_set_identifier: String,
    /// A column of the data set (a column of its view).
    pub column_name: String,
}

/// `DimensionField`.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub enum DimensionField {
    /// A string dimension.
    #[serde(rename = "CategoricalDimensionField")]
    Categorical(PlainField),
    /// A date dimension at a granularity.
    #[serde(rename = "DateDimensionField")]
    Date(DateField),
    /// A number used as a dimension.
    #[serde(rename = "NumericalDimensionField")]
    Numerical(PlainField),
}

/// A field with an id and a column.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct PlainField {
    /// Unique within the visual.
    pub field_id: String,
    /// The column.
    pub column: Column,
}

/// `DateDimensionField`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct DateField {
    /// Unique within the visual.
    pub field_id: String,
    /// The column (a date or timestamp).
    pub column: Column,
    /// `HOUR`, `DAY`, `WEEK`, `MONTH`… (default `DAY`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date_granularity: Option<String>,
}

impl DimensionField {
    /// The field id.
    pub fn field_id(&self) -> &str {
        match self {
            DimensionField::Categorical(f) | DimensionField::Numerical(f) => &f.field_id,
            DimensionField::Date(f) => &f.field_id,
        }
    }
    /// The column.
    pub fn column(&self) -> &Column {
        match self {
            DimensionField::Categorical(f) | DimensionField::Numerical(f) => &f.column,
            DimensionField::Date(f) => &f.column,
        }
    }
    /// QuickSight's name of the field kind.
    pub fn kind(&self) -> &'static str {
        match self {
            DimensionField::Categorical(_) => "CategoricalDimensionField",
            DimensionField::Date(_) => "DateDimensionField",
            DimensionField::Numerical(_) => "NumericalDimensionField",
        }
    }
}

/// `MeasureField`.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub enum MeasureField {
    /// An aggregated number.
    #[serde(rename = "NumericalMeasureField")]
    Numerical(NumericalMeasure),
    /// A count of a string column.
    #[serde(rename = "CategoricalMeasureField")]
    Categorical(CategoricalMeasure),
}

/// `NumericalMeasureField`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct NumericalMeasure {
    /// Unique within the visual.
    pub field_id: String,
    /// The column (an integer or decimal).
    pub column: Column,
    /// How rows are aggregated (default SUM).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aggregation_function: Option<NumericalAggregation>,
}

/// `NumericalAggregationFunction`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct NumericalAggregation {
    /// `SUM` | `AVERAGE` | `MIN` | `MAX` | `COUNT` | `DISTINCT_COUNT` | `MEDIAN`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub simple_numerical_aggregation: Option<String>,
    /// A percentile, e.g. `{"PercentileValue": 95}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percentile_aggregation: Option<PercentileAggregation>,
}

/// `PercentileAggregation`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct PercentileAggregation {
    /// 0 to 100.
    pub percentile_value: f64,
}

/// `CategoricalMeasureField`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct CategoricalMeasure {
    /// Unique within the visual.
    pub field_id: String,
    /// The column.
    pub column: Column,
    /// `COUNT` | `DISTINCT_COUNT`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aggregation_function: Option<String>,
}

impl MeasureField {
    /// The field id.
    pub fn field_id(&self) -> &str {
        match self {
            MeasureField::Numerical(f) => &f.field_id,
            MeasureField::Categorical(f) => &f.field_id,
        }
    }
    /// The column.
    pub fn column(&self) -> &Column {
        match self {
            MeasureField::Numerical(f) => &f.column,
            MeasureField::Categorical(f) => &f.column,
        }
    }
}

/// `Layout` (grid layouts only).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct Layout {
    /// `LayoutConfiguration`.
    pub configuration: LayoutConfiguration,
}

/// `LayoutConfiguration`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct LayoutConfiguration {
    /// `GridLayoutConfiguration`.
    pub grid_layout: GridLayout,
}

/// `GridLayoutConfiguration`: a 36-column grid.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct GridLayout {
    /// One element per visual.
    pub elements: Vec<GridElement>,
}

/// `GridLayoutElement`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct GridElement {
    /// The `VisualId` placed here.
    pub element_id: String,
    /// `VISUAL`.
    pub element_type: String,
    /// Width in grid columns, 1-36.
    pub column_span: u32,
    /// Height in grid rows, 1-21.
    pub row_span: u32,
    /// First column, 0-35 (optional: then the element flows after the previous one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub column_index: Option<u32>,
    /// First row (optional, as `ColumnIndex`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub row_index: Option<u32>,
}

/// `FilterGroup`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct FilterGroup {
    /// Unique id.
    pub filter_group_id: String,
    /// The filters.
    pub filters: Vec<Filter>,
    /// Which sheets and visuals the group applies to.
    pub scope_configuration: serde_json::Value,
    /// `ENABLED` | `DISABLED`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// `SINGLE_DATASET` | `ALL_DATASETS` (same column name in every data set).
    pub cross_dataset: String,
}

/// `Filter` (the kinds the dashboards use).
#[derive(Debug, Clone, Deserialize, Serialize)]
pub enum Filter {
    /// A date range.
    #[serde(rename = "TimeRangeFilter")]
    TimeRange(TimeRangeFilter),
    /// A set of string values.
    #[serde(rename = "CategoryFilter")]
    Category(CategoryFilter),
}

/// `TimeRangeFilter`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct TimeRangeFilter {
    /// Unique id.
    pub filter_id: String,
    /// A date or timestamp column.
    pub column: Column,
    /// `ALL_VALUES` | `NULLS_ONLY` | `NON_NULLS_ONLY`.
    pub null_option: String,
    /// Lower bound (e.g. a rolling date), as QuickSight's JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range_minimum_value: Option<serde_json::Value>,
    /// Upper bound, as QuickSight's JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range_maximum_value: Option<serde_json::Value>,
    /// Whether the lower bound is included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_minimum: Option<bool>,
    /// Whether the upper bound is included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_maximum: Option<bool>,
    /// `DAY`, `HOUR`, …
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_granularity: Option<String>,
}

/// `CategoryFilter`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct CategoryFilter {
    /// Unique id.
    pub filter_id: String,
    /// A string column.
    pub column: Column,
    /// `CategoryFilterConfiguration`, as QuickSight's JSON.
    pub configuration: serde_json::Value,
}

impl Filter {
    /// The filter id.
    pub fn filter_id(&self) -> &str {
        match self {
            Filter::TimeRange(f) => &f.filter_id,
            Filter::Category(f) => &f.filter_id,
        }
    }
    /// The filtered column.
    pub fn column(&self) -> &Column {
        match self {
            Filter::TimeRange(f) => &f.column,
            Filter::Category(f) => &f.column,
        }
    }
}
