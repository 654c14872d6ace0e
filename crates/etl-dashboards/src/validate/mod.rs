//! `etl dashboards validate`: the definitions against the views' actual output schemas.
//!
//! Checks, each reported with the file and the JSON path:
//! - data sets: id = file stem, one `RelationalTable` over an existing view, every
//!   `InputColumn` a column of the view with the QuickSight type of its Arrow type, the data
//!   source ARN, `SPICE` with a refresh schedule or `DIRECT_QUERY` without one;
//! - dashboards: identifiers (data set identifiers, sheets, visuals, field ids, filter groups,
//!   filters) unique; every column a visual or filter uses declared, existing in the data set's
//!   view, and of a type the field kind accepts; the field wells of each visual kind; one grid
//!   layout per sheet placing every visual once, `ColumnSpan` 1-36, `RowSpan` 1-21, inside the
//!   36 columns and without overlaps; filter scopes naming existing sheets.

use crate::error::Issue;
use crate::model::{Column, DimensionField, Filter, MeasureField, Visual};
use crate::project::{stem, Project};
use arrow::datatypes::{DataType, SchemaRef};
use std::collections::{BTreeMap, BTreeSet};

mod layout;

/// The QuickSight type of an Arrow column type (`None`: QuickSight skips such columns).
pub fn quicksight_type(data_type: &DataType) -> Option<&'static str> {
    match data_type {
        DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8 => Some("STRING"),
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32 => Some("INTEGER"),
        DataType::Decimal128(_, _) | DataType::Float32 | DataType::Float64 => Some("DECIMAL"),
        DataType::Date32 | DataType::Date64 | DataType::Timestamp(_, _) => Some("DATETIME"),
        _ => None,
    }
}

/// Every problem of `project` against `views` (view name → output schema). Empty = valid.
pub fn validate(project: &Project, views: &BTreeMap<String, SchemaRef>) -> Vec<Issue> {
    let mut v = Validator {
        issues: Vec::new(),
        file: String::new(),
    };
    v.data_source(project);
    v.data_sets(project, views);
    let mut dashboard_ids = BTreeSet::new();
    for dashboard in &project.dashboards {
        v.file = dashboard.file.clone();
        if !dashboard_ids.insert(dashboard.value.dashboard_id.clone()) {
            v.issue(
                "$.DashboardId",
                format!(
                    "dashboard id `{}` is used by another file",
                    dashboard.value.dashboard_id
                ),
            );
        }
        if dashboard.value.dashboard_id != stem(&dashboard.file) {
            v.issue(
                "$.DashboardId",
                format!(
                    "`{}` must equal the file name without `.json` (`{}`)",
                    dashboard.value.dashboard_id,
                    stem(&dashboard.file)
                ),
            );
        }
        v.dashboard(project, views, &dashboard.value.definition);
    }
    v.issues
}

/// The columns of a data set as QuickSight sees them: name → QuickSight type, from the view.
type Columns = BTreeMap<String, &'static str>;

struct Validator {
    issues: Vec<Issue>,
    file: String,
}

impl Validator {
    fn issue(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.issues.push(Issue {
            file: self.file.clone(),
            path: path.into(),
            message: message.into(),
        });
    }

    fn data_source(&mut self, project: &Project) {
        let ds = &project.data_source;
        self.file = ds.file.clone();
        if ds.value.r#type != "REDSHIFT" {
            self.issue(
                "$.Type",
                format!(
                    "`{}`: the curated views live in Redshift; use `REDSHIFT`",
                    ds.value.r#type
                ),
            );
        }
        if ds
            .value
            .data_source_parameters
            .get("RedshiftParameters")
            .is_none()
        {
            self.issue(
                "$.DataSourceParameters",
                "needs `RedshiftParameters` (Host, Port, Database)",
            );
        }
    }

    fn data_sets(&mut self, project: &Project, views: &BTreeMap<String, SchemaRef>) {
        let source_suffix = format!(":datasource/{}", project.data_source.value.data_source_id);
        for file in &project.data_sets {
            self.file = file.file.clone();
            let ds = &file.value;
            if ds.data_set_id != stem(&file.file) {
                self.issue(
                    "$.DataSetId",
                    format!(
                        "`{}` must equal the file name without `.json` (`{}`)",
                        ds.data_set_id,
                        stem(&file.file)
                    ),
                );
            }
            match (ds.import_mode.as_str(), &ds.refresh_schedule) {
                ("SPICE", _) | ("DIRECT_QUERY", None) => {}
                ("DIRECT_QUERY", Some(_)) => self.issue(
                    "$.RefreshSchedule",
                    "a DIRECT_QUERY data set is not refreshed; drop the schedule or use SPICE",
                ),
                (other, _) => self.issue(
                    "$.ImportMode",
                    format!("`{other}`: use SPICE or DIRECT_QUERY"),
                ),
            }
            if ds.physical_table_map.len() != 1 {
                self.issue(
                    "$.PhysicalTableMap",
                    format!(
                        "has {} tables; a data set here reads exactly one view",
                        ds.physical_table_map.len()
                    ),
                );
            }
            for (key, table) in &ds.physical_table_map {
                let t = &table.relational_table;
                let base = format!("$.PhysicalTableMap.{key}.RelationalTable");
                if !t.data_source_arn.ends_with(&source_suffix) {
                    self.issue(
                        format!("{base}.DataSourceArn"),
                        format!(
                            "`{}` does not end with `{source_suffix}` (datasource.json)",
                            t.data_source_arn
                        ),
                    );
                }
                let Some(schema) = views.get(&t.name) else {
                    self.issue(
                        format!("{base}.Name"),
                        format!(
                            "`{}` is not a curated view; views: {}",
                            t.name,
                            views.keys().cloned().collect::<Vec<_>>().join(", ")
                        ),
                    );
                    continue;
                };
                let mut seen = BTreeSet::new();
                for (i, c) in t.input_columns.iter().enumerate() {
                    let path = format!("{base}.InputColumns[{i}]");
                    if !seen.insert(c.name.clone()) {
                        self.issue(
                            format!("{path}.Name"),
                            format!("column `{}` is listed twice", c.name),
                        );
                    }
                    match schema.field_with_name(&c.name) {
                        Err(_) => self.issue(format!("{path}.Name"), format!("`{}` is not a column of view {}; its columns: {}", c.name, t.name, column_list(schema))),
                        Ok(field) => match quicksight_type(field.data_type()) {
                            Some(qs) if qs == c.r#type => {}
                            Some(qs) => self.issue(format!("{path}.Type"), format!("`{}` is {} in view {}, so QuickSight reads it as {qs}, not {}", c.name, field.data_type(), t.name, c.r#type)),
                            None => self.issue(format!("{path}.Type"), format!("`{}` has type {} in view {}, which QuickSight cannot read; cast it in the view", c.name, field.data_type(), t.name)),
                        },
                    }
                }
            }
        }
    }

    /// The columns (with QuickSight types) of the data set an identifier declares: the
    /// `InputColumns` that exist in the view with the right type.
    fn declared_columns(
        project: &Project,
        views: &BTreeMap<String, SchemaRef>,
        data_set_id: &str,
    ) -> Option<(String, Columns)> {
        let ds = project.data_set(data_set_id)?;
        let table = ds.value.table()?;
        let schema = views.get(&table.name);
        let mut cols = Columns::new();
        for c in &table.input_columns {
            if let Some(field) = schema.and_then(|s| s.field_with_name(&c.name).ok()) {
                if let Some(qs) = quicksight_type(field.data_type()) {
                    cols.insert(c.name.clone(), qs);
                }
            }
        }
        Some((table.name.clone(), cols))
    }

    fn dashboard(
        &mut self,
        project: &Project,
        views: &BTreeMap<String, SchemaRef>,
        def: &crate::model::Definition,
    ) {
        // Data set identifiers → (view, columns).
        let mut data_sets: BTreeMap<String, (String, Columns)> = BTreeMap::new();
        for (i, d) in def.data_set_identifier_declarations.iter().enumerate() {
            let path = format!("$.Definition.DataSetIdentifierDeclarations[{i}]");
            if data_sets.contains_key(&d.identifier) {
                self.issue(
                    format!("{path}.Identifier"),
                    format!("identifier `{}` is declared twice", d.identifier),
                );
                continue;
            }
            let Some(id) = d.data_set_id() else {
                self.issue(
                    format!("{path}.DataSetArn"),
                    format!(
                        "`{}` is not a data set ARN (…:dataset/<id>)",
                        d.data_set_arn
                    ),
                );
                continue;
            };
            match Self::declared_columns(project, views, id) {
                Some(cols) => {
                    data_sets.insert(d.identifier.clone(), cols);
                }
                None => self.issue(
                    format!("{path}.DataSetArn"),
                    format!(
                        "unknown data set `{id}`: no datasets/{id}.json; data sets: {}",
                        project
                            .data_sets
                            .iter()
                            .map(|d| d.value.data_set_id.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ),
            }
        }

        let mut ids = BTreeSet::new();
        let mut sheets = BTreeSet::new();
        for (s, sheet) in def.sheets.iter().enumerate() {
            let sp = format!("$.Definition.Sheets[{s}]");
            if !sheets.insert(sheet.sheet_id.clone()) {
                self.issue(
                    format!("{sp}.SheetId"),
                    format!("sheet id `{}` is used twice", sheet.sheet_id),
                );
            }
            let mut visual_ids = BTreeSet::new();
            for (i, visual) in sheet.visuals.iter().enumerate() {
                let (kind, id) = visual_kind_and_id(visual);
                let vp = format!("{sp}.Visuals[{i}].{kind}");
                if !ids.insert(id.to_string()) {
                    self.issue(
                        format!("{vp}.VisualId"),
                        format!("identifier `{id}` is used twice"),
                    );
                }
                visual_ids.insert(id.to_string());
                self.visual(visual, &vp, &data_sets, &mut ids);
            }
            self.layout(sheet, &sp, &visual_ids);
        }

        for (g, group) in def.filter_groups.iter().enumerate() {
            let gp = format!("$.Definition.FilterGroups[{g}]");
            if !ids.insert(group.filter_group_id.clone()) {
                self.issue(
                    format!("{gp}.FilterGroupId"),
                    format!("identifier `{}` is used twice", group.filter_group_id),
                );
            }
            let scoped = group
                .scope_configuration
                .pointer("/SelectedSheets/SheetVisualScopingConfigurations")
                .and_then(|v| v.as_array());
            match scoped {
                None => self.issue(
                    format!("{gp}.ScopeConfiguration"),
                    "needs SelectedSheets.SheetVisualScopingConfigurations",
                ),
                Some(list) => {
                    for (k, item) in list.iter().enumerate() {
                        let sheet = item
                            .get("SheetId")
                            .and_then(|v| v.as_str())
                            .unwrap_or_default();
                        if !sheets.contains(sheet) {
                            self.issue(format!("{gp}.ScopeConfiguration.SelectedSheets.SheetVisualScopingConfigurations[{k}].SheetId"), format!("`{sheet}` is not a sheet of this dashboard"));
                        }
                    }
                }
            }
            for (f, filter) in group.filters.iter().enumerate() {
                let (kind, wanted) = match filter {
                    Filter::TimeRange(_) => ("TimeRangeFilter", "DATETIME"),
                    Filter::Category(_) => ("CategoryFilter", "STRING"),
                };
                let fp = format!("{gp}.Filters[{f}].{kind}");
                if !ids.insert(filter.filter_id().to_string()) {
                    self.issue(
                        format!("{fp}.FilterId"),
                        format!("identifier `{}` is used twice", filter.filter_id()),
                    );
                }
                self.column(
                    filter.column(),
                    &format!("{fp}.Column"),
                    &data_sets,
                    &[wanted],
                    kind,
                );
            }
        }
    }

    fn visual(
        &mut self,
        visual: &Visual,
        vp: &str,
        data_sets: &BTreeMap<String, (String, Columns)>,
        ids: &mut BTreeSet<String>,
    ) {
        let wells = crate::wells::Wells::of(visual);
        let cp = format!("{vp}.ChartConfiguration.FieldWells{}", wells.prefix);
        for (name, count, min, max) in wells.counts() {
            if count < min || count > max {
                let want = if min == max {
                    format!("exactly {min}")
                } else {
                    format!("{min} to {max}")
                };
                self.issue(
                    format!("{cp}.{name}"),
                    format!("has {count} field(s); a {} takes {want}", wells.kind),
                );
            }
        }
        let mut data_set_used: Option<String> = None;
        let mut field_ids = BTreeSet::new();
        for (well, i, dim) in wells.dimensions() {
            let path = format!("{cp}.{well}[{i}].{}", dim.kind());
            let wanted: &[&str] = match dim {
                DimensionField::Categorical(_) => &["STRING"],
                DimensionField::Date(_) => &["DATETIME"],
                DimensionField::Numerical(_) => &["INTEGER", "DECIMAL"],
            };
            if let DimensionField::Date(d) = dim {
                let g = d.date_granularity.as_deref().unwrap_or("DAY");
                if !crate::query::GRANULARITIES.contains(&g) {
                    self.issue(
                        format!("{path}.DateGranularity"),
                        format!(
                            "`{g}`: use one of {}",
                            crate::query::GRANULARITIES.join(", ")
                        ),
                    );
                }
            }
            self.field(
                dim.field_id(),
                dim.column(),
                &path,
                data_sets,
                wanted,
                dim.kind(),
                ids,
                &mut field_ids,
                &mut data_set_used,
            );
        }
        for (well, i, m) in wells.measures() {
            let (kind, wanted): (&str, &[&str]) = match m {
                MeasureField::Numerical(n) => {
                    let agg = n.aggregation_function.as_ref();
                    let simple = agg.and_then(|a| a.simple_numerical_aggregation.as_deref());
                    let pct = agg.and_then(|a| a.percentile_aggregation.as_ref());
                    let ap = format!("{cp}.{well}[{i}].NumericalMeasureField.AggregationFunction");
                    match (simple, pct) {
                        (Some(_), Some(_)) => self.issue(
                            ap,
                            "set SimpleNumericalAggregation or PercentileAggregation, not both",
                        ),
                        (Some(s), None) if !crate::query::SIMPLE_AGGREGATIONS.contains(&s) => self
                            .issue(
                                format!("{ap}.SimpleNumericalAggregation"),
                                format!(
                                    "`{s}`: use one of {}",
                                    crate::query::SIMPLE_AGGREGATIONS.join(", ")
                                ),
                            ),
                        (None, Some(p)) if !(0.0..=100.0).contains(&p.percentile_value) => self
                            .issue(
                                format!("{ap}.PercentileAggregation.PercentileValue"),
                                format!("{} is not within 0-100", p.percentile_value),
                            ),
                        _ => {}
                    }
                    ("NumericalMeasureField", &["INTEGER", "DECIMAL"])
                }
                MeasureField::Categorical(c) => {
                    if let Some(a) = &c.aggregation_function {
                        if a != "COUNT" && a != "DISTINCT_COUNT" {
                            self.issue(
                                format!(
                                    "{cp}.{well}[{i}].CategoricalMeasureField.AggregationFunction"
                                ),
                                format!("`{a}`: use COUNT or DISTINCT_COUNT"),
                            );
                        }
                    }
                    (
                        "CategoricalMeasureField",
                        &["STRING", "INTEGER", "DECIMAL", "DATETIME"],
                    )
                }
            };
            let path = format!("{cp}.{well}[{i}].{kind}");
            self.field(
                m.field_id(),
                m.column(),
                &path,
                data_sets,
                wanted,
                kind,
                ids,
                &mut field_ids,
                &mut data_set_used,
            );
        }
        for (path, field_id) in wells.sorts() {
            if !field_ids.contains(field_id) {
                self.issue(
                    format!("{vp}.ChartConfiguration.{path}"),
                    format!("`{field_id}` is not a FieldId of this visual"),
                );
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn field(
        &mut self,
        field_id: &str,
        column: &Column,
        path: &str,
        data_sets: &BTreeMap<String, (String, Columns)>,
        wanted: &[&str],
        kind: &str,
        ids: &mut BTreeSet<String>,
        field_ids: &mut BTreeSet<String>,
        data_set_used: &mut Option<String>,
    ) {
        if !ids.insert(field_id.to_string()) {
            self.issue(
                format!("{path}.FieldId"),
                format!("identifier `{field_id}` is used twice"),
            );
        }
        field_ids.insert(field_id.to_string());
        match data_set_used.clone() {
            Some(first) if first != column.data_set_identifier => self.issue(
                format!("{path}.Column.DataSetIdentifier"),
                format!(
                    "`{}`: a visual reads one data set, and this one already reads `{first}`",
                    column.data_set_identifier
                ),
            ),
            Some(_) => {}
            None => *data_set_used = Some(column.data_set_identifier.clone()),
        }
        self.column(column, &format!("{path}.Column"), data_sets, wanted, kind);
    }

    fn column(
        &mut self,
        column: &Column,
        path: &str,
        data_sets: &BTreeMap<String, (String, Columns)>,
        wanted: &[&str],
        kind: &str,
    ) {
        let Some((view, cols)) = data_sets.get(&column.data_set_identifier) else {
            self.issue(
                format!("{path}.DataSetIdentifier"),
                format!(
                    "unknown data set identifier `{}`; declared: {}",
                    column.data_set_identifier,
                    data_sets.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            );
            return;
        };
        match cols.get(&column.column_name) {
            None => self.issue(
                format!("{path}.ColumnName"),
                format!(
                    "`{}` is not a column of data set `{}` (view {view}); its columns: {}",
                    column.column_name,
                    column.data_set_identifier,
                    cols.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            ),
            Some(t) if !wanted.contains(t) => self.issue(
                format!("{path}.ColumnName"),
                format!(
                    "`{}` of view {view} is {t}, but a {kind} needs {}",
                    column.column_name,
                    wanted.join(" or ")
                ),
            ),
            Some(_) => {}
        }
    }
}

fn column_list(schema: &SchemaRef) -> String {
    schema
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// QuickSight's name of a visual's kind and its id.
pub fn visual_kind_and_id(visual: &Visual) -> (&'static str, &str) {
    match visual {
        Visual::Kpi(v) => ("KPIVisual", &v.visual_id),
        Visual::Line(v) => ("LineChartVisual", &v.visual_id),
        Visual::Bar(v) => ("BarChartVisual", &v.visual_id),
        Visual::Pie(v) => ("PieChartVisual", &v.visual_id),
        Visual::Table(v) => ("TableVisual", &v.visual_id),
    }
}
