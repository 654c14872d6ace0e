//! `--param name=value` and the `{{name}}` placeholders of query files.
//!
//! A placeholder is `{{` + a lowercase name (`a-z`, `0-9`, `_`) + `}}`, anywhere in the text
//! (so do not write braces in comments). Every placeholder needs a `--param`, and every
//! `--param` must be used: a typo is an error, not a silently different query. Values are
//! always SQL string literals (`'…'`, quotes doubled); compare them with string columns or
//! `CAST` them.
//!
//! The two engines get the same query:
//! - local: the text with each placeholder replaced by its literal ([`Bound::inline`]);
//! - Athena: each placeholder replaced by `?` and the literals passed, in order of occurrence,
//!   as `ExecutionParameters` ([`Bound::positional`], [`Bound::values`]); Athena's named
//!   queries keep the `?` (the console asks for the values).

use crate::QueryError;
use std::collections::BTreeMap;

/// A query with its parameters bound.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bound {
    /// The text with every placeholder replaced by its quoted literal.
    pub inline: String,
    /// The text with every placeholder replaced by `?`.
    pub positional: String,
    /// The quoted literal of each `?`, in order.
    pub values: Vec<String>,
}

/// Parses `name=value` (`--param`).
pub fn parse_param(arg: &str) -> Result<(String, String), QueryError> {
    let (name, value) = arg.split_once('=').ok_or_else(|| {
        QueryError::Params(format!(
            "--param {arg:?} has no `=`: write --param name=value"
        ))
    })?;
    check_name(name)?;
    Ok((name.to_string(), value.to_string()))
}

fn check_name(name: &str) -> Result<(), QueryError> {
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    {
        return Err(QueryError::Params(format!(
            "parameter name {name:?} is invalid: use lowercase letters, digits and _"
        )));
    }
    Ok(())
}

/// A SQL string literal of `value`: single quotes, inner quotes doubled (the same in Trino and
/// DataFusion; neither treats a backslash specially in a standard literal).
pub fn literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// The placeholder names of `sql`, in order of first occurrence.
pub fn placeholders(sql: &str) -> Result<Vec<String>, QueryError> {
    let mut names: Vec<String> = Vec::new();
    for (_, name, _) in scan(sql)? {
        if !names.contains(&name) {
            names.push(name);
        }
    }
    Ok(names)
}

/// `(start, name, end)` of every placeholder.
fn scan(sql: &str) -> Result<Vec<(usize, String, usize)>, QueryError> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(at) = sql[from..].find("{{") {
        let start = from + at;
        let Some(len) = sql[start + 2..].find("}}") else {
            return Err(QueryError::Params(format!(
                "`{{{{` at byte {start} is not closed with `}}}}`"
            )));
        };
        let name = sql[start + 2..start + 2 + len].trim().to_string();
        check_name(&name)?;
        let end = start + 2 + len + 2;
        out.push((start, name, end));
        from = end;
    }
    Ok(out)
}

/// Binds `params` to the placeholders of `sql`.
pub fn bind(sql: &str, params: &BTreeMap<String, String>) -> Result<Bound, QueryError> {
    let found = scan(sql)?;
    let mut inline = String::with_capacity(sql.len());
    let mut positional = String::with_capacity(sql.len());
    let mut values = Vec::new();
    let mut last = 0;
    let mut missing = Vec::new();
    for (start, name, end) in &found {
        inline.push_str(&sql[last..*start]);
        positional.push_str(&sql[last..*start]);
        match params.get(name) {
            Some(value) => {
                let lit = literal(value);
                inline.push_str(&lit);
                positional.push('?');
                values.push(lit);
            }
            None => {
                if !missing.contains(name) {
                    missing.push(name.clone());
                }
            }
        }
        last = *end;
    }
    inline.push_str(&sql[last..]);
    positional.push_str(&sql[last..]);
    if !missing.is_empty() {
        return Err(QueryError::Params(format!(
            "the query needs --param {}",
            missing
                .iter()
                .map(|m| format!("{m}=…"))
                .collect::<Vec<_>>()
                .join(" --param ")
        )));
    }
    let unused: Vec<&String> = params
        .keys()
        .filter(|k| !found.iter().any(|(_, n, _)| n == *k))
        .collect();
    if !unused.is_empty() {
        return Err(QueryError::Params(format!(
            "--param {} not used by the query (its placeholders: {})",
            unused
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            placeholders(sql)?.join(", ")
        )));
    }
    Ok(Bound {
        inline,
        positional,
        values,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn placeholders_become_literals_or_positional_parameters() {
        let sql = "SELECT * FROM t WHERE a = {{x}} AND b = {{ y }} OR c = {{x}}";
        let b = bind(sql, &params(&[("x", "it's"), ("y", "2")])).unwrap();
        assert_eq!(
            b.inline,
            "SELECT * FROM t WHERE a = 'it''s' AND b = '2' OR c = 'it''s'"
        );
        assert_eq!(
            b.positional,
            "SELECT * FROM t WHERE a = ? AND b = ? OR c = ?"
        );
        assert_eq!(b.values, vec!["'it''s'", "'2'", "'it''s'"]);
    }

    #[test]
    fn missing_unused_and_malformed_parameters_are_refused() {
        let e = bind("SELECT {{a}}, {{b}}", &params(&[("a", "1")])).unwrap_err();
        assert!(e.to_string().contains("--param b="), "{e}");
        let e = bind("SELECT {{a}}", &params(&[("a", "1"), ("z", "2")])).unwrap_err();
        assert!(e.to_string().contains("z not used"), "{e}");
        assert!(bind("SELECT {{a", &params(&[])).is_err());
        assert!(bind("SELECT {{A-b}}", &params(&[])).is_err());
        assert!(parse_param("novalue").is_err());
        assert_eq!(
            parse_param("call_id=a=b").unwrap(),
            ("call_id".into(), "a=b".into())
        );
    }
}
