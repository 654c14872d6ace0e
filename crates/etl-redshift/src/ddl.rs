//! DDL from `schemas/`: tables in Parquet column order, the load ledger, column additions and
//! the curated views.
//!
//! Column order is the lake (Parquet) order of [`StreamSchema::lake_columns`]; Redshift tables
//! get `DISTSTYLE AUTO` and a compound `SORTKEY` led by `occurred_at`. The
//! [`SqlFlavor::Postgres`] flavour leaves the Redshift table attributes out so the same DDL runs
//! on PostgreSQL (the test stand-in strips them as well).

use crate::error::RedshiftError;
use crate::ident::{qualified, Ident};
use etl_schema::StreamSchema;
use etl_warehouse::LoadRequest;
use etl_warehouse::ViewDef;

/// Name of the load-ledger table (one row per loaded lake batch and table).
pub const LEDGER_TABLE: &str = "etl_load_ledger";

/// The table recording, per table, the batch its loading stopped at (data that cannot load);
/// what `etl warehouse status` shows as the last error.
pub const FAILURES_TABLE: &str = "etl_load_failures";

/// Which engine the SQL is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SqlFlavor {
    /// Amazon Redshift: `DISTSTYLE AUTO`, `SORTKEY (...)`.
    Redshift,
    /// PostgreSQL: the same statements without Redshift table attributes.
    Postgres,
}

/// One lake table as the warehouse sees it: validated names and types in Parquet order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableDef {
    /// Table name (the stream).
    pub name: Ident,
    /// Columns in Parquet order: name, Redshift type, nullable.
    pub columns: Vec<(Ident, String, bool)>,
}

impl TableDef {
    /// The table of `schema`; every name is checked with [`Ident::new`].
    pub fn from_schema(schema: &StreamSchema) -> Result<Self, RedshiftError> {
        let name = Ident::new("table", &schema.stream)?;
        let columns = schema
            .lake_columns()
            .into_iter()
            .map(|c| Ok((Ident::new("column", &c.name)?, c.redshift_type, c.nullable)))
            .collect::<Result<Vec<_>, RedshiftError>>()?;
        Ok(TableDef { name, columns })
    }

    /// Column names in Parquet order.
    pub fn column_names(&self) -> Vec<String> {
        self.columns
            .iter()
            .map(|(n, _, _)| n.as_str().to_string())
            .collect()
    }

    fn has(&self, column: &str) -> bool {
        self.columns.iter().any(|(n, _, _)| n.as_str() == column)
    }

    fn column_list(&self, with_types: bool) -> String {
        self.columns
            .iter()
            .map(|(n, ty, nullable)| match (with_types, nullable) {
                (false, _) => n.to_string(),
                (true, true) => format!("{n} {ty}"),
                (true, false) => format!("{n} {ty} NOT NULL"),
            })
            .collect::<Vec<_>>()
            .join(",\n  ")
    }

    /// `CREATE TABLE IF NOT EXISTS "schema"."table" (...)`, columns in Parquet order.
    pub fn create_sql(&self, schema: &Ident, flavor: SqlFlavor) -> String {
        let mut sql = format!(
            "CREATE TABLE IF NOT EXISTS {} (\n  {}\n)",
            qualified(schema, &self.name),
            self.column_list(true)
        );
        if flavor == SqlFlavor::Redshift {
            sql.push_str("\nDISTSTYLE AUTO");
            if self.has("occurred_at") {
                let second = if self.has("event_id") {
                    ", \"event_id\""
                } else {
                    ""
                };
                sql.push_str(&format!("\nCOMPOUND SORTKEY (\"occurred_at\"{second})"));
            } else {
                sql.push_str("\nSORTKEY AUTO");
            }
        }
        sql
    }

    /// A staging table with the same columns in the same (Parquet) order and no constraints
    /// beyond NOT NULL: `COPY` maps Parquet columns by position. Temporary, so it vanishes with
    /// the session even if the `DROP` never runs.
    pub fn create_staging_sql(&self, staging: &Ident) -> String {
        format!(
            "CREATE TEMP TABLE {staging} (\n  {}\n)",
            self.column_list(true)
        )
    }

    /// The columns of `existing` (names in table order) that this definition lacks; errors
    /// when `existing` is not a prefix-compatible subset (a column renamed, dropped or of an
    /// unknown name). Loads map staging to target by name, so the target's order may differ.
    pub fn missing_columns(
        &self,
        existing: &[String],
    ) -> Result<Vec<&(Ident, String, bool)>, RedshiftError> {
        let expected = self.column_names();
        if let Some(unknown) = existing.iter().find(|c| !expected.contains(c)) {
            tracing::warn!(
                table = self.name.as_str(),
                column = unknown.as_str(),
                "table has a column the schema lacks"
            );
            return Err(RedshiftError::ColumnMismatch {
                table: self.name.as_str().to_string(),
                found: existing.to_vec(),
                expected,
            });
        }
        Ok(self
            .columns
            .iter()
            .filter(|(n, _, _)| !existing.iter().any(|e| e == n.as_str()))
            .collect())
    }

    /// `ALTER TABLE ... ADD COLUMN` for each of `missing` (added columns are nullable: existing
    /// rows have no value).
    pub fn add_column_sqls(
        &self,
        schema: &Ident,
        missing: &[&(Ident, String, bool)],
    ) -> Vec<String> {
        missing
            .iter()
            .map(|(n, ty, _)| {
                format!(
                    "ALTER TABLE {} ADD COLUMN {n} {ty}",
                    qualified(schema, &self.name)
                )
            })
            .collect()
    }
}

impl TableDef {
    /// `ALTER TABLE … ALTER COLUMN … TYPE VARCHAR(n)` for every text column the warehouse holds
    /// narrower than the schema declares (`widths`: existing `VARCHAR` columns and their
    /// lengths), e.g. an event type column created as `VARCHAR(16)` before event types became an
    /// open set. Redshift can only widen `VARCHAR` columns, one statement at a time outside a
    /// transaction block; columns are never narrowed.
    pub fn widen_sqls(&self, schema: &Ident, widths: &[(String, i64)]) -> Vec<String> {
        self.columns
            .iter()
            .filter_map(|(name, ty, _)| {
                let want = varchar_width(ty)?;
                let (_, have) = widths.iter().find(|(n, _)| n == name.as_str())?;
                (*have < want).then(|| {
                    format!(
                        "ALTER TABLE {} ALTER COLUMN {name} TYPE {ty}",
                        qualified(schema, &self.name)
                    )
                })
            })
            .collect()
    }
}

impl TableDef {
    /// The table as a load of `request` sees it: its columns are the request's file columns in
    /// file order (COPY maps Parquet columns by position) when the request names them and they
    /// differ from the table's; a column the table does not know means a newer version wrote
    /// the batch.
    pub fn for_request(&self, request: &LoadRequest) -> Result<TableDef, RedshiftError> {
        if request.columns.is_empty() || request.columns == self.column_names() {
            return Ok(self.clone());
        }
        let unknown: Vec<&str> = request
            .columns
            .iter()
            .filter(|c| !self.has(c))
            .map(String::as_str)
            .collect();
        if !unknown.is_empty() {
            return Err(RedshiftError::NewerBatch {
                table: self.name.as_str().to_string(),
                batch_id: request.batch_id.clone(),
                columns: unknown.join(", "),
            });
        }
        let columns = request
            .columns
            .iter()
            .filter_map(|c| self.columns.iter().find(|(n, _, _)| n.as_str() == c))
            .cloned()
            .collect();
        Ok(TableDef {
            name: self.name.clone(),
            columns,
        })
    }
}

/// `n` of a `VARCHAR(n)` type.
fn varchar_width(ty: &str) -> Option<i64> {
    ty.strip_prefix("VARCHAR(")?.strip_suffix(')')?.parse().ok()
}

/// The query listing a table's `VARCHAR` columns and their lengths (parameters `:schema`,
/// `:table`).
pub const VARCHAR_WIDTHS_QUERY: &str =
    "SELECT column_name, CAST(character_maximum_length AS INTEGER) AS width \
     FROM information_schema.columns WHERE table_schema = :schema AND table_name = :table \
     AND data_type = 'character varying'";

/// `DROP VIEW IF EXISTS … CASCADE` of `views`, dependants first (before widening a column that
/// views read: PostgreSQL refuses to change a column a view uses; migrate recreates them).
pub fn drop_view_sqls(schema: &Ident, views: &[ViewDef]) -> Result<Vec<String>, RedshiftError> {
    Ok(view_sqls(schema, views)?
        .into_iter()
        .filter(|sql| sql.starts_with("DROP VIEW"))
        .collect())
}

/// `CREATE SCHEMA IF NOT EXISTS "schema"`.
pub fn create_schema_sql(schema: &Ident) -> String {
    format!("CREATE SCHEMA IF NOT EXISTS {schema}")
}

/// The load ledger: one row per (table, batch) loaded; the load's idempotency record.
pub fn create_ledger_sql(schema: &Ident, flavor: SqlFlavor) -> String {
    let mut sql = format!(
        "CREATE TABLE IF NOT EXISTS {}.\"{LEDGER_TABLE}\" (\n  \"table_name\" VARCHAR(128) NOT NULL,\n  \
         \"batch_id\" VARCHAR(512) NOT NULL,\n  \"rows_loaded\" BIGINT NOT NULL,\n  \"files\" INTEGER NOT NULL,\n  \
         \"loaded_at\" TIMESTAMP NOT NULL\n)",
        schema
    );
    if flavor == SqlFlavor::Redshift {
        sql.push_str("\nDISTSTYLE AUTO\nSORTKEY (\"loaded_at\")");
    }
    sql
}

/// The load failures table ([`FAILURES_TABLE`]): at most one row per table.
pub fn create_failures_sql(schema: &Ident, flavor: SqlFlavor) -> String {
    let mut sql = format!(
        "CREATE TABLE IF NOT EXISTS {schema}.\"{FAILURES_TABLE}\" (\n  \"table_name\" VARCHAR(128) NOT NULL,\n  \
         \"batch_id\" VARCHAR(512) NOT NULL,\n  \"message\" VARCHAR(4096) NOT NULL,\n  \
         \"failed_at\" TIMESTAMP NOT NULL\n)"
    );
    if flavor == SqlFlavor::Redshift {
        sql.push_str("\nDISTSTYLE ALL");
    }
    sql
}

/// Statements of the failure record: delete the table's row, then (with `:batch_id`,
/// `:message`, `:failed_at`) insert the new one; parameter `:table` in both.
pub fn failure_sqls(schema: &Ident) -> (String, String) {
    let table = format!("{schema}.\"{FAILURES_TABLE}\"");
    (
        format!("DELETE FROM {table} WHERE \"table_name\" = :table"),
        format!(
            "INSERT INTO {table} (\"table_name\", \"batch_id\", \"message\", \"failed_at\") \
             VALUES (:table, :batch_id, :message, CAST(:failed_at AS TIMESTAMP))"
        ),
    )
}

/// The recorded failures, one row per table: table, batch, message, time as text.
pub fn failures_query(schema: &Ident) -> String {
    format!(
        "SELECT \"table_name\", \"batch_id\", \"message\", CAST(\"failed_at\" AS VARCHAR(32)) \
         FROM {schema}.\"{FAILURES_TABLE}\" ORDER BY \"table_name\""
    )
}

/// Loaded batches of every table: count and the highest batch id, per table.
pub fn ledger_summary_query(schema: &Ident) -> String {
    format!(
        "SELECT \"table_name\", CAST(COUNT(*) AS BIGINT), MAX(\"batch_id\"), \
         CAST(MAX(\"loaded_at\") AS VARCHAR(32)) FROM {schema}.\"{LEDGER_TABLE}\" \
         GROUP BY \"table_name\" ORDER BY \"table_name\""
    )
}

/// The statements that (re)create `views` (already in dependency order) in `schema`: set the
/// search path (view bodies name tables unqualified), drop the views in reverse order, create
/// them in order. Run them as one transaction so readers see the old or the new set.
pub fn view_sqls(schema: &Ident, views: &[ViewDef]) -> Result<Vec<String>, RedshiftError> {
    let names = views
        .iter()
        .map(|v| Ident::new("view", &v.name))
        .collect::<Result<Vec<_>, _>>()?;
    let mut sqls = vec![format!("SET search_path TO {schema}")];
    for name in names.iter().rev() {
        sqls.push(format!(
            "DROP VIEW IF EXISTS {} CASCADE",
            qualified(schema, name)
        ));
    }
    for (view, name) in views.iter().zip(&names) {
        sqls.push(format!(
            "CREATE VIEW {} AS\n{}",
            qualified(schema, name),
            view.sql_body
        ));
    }
    Ok(sqls)
}

/// The query listing a table's columns in order (parameters `:schema`, `:table`).
pub const COLUMNS_QUERY: &str = "SELECT column_name FROM information_schema.columns \
     WHERE table_schema = :schema AND table_name = :table ORDER BY ordinal_position";

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::sql::sqlparser::dialect::RedshiftSqlDialect;
    use datafusion::sql::sqlparser::parser::Parser;

    fn calls() -> TableDef {
        let schemas = etl_schema::embedded().unwrap_or_default();
        let calls = schemas
            .iter()
            .find(|s| s.stream == "call_events")
            .map(TableDef::from_schema);
        match calls {
            Some(Ok(t)) => t,
            other => panic!("call_events schema: {other:?}"),
        }
    }

    #[test]
    fn narrower_varchar_columns_are_widened_never_narrowed() {
        let table = calls();
        let schema = Ident::new("schema", "analytics").expect("valid");
        let (name, ty, _) = table
            .columns
            .iter()
            .find(|(_, ty, _)| ty.starts_with("VARCHAR(") && ty != "VARCHAR(65535)")
            .expect("a bounded text column");
        let want = varchar_width(ty).expect("a width");
        let narrow = vec![(name.as_str().to_string(), want - 1)];
        let sqls = table.widen_sqls(&schema, &narrow);
        assert_eq!(
            sqls,
            vec![format!(
                "ALTER TABLE \"analytics\".\"call_events\" ALTER COLUMN {name} TYPE {ty}"
            )]
        );
        for sql in &sqls {
            Parser::parse_sql(&RedshiftSqlDialect {}, sql).expect("Redshift SQL");
        }
        let wide = vec![(name.as_str().to_string(), want + 10)];
        assert!(
            table.widen_sqls(&schema, &wide).is_empty(),
            "never narrowed"
        );
        assert!(table.widen_sqls(&schema, &[]).is_empty());
    }

    #[test]
    fn tables_follow_parquet_order_with_redshift_attributes() {
        let table = calls();
        let schema = Ident::new("schema", "analytics").expect("valid");
        let sql = table.create_sql(&schema, SqlFlavor::Redshift);
        assert!(sql.starts_with("CREATE TABLE IF NOT EXISTS \"analytics\".\"call_events\" (\n  \"event_id\" VARCHAR(128) NOT NULL,"), "{sql}");
        assert!(sql.contains("\"caller\" CHAR(64) NOT NULL"), "{sql}");
        assert!(sql.contains("\"quality_mos\" DOUBLE PRECISION,"), "{sql}");
        assert!(sql.ends_with("\"extras\" VARCHAR(65535),\n  \"arrived_at\" TIMESTAMP\n)\nDISTSTYLE AUTO\nCOMPOUND SORTKEY (\"occurred_at\", \"event_id\")"), "{sql}");
        let names = table.column_names();
        assert_eq!(names.first().map(String::as_str), Some("event_id"));
        assert_eq!(names.last().map(String::as_str), Some("arrived_at"));
        let pg = table.create_sql(&schema, SqlFlavor::Postgres);
        assert!(!pg.contains("DISTSTYLE") && !pg.contains("SORTKEY"), "{pg}");
        Parser::parse_sql(&RedshiftSqlDialect {}, &pg)
            .expect("the PostgreSQL flavour parses as Redshift");
    }

    #[test]
    fn missing_columns_are_added_and_unknown_ones_refused() {
        let table = calls();
        let schema = Ident::new("schema", "analytics").expect("valid");
        let existing = vec!["event_id".to_string(), "call_id".to_string()];
        let missing = table.missing_columns(&existing).expect("a subset");
        assert_eq!(missing.len(), table.columns.len() - 2);
        let sqls = table.add_column_sqls(&schema, &missing);
        assert_eq!(
            sqls[0],
            "ALTER TABLE \"analytics\".\"call_events\" ADD COLUMN \"event_type\" VARCHAR(16)"
        );
        let err = table
            .missing_columns(&["event_id".into(), "legacy".into()])
            .expect_err("unknown column");
        assert!(err.to_string().contains("legacy"), "{err}");
    }

    #[test]
    fn views_are_dropped_in_reverse_and_created_in_order() {
        let views = etl_warehouse::embedded_views().expect("views");
        let schema = Ident::new("schema", "analytics").expect("valid");
        let sqls = view_sqls(&schema, &views).expect("valid names");
        assert_eq!(sqls.len(), 1 + 2 * views.len());
        assert_eq!(sqls[0], "SET search_path TO \"analytics\"");
        let create_base = sqls
            .iter()
            .position(|s| s.starts_with("CREATE VIEW \"analytics\".\"call_outcomes\""));
        let create_asr = sqls
            .iter()
            .position(|s| s.starts_with("CREATE VIEW \"analytics\".\"answer_seizure_ratio\""));
        assert!(
            create_base < create_asr && create_base.is_some(),
            "{sqls:?}"
        );
        for sql in &sqls[1 + views.len()..] {
            Parser::parse_sql(&RedshiftSqlDialect {}, sql).unwrap_or_else(|e| panic!("{e}: {sql}"));
        }
    }
}
