//! The SQL a visual's field wells mean, and its result as labels and numbers.
//!
//! A visual groups its data set's view by its dimensions and aggregates its measures, as
//! QuickSight does: `SELECT <dims>, <aggregates> FROM <view> GROUP BY <dims> ORDER BY …`.
//! Dates are truncated to the field's granularity and shown as text that sorts in time order.

use crate::error::{DashboardError, Result};
use crate::model::{DimensionField, MeasureField, Visual};
use crate::wells::Wells;
use arrow::array::{Array, Float64Array, RecordBatch, StringArray};
use arrow::datatypes::DataType;
use etl_warehouse::LocalWarehouse;
use std::collections::BTreeMap;

/// Date granularities the renderer understands (and the validator accepts).
pub const GRANULARITIES: [&str; 7] = ["YEAR", "QUARTER", "MONTH", "WEEK", "DAY", "HOUR", "MINUTE"];

/// Simple aggregations the renderer understands (and the validator accepts).
pub const SIMPLE_AGGREGATIONS: [&str; 7] = [
    "SUM",
    "AVERAGE",
    "MIN",
    "MAX",
    "COUNT",
    "DISTINCT_COUNT",
    "MEDIAN",
];

/// A visual's data: one row per dimension combination.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Frame {
    /// Labels of the dimensions (category first, then colour), one `Vec` per row.
    pub dims: Vec<Vec<String>>,
    /// The measures, one `Vec` per row (`None` = NULL).
    pub values: Vec<Vec<Option<f64>>>,
}

fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

fn dimension_sql(dim: &DimensionField) -> String {
    let col = quote(&dim.column().column_name);
    match dim {
        DimensionField::Categorical(_) | DimensionField::Numerical(_) => {
            format!("CAST({col} AS VARCHAR)")
        }
        DimensionField::Date(d) => {
            let g = d.date_granularity.as_deref().unwrap_or("DAY");
            let format = match g {
                "YEAR" => "%Y",
                "QUARTER" | "MONTH" => "%Y-%m",
                "HOUR" => "%Y-%m-%d %H:00",
                "MINUTE" => "%Y-%m-%d %H:%M",
                _ => "%Y-%m-%d",
            };
            format!(
                "to_char(date_trunc('{}', CAST({col} AS TIMESTAMP)), '{format}')",
                g.to_ascii_lowercase()
            )
        }
    }
}

fn measure_sql(m: &MeasureField) -> String {
    let col = quote(&m.column().column_name);
    let agg = match m {
        MeasureField::Numerical(n) => {
            let f = n.aggregation_function.as_ref();
            match (
                f.and_then(|a| a.percentile_aggregation.as_ref()),
                f.and_then(|a| a.simple_numerical_aggregation.as_deref()),
            ) {
                (Some(p), _) => format!(
                    "percentile_cont({}) WITHIN GROUP (ORDER BY {col})",
                    p.percentile_value / 100.0
                ),
                (None, Some("AVERAGE")) => format!("AVG({col})"),
                (None, Some("MIN")) => format!("MIN({col})"),
                (None, Some("MAX")) => format!("MAX({col})"),
                (None, Some("COUNT")) => format!("COUNT({col})"),
                (None, Some("DISTINCT_COUNT")) => format!("COUNT(DISTINCT {col})"),
                (None, Some("MEDIAN")) => format!("median({col})"),
                _ => format!("SUM({col})"),
            }
        }
        MeasureField::Categorical(c) => match c.aggregation_function.as_deref() {
            Some("DISTINCT_COUNT") => format!("COUNT(DISTINCT {col})"),
            _ => format!("COUNT({col})"),
        },
    };
    format!("CAST({agg} AS DOUBLE)")
}

/// The SQL of `visual`; `views` maps data set identifiers to view names.
pub fn visual_sql(visual: &Visual, views: &BTreeMap<String, String>) -> Result<String> {
    let wells = Wells::of(visual);
    let (_, visual_id) = crate::validate::visual_kind_and_id(visual);
    let identifier = wells
        .dimensions()
        .first()
        .map(|(_, _, d)| d.column().data_set_identifier.clone())
        .or_else(|| {
            wells
                .values
                .first()
                .map(|m| m.column().data_set_identifier.clone())
        })
        .ok_or_else(|| DashboardError::Data {
            what: format!("visual {visual_id}"),
            message: "has no fields".into(),
        })?;
    let view = views.get(&identifier).ok_or_else(|| DashboardError::Data {
        what: format!("visual {visual_id}"),
        message: format!("data set identifier `{identifier}` is not declared"),
    })?;
    let dims: Vec<&DimensionField> = wells.dimensions().into_iter().map(|(_, _, d)| d).collect();
    let mut select = Vec::new();
    let mut alias: BTreeMap<&str, String> = BTreeMap::new();
    for (i, d) in dims.iter().enumerate() {
        select.push(format!("{} AS d{i}", dimension_sql(d)));
        alias.insert(d.field_id(), format!("d{i}"));
    }
    for (j, m) in wells.values.iter().enumerate() {
        select.push(format!("{} AS m{j}", measure_sql(m)));
        alias.insert(m.field_id(), format!("m{j}"));
    }
    let mut sql = format!("SELECT {} FROM {}", select.join(", "), quote(view));
    if !dims.is_empty() {
        let all: Vec<String> = (1..=dims.len()).map(|i| i.to_string()).collect();
        sql.push_str(&format!(" GROUP BY {}", all.join(", ")));
        let mut order: Vec<String> = wells
            .sort
            .iter()
            .filter_map(|(_, field, dir)| {
                alias
                    .get(field)
                    .map(|a| format!("{a} {}", if *dir == "DESC" { "DESC" } else { "ASC" }))
            })
            .collect();
        order.extend((0..dims.len()).map(|i| format!("d{i}")));
        sql.push_str(&format!(" ORDER BY {}", order.join(", ")));
    }
    Ok(sql)
}

/// Runs `sql` (from [`visual_sql`]) and reads `d*` columns as labels, `m*` as numbers.
pub async fn run(warehouse: &LocalWarehouse, what: &str, sql: &str) -> Result<Frame> {
    let batches = warehouse
        .query(sql)
        .await
        .map_err(|source| DashboardError::Warehouse {
            what: what.to_string(),
            source,
        })?;
    frame(what, &batches)
}

fn frame(what: &str, batches: &[RecordBatch]) -> Result<Frame> {
    let err = |message: String| DashboardError::Data {
        what: what.to_string(),
        message,
    };
    let mut out = Frame::default();
    for batch in batches {
        let schema = batch.schema();
        let mut dim_cols = Vec::new();
        let mut val_cols = Vec::new();
        for (i, field) in schema.fields().iter().enumerate() {
            let col = batch.column(i);
            if field.name().starts_with('d') {
                let cast = arrow::compute::cast(col, &DataType::Utf8)
                    .map_err(|e| err(format!("column {}: {e}", field.name())))?;
                dim_cols.push(cast);
            } else {
                let cast = arrow::compute::cast(col, &DataType::Float64)
                    .map_err(|e| err(format!("column {}: {e}", field.name())))?;
                val_cols.push(cast);
            }
        }
        for row in 0..batch.num_rows() {
            let mut dims = Vec::with_capacity(dim_cols.len());
            for c in &dim_cols {
                let s = c
                    .as_any()
                    .downcast_ref::<StringArray>()
                    .ok_or_else(|| err("a label column is not text".into()))?;
                dims.push(if s.is_null(row) {
                    "(empty)".to_string()
                } else {
                    s.value(row).to_string()
                });
            }
            let mut values = Vec::with_capacity(val_cols.len());
            for c in &val_cols {
                let f = c
                    .as_any()
                    .downcast_ref::<Float64Array>()
                    .ok_or_else(|| err("a measure column is not a number".into()))?;
                values.push((!f.is_null(row)).then(|| f.value(row)));
            }
            out.dims.push(dims);
            out.values.push(values);
        }
    }
    Ok(out)
}
