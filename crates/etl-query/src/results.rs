//! Athena's result pages → typed Arrow columns.
//!
//! `GetQueryResults` returns every cell as text (`VarCharValue`; absent = NULL) and the column
//! types in `ResultSetMetadata.ColumnInfo`. [`ResultBuilder`] collects the pages, skips the
//! header row of the first page after checking it against the column names, and builds one
//! Arrow column per `ColumnInfo` with the type [`arrow_type`] gives; a cell that does not parse
//! as its column's type is an error naming the column and row (never a silent NULL).

use arrow::array::{ArrayRef, RecordBatch, StringArray};
use arrow::compute::{cast_with_options, CastOptions};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use std::sync::Arc;

/// One column of an Athena result: `ColumnInfo.Name`, `Type`, `Precision`, `Scale`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AthenaColumn {
    /// Column name.
    pub name: String,
    /// Athena (Trino) type name, e.g. `varchar`, `bigint`, `timestamp`, `decimal`.
    pub type_name: String,
    /// Precision (decimals).
    pub precision: i32,
    /// Scale (decimals).
    pub scale: i32,
}

impl From<&etl_aws::athena::types::ColumnInfo> for AthenaColumn {
    fn from(c: &etl_aws::athena::types::ColumnInfo) -> Self {
        AthenaColumn {
            name: c.name().to_string(),
            type_name: c.r#type().to_string(),
            precision: c.precision(),
            scale: c.scale(),
        }
    }
}

/// The Arrow type of an Athena column type. Types without an exact Arrow counterpart
/// (`varchar`, `char`, `json`, `array`, `map`, `row`, `varbinary`, `time`, intervals,
/// `timestamp with time zone`, `ipaddress`, `uuid`) stay text, as Athena printed them.
pub fn arrow_type(column: &AthenaColumn) -> DataType {
    match column.type_name.to_ascii_lowercase().as_str() {
        "boolean" => DataType::Boolean,
        "tinyint" => DataType::Int8,
        "smallint" => DataType::Int16,
        "integer" | "int" => DataType::Int32,
        "bigint" => DataType::Int64,
        "real" | "float" => DataType::Float32,
        "double" => DataType::Float64,
        "date" => DataType::Date32,
        "timestamp" => DataType::Timestamp(TimeUnit::Millisecond, None),
        "decimal" if (1..=38).contains(&column.precision) && column.scale >= 0 => {
            DataType::Decimal128(column.precision as u8, column.scale as i8)
        }
        _ => DataType::Utf8,
    }
}

/// Collects result pages of one query execution.
#[derive(Debug)]
pub struct ResultBuilder {
    execution_id: String,
    columns: Option<Vec<AthenaColumn>>,
    cells: Vec<Vec<Option<String>>>,
    rows: usize,
    expect_header: bool,
    first_page: bool,
}

impl ResultBuilder {
    /// A builder for `execution_id`. `expect_header`: the statement is a query (`DML`), whose
    /// first row is the column names; for other statements a first row equal to the names is
    /// skipped too, and any other first row is data.
    pub fn new(execution_id: &str, expect_header: bool) -> Self {
        ResultBuilder {
            execution_id: execution_id.to_string(),
            columns: None,
            cells: Vec::new(),
            rows: 0,
            expect_header,
            first_page: true,
        }
    }

    fn bad(&self, message: String) -> crate::QueryError {
        crate::QueryError::BadResult {
            execution_id: self.execution_id.clone(),
            message,
        }
    }

    /// Adds one page: its `ColumnInfo` and its rows (each a list of optional cell texts).
    pub fn add_page(
        &mut self,
        columns: Vec<AthenaColumn>,
        rows: Vec<Vec<Option<String>>>,
    ) -> Result<(), crate::QueryError> {
        match &self.columns {
            None => {
                self.cells = vec![Vec::new(); columns.len()];
                self.columns = Some(columns);
            }
            Some(known) if *known != columns && !columns.is_empty() => {
                return Err(self.bad(format!(
                    "the column metadata changed between result pages ({} columns, then {})",
                    known.len(),
                    columns.len()
                )));
            }
            Some(_) => {}
        }
        let names: Vec<String> = self
            .columns
            .as_ref()
            .map(|c| c.iter().map(|c| c.name.clone()).collect())
            .unwrap_or_default();
        let mut rows = rows.into_iter();
        if std::mem::take(&mut self.first_page) {
            let mut rest = rows.clone();
            if let Some(first) = rest.next() {
                let matches = first.len() == names.len()
                    && first.iter().zip(&names).all(|(cell, name)| {
                        cell.as_deref()
                            .is_some_and(|c| c.eq_ignore_ascii_case(name))
                    });
                if matches {
                    rows = rest;
                } else if self.expect_header {
                    return Err(self.bad(format!(
                        "the first result row should repeat the column names {names:?} but is {first:?}"
                    )));
                }
            }
        }
        for row in rows {
            if row.len() != names.len() {
                return Err(self.bad(format!(
                    "result row {} has {} cells for {} columns",
                    self.rows + 1,
                    row.len(),
                    names.len()
                )));
            }
            for (i, cell) in row.into_iter().enumerate() {
                self.cells[i].push(cell);
            }
            self.rows += 1;
        }
        Ok(())
    }

    /// Data rows collected so far (header excluded).
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// The typed result.
    pub fn finish(self) -> Result<(SchemaRef, Vec<RecordBatch>), crate::QueryError> {
        let columns = self.columns.clone().unwrap_or_default();
        let mut fields = Vec::with_capacity(columns.len());
        let mut arrays: Vec<ArrayRef> = Vec::with_capacity(columns.len());
        let options = CastOptions {
            safe: false,
            ..Default::default()
        };
        for (column, cells) in columns.iter().zip(&self.cells) {
            let target = arrow_type(column);
            let text: ArrayRef = Arc::new(StringArray::from(cells.clone()));
            let typed = if target == DataType::Utf8 {
                text
            } else {
                let normalized = normalize(&target, cells);
                cast_with_options(&normalized, &target, &options).map_err(|e| {
                    self.bad(format!(
                        "column {} ({}) holds a value that is not a {}: {e}",
                        column.name, column.type_name, column.type_name
                    ))
                })?
            };
            fields.push(Field::new(&column.name, target, true));
            arrays.push(typed);
        }
        let schema: SchemaRef = Arc::new(Schema::new(fields));
        if self.rows == 0 || columns.is_empty() {
            return Ok((schema, Vec::new()));
        }
        let batch = RecordBatch::try_new(Arc::clone(&schema), arrays)
            .map_err(|e| self.bad(format!("assembling the result: {e}")))?;
        Ok((schema, vec![batch]))
    }
}

/// Athena spells some values differently from what Arrow's casts parse: doubles `Infinity` /
/// `-Infinity` (Arrow: `inf`), booleans in lowercase (Arrow accepts them).
fn normalize(target: &DataType, cells: &[Option<String>]) -> ArrayRef {
    let fix = |s: &str| -> String {
        match (target, s) {
            (DataType::Float32 | DataType::Float64, "Infinity") => "inf".into(),
            (DataType::Float32 | DataType::Float64, "-Infinity") => "-inf".into(),
            _ => s.to_string(),
        }
    };
    Arc::new(StringArray::from(
        cells
            .iter()
            .map(|c| c.as_deref().map(fix))
            .collect::<Vec<_>>(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::{Float64Type, Int64Type, TimestampMillisecondType};

    fn col(name: &str, t: &str) -> AthenaColumn {
        AthenaColumn {
            name: name.into(),
            type_name: t.into(),
            precision: if t == "decimal" { 10 } else { 0 },
            scale: if t == "decimal" { 2 } else { 0 },
        }
    }

    fn row(cells: &[Option<&str>]) -> Vec<Option<String>> {
        cells.iter().map(|c| c.map(str::to_string)).collect()
    }

    #[test]
    fn header_is_skipped_and_values_are_typed_from_column_info() {
        let columns = vec![
            col("n", "bigint"),
            col("x", "double"),
            col("at", "timestamp"),
            col("d", "date"),
            col("ok", "boolean"),
            col("amount", "decimal"),
            col("s", "varchar"),
        ];
        let mut b = ResultBuilder::new("q1", true);
        b.add_page(
            columns.clone(),
            vec![
                row(&[
                    Some("n"),
                    Some("x"),
                    Some("at"),
                    Some("d"),
                    Some("ok"),
                    Some("amount"),
                    Some("s"),
                ]),
                row(&[
                    Some("7"),
                    Some("1.5"),
                    Some("2024-05-01 10:00:05.123"),
                    Some("2024-05-01"),
                    Some("true"),
                    Some("12.50"),
                    Some("n"),
                ]),
            ],
        )
        .unwrap();
        // A second page has no header: a row equal to the names is data there.
        b.add_page(
            columns,
            vec![row(&[
                None,
                Some("Infinity"),
                None,
                None,
                Some("false"),
                None,
                None,
            ])],
        )
        .unwrap();
        assert_eq!(b.rows(), 2);
        let (schema, batches) = b.finish().unwrap();
        assert_eq!(schema.field(0).data_type(), &DataType::Int64);
        assert_eq!(schema.field(5).data_type(), &DataType::Decimal128(10, 2));
        let batch = &batches[0];
        assert_eq!(batch.column(0).as_primitive::<Int64Type>().value(0), 7);
        assert!(batch.column(0).is_null(1));
        assert!(batch
            .column(1)
            .as_primitive::<Float64Type>()
            .value(1)
            .is_infinite());
        assert_eq!(
            batch
                .column(2)
                .as_primitive::<TimestampMillisecondType>()
                .value(0),
            1_714_557_605_123
        );
        assert!(!batch.column(4).as_boolean().value(1));
    }

    #[test]
    fn a_wrong_header_or_an_unparsable_value_is_an_error() {
        let mut b = ResultBuilder::new("q2", true);
        let e = b
            .add_page(vec![col("n", "bigint")], vec![row(&[Some("1")])])
            .unwrap_err();
        assert!(e.to_string().contains("repeat the column names"), "{e}");

        let mut b = ResultBuilder::new("q3", true);
        b.add_page(
            vec![col("n", "bigint")],
            vec![row(&[Some("n")]), row(&[Some("seven")])],
        )
        .unwrap();
        let e = b.finish().unwrap_err();
        assert!(e.to_string().contains("column n (bigint)"), "{e}");

        let mut b = ResultBuilder::new("q4", true);
        let e = b
            .add_page(
                vec![col("a", "varchar"), col("b", "varchar")],
                vec![row(&[Some("a"), Some("b")]), row(&[Some("x")])],
            )
            .unwrap_err();
        assert!(e.to_string().contains("1 cells for 2 columns"), "{e}");
    }

    #[test]
    fn a_statement_without_header_keeps_its_first_row() {
        let mut b = ResultBuilder::new("q5", false);
        b.add_page(
            vec![col("tab_name", "varchar")],
            vec![row(&[Some("call_events")])],
        )
        .unwrap();
        assert_eq!(b.rows(), 1);
    }
}
