//! One view over the field wells of every visual kind, for the validator and the renderer.

use crate::model::{DimensionField, FieldSortOptions, MeasureField, Visual};

/// The field wells of one visual.
pub struct Wells<'a> {
    /// QuickSight's name of the visual kind.
    pub kind: &'static str,
    /// Path from `FieldWells` to the wells, e.g. `.BarChartAggregatedFieldWells`.
    pub prefix: &'static str,
    /// Name of the well of `dims` (`Category`, `GroupBy`, `TrendGroups`).
    pub dims_name: &'static str,
    /// The category / group-by / trend dimensions.
    pub dims: &'a [DimensionField],
    /// The colour dimension (one series per value), line and bar charts only.
    pub colors: &'a [DimensionField],
    /// The measures.
    pub values: &'a [MeasureField],
    /// Sorts: (path from `ChartConfiguration`, field id, direction).
    pub sort: Vec<(String, &'a str, &'a str)>,
}

fn sorts<'a>(name: &str, list: &'a [FieldSortOptions]) -> Vec<(String, &'a str, &'a str)> {
    list.iter()
        .enumerate()
        .map(|(i, s)| {
            (
                format!("SortConfiguration.{name}[{i}].FieldSort.FieldId"),
                s.field_sort.field_id.as_str(),
                s.field_sort.direction.as_str(),
            )
        })
        .collect()
}

impl<'a> Wells<'a> {
    /// The wells of `visual`.
    pub fn of(visual: &'a Visual) -> Wells<'a> {
        match visual {
            Visual::Kpi(v) => {
                let w = &v.chart_configuration.field_wells;
                Wells {
                    kind: "KPIVisual",
                    prefix: "",
                    dims_name: "TrendGroups",
                    dims: &w.trend_groups,
                    colors: &[],
                    values: &w.values,
                    sort: Vec::new(),
                }
            }
            Visual::Line(v) => {
                let w = &v
                    .chart_configuration
                    .field_wells
                    .line_chart_aggregated_field_wells;
                Wells {
                    kind: "LineChartVisual",
                    prefix: ".LineChartAggregatedFieldWells",
                    dims_name: "Category",
                    dims: &w.category,
                    colors: w.colors.as_deref().unwrap_or(&[]),
                    values: &w.values,
                    sort: Vec::new(),
                }
            }
            Visual::Bar(v) => {
                let c = &v.chart_configuration;
                let w = &c.field_wells.bar_chart_aggregated_field_wells;
                Wells {
                    kind: "BarChartVisual",
                    prefix: ".BarChartAggregatedFieldWells",
                    dims_name: "Category",
                    dims: &w.category,
                    colors: w.colors.as_deref().unwrap_or(&[]),
                    values: &w.values,
                    sort: c
                        .sort_configuration
                        .as_ref()
                        .map(|s| sorts("CategorySort", &s.category_sort))
                        .unwrap_or_default(),
                }
            }
            Visual::Pie(v) => {
                let w = &v
                    .chart_configuration
                    .field_wells
                    .pie_chart_aggregated_field_wells;
                Wells {
                    kind: "PieChartVisual",
                    prefix: ".PieChartAggregatedFieldWells",
                    dims_name: "Category",
                    dims: &w.category,
                    colors: w.colors.as_deref().unwrap_or(&[]),
                    values: &w.values,
                    sort: Vec::new(),
                }
            }
            Visual::Table(v) => {
                let c = &v.chart_configuration;
                let w = &c.field_wells.table_aggregated_field_wells;
                Wells {
                    kind: "TableVisual",
                    prefix: ".TableAggregatedFieldWells",
                    dims_name: "GroupBy",
                    dims: &w.group_by,
                    colors: &[],
                    values: &w.values,
                    sort: c
                        .sort_configuration
                        .as_ref()
                        .map(|s| sorts("RowSort", &s.row_sort))
                        .unwrap_or_default(),
                }
            }
        }
    }

    /// (well, count, min, max) of each well, for the validator.
    pub fn counts(&self) -> Vec<(&'static str, usize, usize, usize)> {
        let (dims, values, colors) = match self.kind {
            "KPIVisual" => ((0, 1), (1, 1), (0, 0)),
            "PieChartVisual" => ((1, 1), (1, 1), (0, 0)),
            "TableVisual" => (
                (0, 10),
                (if self.dims.is_empty() { 1 } else { 0 }, 20),
                (0, 0),
            ),
            // Line and bar: one series per colour value, or one per measure, not both.
            _ => (
                (1, 1),
                (1, if self.colors.is_empty() { 5 } else { 1 }),
                (0, 1),
            ),
        };
        vec![
            (self.dims_name, self.dims.len(), dims.0, dims.1),
            ("Values", self.values.len(), values.0, values.1),
            ("Colors", self.colors.len(), colors.0, colors.1),
        ]
    }

    /// Every dimension with its well name and index.
    pub fn dimensions(&self) -> Vec<(&'static str, usize, &'a DimensionField)> {
        let mut out: Vec<_> = self
            .dims
            .iter()
            .enumerate()
            .map(|(i, d)| (self.dims_name, i, d))
            .collect();
        out.extend(
            self.colors
                .iter()
                .enumerate()
                .map(|(i, d)| ("Colors", i, d)),
        );
        out
    }

    /// Every measure with its well name and index.
    pub fn measures(&self) -> Vec<(&'static str, usize, &'a MeasureField)> {
        self.values
            .iter()
            .enumerate()
            .map(|(i, m)| ("Values", i, m))
            .collect()
    }

    /// (path, field id) of each sort.
    pub fn sorts(&self) -> Vec<(String, &'a str)> {
        self.sort.iter().map(|(p, f, _)| (p.clone(), *f)).collect()
    }
}
