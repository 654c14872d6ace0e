//! The Redshift SQL check: statements that PostgreSQL would run but Redshift refuses fail in
//! the stand-in too, with an error worded like Redshift's, so that a test passing on the
//! stand-in does not hide SQL that breaks on a real cluster.
//!
//! Refused (outside string literals and comments, case-insensitive):
//! - `INSERT … ON CONFLICT` (Redshift has MERGE or DELETE + INSERT);
//! - aggregate `FILTER (WHERE …)` (use `SUM(CASE WHEN … THEN 1 ELSE 0 END)`);
//! - `STRING_AGG`, `ARRAY_AGG` (Redshift: `LISTAGG`; no arrays), the `JSONB` type, the `->` /
//!   `->>` JSON operators (Redshift: `JSON_EXTRACT_PATH_TEXT`, SUPER navigation);
//! - `E'…'` literals and any backslash inside a literal (an escape character in Redshift, a
//!   plain character in PostgreSQL: the same text means two different strings);
//! - `RETURNING`, `DISTINCT ON`, `LATERAL`, `CREATE INDEX`, `ADD COLUMN IF NOT EXISTS`;
//! - MERGE forms Redshift does not accept: a subquery as source (`USING (…)`), a `WITH` before
//!   MERGE, `WHEN [NOT] MATCHED AND …`, `WHEN NOT MATCHED BY …`, `DO NOTHING`, more than one
//!   `WHEN MATCHED` or `WHEN NOT MATCHED` clause.
//!
//! Accepted although they look PostgreSQL-ish, because Redshift runs them: `::` casts,
//! `CREATE TABLE IF NOT EXISTS`, `DROP VIEW IF EXISTS … CASCADE`, `ILIKE`, window functions.
//! The check runs on the statement as submitted (before `:name` parameters are bound, whose
//! values are not SQL literals).

use crate::sql::{tokenize, Tok};

fn word(t: Option<&Tok>, w: &str) -> bool {
    matches!(t, Some(Tok::Word(x)) if x.eq_ignore_ascii_case(w))
}

fn refuse(near: &str, why: &str) -> String {
    format!("ERROR: syntax error at or near \"{near}\" (the stand-in's Redshift SQL check: {why})")
}

/// `Err(message)` if `sql` uses syntax Redshift does not accept (see the module doc).
pub(crate) fn check_redshift_sql(sql: &str) -> Result<(), String> {
    let all = tokenize(sql);
    // Literals: `E'…'` needs the adjacency of the raw tokens.
    for (i, t) in all.iter().enumerate() {
        if let Tok::Str(s) = t {
            if i > 0 && word(all.get(i - 1), "E") {
                return Err(refuse(
                    "E",
                    "E'…' escape strings are PostgreSQL-only; write a plain '…' literal",
                ));
            }
            if s.contains('\\') {
                return Err(refuse(
                    s,
                    "a backslash in a literal is an escape in Redshift but not in PostgreSQL; \
                     avoid backslashes in literals (pass the value as a parameter)",
                ));
            }
        }
    }
    let t: Vec<&Tok> = all.iter().filter(|t| !matches!(t, Tok::Space(_))).collect();
    let at = |i: usize| t.get(i).copied();
    for i in 0..t.len() {
        let next = at(i + 1);
        if word(at(i), "ON") && word(next, "CONFLICT") {
            return Err(refuse(
                "CONFLICT",
                "INSERT … ON CONFLICT is PostgreSQL-only; use MERGE",
            ));
        }
        if word(at(i), "FILTER") && next == Some(&Tok::Punct('(')) && word(at(i + 2), "WHERE") {
            return Err(refuse(
                "(",
                "aggregate FILTER (WHERE …) is PostgreSQL-only; use SUM(CASE WHEN … THEN 1 ELSE 0 END)",
            ));
        }
        for (f, instead) in [("STRING_AGG", "LISTAGG"), ("ARRAY_AGG", "LISTAGG")] {
            if word(at(i), f) && next == Some(&Tok::Punct('(')) {
                return Err(format!(
                    "ERROR: function {} does not exist (the stand-in's Redshift SQL check: use {instead})",
                    f.to_ascii_lowercase()
                ));
            }
        }
        if word(at(i), "JSONB") {
            return Err(refuse(
                "jsonb",
                "Redshift has no JSONB type; use SUPER or VARCHAR",
            ));
        }
        if at(i) == Some(&Tok::Punct('-')) && next == Some(&Tok::Punct('>')) {
            return Err(refuse(
                "->",
                "the -> / ->> JSON operators are PostgreSQL-only; use JSON_EXTRACT_PATH_TEXT",
            ));
        }
        for (a, b, why) in [
            (
                "DISTINCT",
                "ON",
                "DISTINCT ON is PostgreSQL-only; use ROW_NUMBER()",
            ),
            ("CREATE", "INDEX", "Redshift has no indexes; use SORTKEY"),
            ("CREATE", "UNIQUE", "Redshift has no indexes; use SORTKEY"),
        ] {
            if word(at(i), a) && word(next, b) {
                return Err(refuse(b, why));
            }
        }
        if word(at(i), "RETURNING") {
            return Err(refuse("RETURNING", "Redshift has no RETURNING clause"));
        }
        if word(at(i), "LATERAL") {
            return Err(refuse("LATERAL", "Redshift has no LATERAL joins"));
        }
        if word(at(i), "ADD")
            && word(next, "COLUMN")
            && word(at(i + 2), "IF")
            && word(at(i + 3), "NOT")
        {
            return Err(refuse(
                "IF",
                "ALTER TABLE … ADD COLUMN IF NOT EXISTS is PostgreSQL-only; check the columns first",
            ));
        }
    }
    check_merge(&t)
}

/// The MERGE forms of the module doc.
fn check_merge(t: &[&Tok]) -> Result<(), String> {
    let Some(start) = t.iter().position(|x| word(Some(*x), "MERGE")) else {
        return Ok(());
    };
    if word(t.first().copied(), "WITH") {
        return Err(refuse(
            "MERGE",
            "Redshift's MERGE cannot follow a WITH clause",
        ));
    }
    let Some(using) = t.iter().skip(start).position(|x| word(Some(*x), "USING")) else {
        return Ok(());
    };
    if t.get(start + using + 1) == Some(&&Tok::Punct('(')) {
        return Err(refuse(
            "(",
            "Redshift's MERGE source must be a table, not a subquery; stage it in a temp table",
        ));
    }
    let (mut matched, mut not_matched) = (0, 0);
    for i in start..t.len() {
        if !word(t.get(i).copied(), "WHEN") {
            continue;
        }
        let not = word(t.get(i + 1).copied(), "NOT");
        let m = if not { i + 2 } else { i + 1 };
        if !word(t.get(m).copied(), "MATCHED") {
            continue; // a CASE WHEN inside an expression
        }
        if !word(t.get(m + 1).copied(), "THEN") {
            let near = t.get(m + 1).map(|x| x.text()).unwrap_or_default();
            return Err(refuse(
                &near,
                "Redshift's MERGE accepts only WHEN MATCHED THEN and WHEN NOT MATCHED THEN \
                 (no AND conditions, no BY SOURCE/TARGET)",
            ));
        }
        if word(t.get(m + 2).copied(), "DO") {
            return Err(refuse("DO", "Redshift's MERGE has no DO NOTHING"));
        }
        if not {
            not_matched += 1;
        } else {
            matched += 1;
        }
    }
    if matched > 1 || not_matched > 1 {
        return Err(refuse(
            "WHEN",
            "Redshift's MERGE takes at most one WHEN MATCHED and one WHEN NOT MATCHED clause",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgresql_only_syntax_is_refused() {
        for (sql, needle) in [
            ("INSERT INTO t VALUES (1) ON CONFLICT (a) DO NOTHING", "ON CONFLICT"),
            ("INSERT INTO t VALUES (1) on conflict do nothing", "ON CONFLICT"),
            ("SELECT COUNT(*) FILTER (WHERE a > 1) FROM t", "FILTER (WHERE"),
            ("SELECT string_agg(a, ',') FROM t", "string_agg"),
            ("SELECT array_agg(a) FROM t", "array_agg"),
            ("SELECT E'a\\nb'", "E'"),
            ("SELECT 'a\\b'", "backslash"),
            ("SELECT x->>'k' FROM t", "->"),
            ("CREATE TABLE t (j JSONB)", "JSONB"),
            ("INSERT INTO t VALUES (1) RETURNING a", "RETURNING"),
            ("SELECT DISTINCT ON (a) a FROM t", "DISTINCT ON"),
            ("CREATE INDEX i ON t (a)", "indexes"),
            ("SELECT * FROM t, LATERAL (SELECT 1) x", "LATERAL"),
            ("ALTER TABLE t ADD COLUMN IF NOT EXISTS b INT", "IF NOT EXISTS"),
            ("MERGE INTO t USING (SELECT 1 AS a) s ON t.a = s.a WHEN MATCHED THEN DELETE", "subquery"),
            ("WITH s AS (SELECT 1 AS a) MERGE INTO t USING s ON t.a = s.a WHEN MATCHED THEN DELETE", "WITH"),
            ("MERGE INTO t USING s ON t.a = s.a WHEN MATCHED AND s.b > 1 THEN DELETE", "AND conditions"),
            ("MERGE INTO t USING s ON t.a = s.a WHEN NOT MATCHED BY SOURCE THEN DELETE", "BY SOURCE"),
            ("MERGE INTO t USING s ON t.a = s.a WHEN NOT MATCHED THEN DO NOTHING", "DO NOTHING"),
            ("MERGE INTO t USING s ON t.a = s.a WHEN MATCHED THEN DELETE WHEN MATCHED THEN UPDATE SET b = 1", "at most one"),
        ] {
            let err = check_redshift_sql(sql).expect_err(sql);
            assert!(err.starts_with("ERROR: "), "{sql}: {err}");
            assert!(
                err.to_lowercase().contains(&needle.to_lowercase())
                    || err.contains(needle),
                "{sql}: {err}"
            );
        }
    }

    #[test]
    fn redshift_sql_is_accepted() {
        for sql in [
            "SELECT a::varchar, CAST(b AS INT) FROM t WHERE c ILIKE 'x%'",
            "SELECT 'on conflict', \"filter\", 'E' FROM t -- ON CONFLICT in a comment",
            "SELECT SUM(CASE WHEN a > 1 THEN 1 ELSE 0 END), LISTAGG(b, ',') FROM t",
            "CREATE TABLE IF NOT EXISTS \"s\".\"t\" (a INT) DISTSTYLE AUTO SORTKEY AUTO",
            "DROP VIEW IF EXISTS v CASCADE",
            "MERGE INTO \"s\".\"t\" USING \"stage\" AS s ON \"s\".\"t\".\"id\" = s.\"id\" \
             WHEN MATCHED THEN UPDATE SET \"a\" = CASE WHEN s.a IS NULL THEN 0 ELSE s.a END \
             WHEN NOT MATCHED THEN INSERT (\"id\") VALUES (s.\"id\")",
            "SELECT ROW_NUMBER() OVER (PARTITION BY a ORDER BY b) FROM t WHERE x = :param",
            "SELECT a - 1 > 0 FROM t",
        ] {
            assert_eq!(check_redshift_sql(sql), Ok(()), "{sql}");
        }
    }
}
