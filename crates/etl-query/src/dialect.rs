//! The SQL subset of `queries/athena/`: text that Athena (engine v3, Trino) and DataFusion both
//! run with the same meaning, so the local engine's golden answers speak for Athena too.
//!
//! sqlparser has no Trino or Presto dialect, so the check is: the statement parses with
//! sqlparser's **ANSI** dialect (Trino follows the standard: `"` quotes identifiers, `'`
//! strings, `CAST(x AS t)`, `CASE`, window functions, `LIMIT`), is one `SELECT`/`WITH` query,
//! and uses only
//! - the functions of [`COMMON_FUNCTIONS`] (same name, arguments and result in Trino and
//!   DataFusion 55; e.g. `date_trunc('hour', ts)` truncates in UTC in both on a `timestamp`),
//! - `CAST` / `TRY_CAST` to the types of [`COMMON_CAST_TYPES`],
//! - no `::` casts (PostgreSQL/DataFusion only), no `ILIKE` (not in Trino), no backticks
//!   (Hive DDL only; the ANSI dialect refuses them when parsing).
//!
//! Anything else is refused with the construct's name. This keeps the Athena text and the
//! local text identical; there is no translation step.

use crate::QueryError;
use sqlparser::ast::{CastKind, Expr, Statement};
use sqlparser::dialect::AnsiDialect;
use sqlparser::parser::Parser;
use std::ops::ControlFlow;

/// Functions both engines implement alike (lowercase).
pub const COMMON_FUNCTIONS: &[&str] = &[
    "count",
    "sum",
    "min",
    "max",
    "avg",
    "coalesce",
    "nullif",
    "greatest",
    "least",
    "date_trunc",
    "lower",
    "upper",
    "length",
    "abs",
    "row_number",
    "rank",
    "dense_rank",
    "lag",
    "lead",
    "first_value",
    "last_value",
];

/// Target types of `CAST` both engines read alike (as printed by sqlparser, uppercase prefix).
pub const COMMON_CAST_TYPES: &[&str] = &[
    "VARCHAR",
    "BIGINT",
    "INTEGER",
    "DOUBLE",
    "DATE",
    "TIMESTAMP",
    "DECIMAL",
    "BOOLEAN",
];

/// Checks `sql` (placeholders already replaced, e.g. by `?`); `file` names it in errors.
pub fn check(file: &str, sql: &str) -> Result<(), QueryError> {
    let bad = |message: String| QueryError::Dialect {
        file: file.to_string(),
        message,
    };
    let tokens = sqlparser::tokenizer::Tokenizer::new(&AnsiDialect {}, sql)
        .tokenize()
        .map_err(|e| bad(format!("not valid ANSI SQL: {e}")))?;
    if let Some(word) = tokens.iter().find_map(|t| match t {
        sqlparser::tokenizer::Token::Word(w) if w.quote_style == Some('`') => Some(w.value.clone()),
        _ => None,
    }) {
        return Err(bad(format!(
            "`{word}` is quoted with backticks, which Athena accepts in DDL only (and ANSI SQL not at all): write \"{word}\""
        )));
    }
    let statements = Parser::parse_sql(&AnsiDialect {}, sql).map_err(|e| {
        bad(format!(
            "not valid ANSI SQL (the subset Athena and DataFusion share): {e}"
        ))
    })?;
    let [statement] = statements.as_slice() else {
        return Err(bad(format!(
            "holds {} statements; write exactly one query",
            statements.len()
        )));
    };
    if !matches!(statement, Statement::Query(_)) {
        return Err(bad("is not a query (SELECT or WITH)".into()));
    }
    let flow = sqlparser::ast::visit_expressions(statement, |expr| {
        match expr {
            Expr::Function(f) => {
                let name = f.name.to_string().to_ascii_lowercase();
                if !COMMON_FUNCTIONS.contains(&name.as_str()) {
                    return ControlFlow::Break(format!(
                        "function {name}() is not in the common subset ({}); add it to \
                         etl_query::dialect::COMMON_FUNCTIONS only after checking Trino's and \
                         DataFusion's documentation agree",
                        COMMON_FUNCTIONS.join(", ")
                    ));
                }
            }
            Expr::Cast {
                kind, data_type, ..
            } => {
                if matches!(kind, CastKind::DoubleColon) {
                    return ControlFlow::Break(format!(
                        "`::{data_type}` is PostgreSQL syntax; write CAST(x AS {data_type})"
                    ));
                }
                let t = data_type.to_string().to_ascii_uppercase();
                if !COMMON_CAST_TYPES.iter().any(|c| t.starts_with(c))
                    || t.starts_with("DOUBLE PRECISION")
                {
                    return ControlFlow::Break(format!(
                        "CAST to {t} is not in the common subset ({})",
                        COMMON_CAST_TYPES.join(", ")
                    ));
                }
            }
            Expr::ILike { .. } => {
                return ControlFlow::Break(
                    "ILIKE is not Trino SQL; write lower(x) LIKE lower(pattern)".into(),
                )
            }
            _ => {}
        }
        ControlFlow::Continue(())
    });
    match flow {
        ControlFlow::Break(message) => Err(bad(message)),
        ControlFlow::Continue(()) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::check;

    #[test]
    fn the_common_subset_is_accepted_and_engine_specific_sql_refused() {
        check(
            "ok",
            "SELECT dt, count(*) AS n, CAST(date_trunc('hour', occurred_at) AS VARCHAR) AS h \
             FROM call_events WHERE call_id = ? GROUP BY dt, 3 ORDER BY dt LIMIT 10",
        )
        .unwrap();
        for (sql, says) in [
            ("SELECT x::bigint FROM t", "::"),
            ("SELECT to_unixtime(x) FROM t", "to_unixtime"),
            ("SELECT a FROM t WHERE a ILIKE 'x'", "ILIKE"),
            ("SELECT `a` FROM t", "backticks"),
            (
                "SELECT CAST(a AS DOUBLE PRECISION) FROM t",
                "DOUBLE PRECISION",
            ),
            ("SELECT 1; SELECT 2", "2 statements"),
            ("DROP TABLE t", "not a query"),
        ] {
            let Err(e) = check("bad", sql) else {
                panic!("accepted: {sql}");
            };
            let e = e.to_string();
            assert!(e.contains(says), "{sql}: {e}");
        }
    }
}
