//! Curated view definitions: `queries/views/<name>.sql`, one SELECT per file.
//!
//! A file holds a header comment (what the view shows, its grain and columns) and the SELECT
//! body only; the warehouse wraps it as `CREATE OR REPLACE VIEW <name> AS <body>`. Views may read
//! the lake tables and other views; [`order_views`] sorts them so every view comes after the views
//! it reads (references found with sqlparser), and [`check_references`] rejects names that are
//! neither a table nor a view.

use crate::error::{Result, WarehouseError};
use datafusion::sql::sqlparser::ast::{
    ObjectName, ObjectNamePart, Query, Statement, Visit, Visitor,
};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;
use std::collections::{BTreeMap, BTreeSet};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

/// One curated view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewDef {
    /// View name: the file stem, lowercase letters, digits and `_`.
    pub name: String,
    /// The SELECT (with its header comment), without a trailing `;`.
    pub sql_body: String,
    /// Where the definition came from (for error messages).
    pub path: PathBuf,
}

/// The views compiled into the binary: every `queries/views/*.sql` of the repository (listed by
/// the build script). Sorted in dependency order.
pub fn embedded_views() -> Result<Vec<ViewDef>> {
    // Every queries/views/*.sql, listed by build.rs: adding a view adds no code.
    const FILES: &[(&str, &str)] = include!(concat!(env!("OUT_DIR"), "/embedded_views.rs"));
    let views = FILES
        .iter()
        .map(|(file, text)| {
            let name = file.strip_suffix(".sql").unwrap_or(file);
            ViewDef::new(
                name,
                text,
                PathBuf::from(format!("queries/views/{name}.sql")),
            )
        })
        .collect::<Result<Vec<_>>>()?;
    order_views(views)
}

/// Loads every `*.sql` file of `dir` (not recursive) as a view named after the file, sorted in
/// dependency order (ties by name).
pub fn load_views(dir: &Path) -> Result<Vec<ViewDef>> {
    let dir_err = |source| WarehouseError::ViewDir {
        path: dir.display().to_string(),
        source,
    };
    let mut views = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(dir_err)? {
        let path = entry.map_err(dir_err)?.path();
        if path.extension().and_then(|e| e.to_str()) != Some("sql") || !path.is_file() {
            continue;
        }
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_string();
        let text = std::fs::read_to_string(&path).map_err(|source| WarehouseError::ViewFile {
            path: path.display().to_string(),
            source,
        })?;
        views.push(ViewDef::new(&name, &text, path)?);
    }
    order_views(views)
}

impl ViewDef {
    /// Builds and checks a view: `name` must be an identifier and `text` exactly one SELECT
    /// (PostgreSQL syntax). A trailing `;` is dropped.
    pub fn new(name: &str, text: &str, path: PathBuf) -> Result<Self> {
        let invalid = |message: String| WarehouseError::ViewInvalid {
            view: name.to_string(),
            path: path.display().to_string(),
            message,
        };
        if !is_identifier(name) {
            return Err(invalid(
                "the file name must be lowercase letters, digits and `_`, starting with a letter"
                    .into(),
            ));
        }
        let body = text.trim().trim_end_matches(';').trim_end();
        let view = ViewDef {
            name: name.to_string(),
            sql_body: body.to_string(),
            path: path.clone(),
        };
        let statements = view.parse()?;
        match statements.as_slice() {
            [Statement::Query(_)] => Ok(view),
            [] => Err(invalid("the file holds no SQL; write one SELECT".into())),
            [_] => Err(invalid(
                "the file must hold a SELECT only (no CREATE VIEW, the warehouse adds it)".into(),
            )),
            _ => Err(invalid(format!(
                "the file holds {} statements; write exactly one SELECT",
                statements.len()
            ))),
        }
    }

    /// The statement that (re)creates the view.
    pub fn create_sql(&self) -> String {
        format!("CREATE OR REPLACE VIEW {} AS\n{}", self.name, self.sql_body)
    }

    /// Tables and views this view reads (lowercased unless quoted; common table expressions of
    /// the view itself are not references).
    pub fn references(&self) -> Result<BTreeSet<String>> {
        let statements = self.parse()?;
        let mut collector = RelationCollector::default();
        let _ = statements.visit(&mut collector);
        Ok(collector
            .relations
            .difference(&collector.ctes)
            .cloned()
            .collect())
    }

    /// The view's own `ORDER BY` clause (e.g. `ORDER BY day, region`), if it has one. Engines
    /// may ignore the order of a view when selecting from it (DataFusion does), so readers that
    /// want the view's order append this to `SELECT * FROM <view>`; it must therefore name
    /// output columns only.
    pub fn order_by(&self) -> Result<Option<String>> {
        Ok(match self.parse()?.first() {
            Some(Statement::Query(query)) => query.order_by.as_ref().map(|o| o.to_string()),
            _ => None,
        })
    }

    fn parse(&self) -> Result<Vec<Statement>> {
        Parser::parse_sql(&PostgreSqlDialect {}, &self.sql_body).map_err(|e| {
            WarehouseError::ViewInvalid {
                view: self.name.clone(),
                path: self.path.display().to_string(),
                message: format!("not valid SQL: {e}"),
            }
        })
    }
}

/// Sorts views so that each comes after every view it references; independent views are
/// ordered by name. References that are not views (tables) are ignored here. A cycle or two
/// views with one name is an error.
pub fn order_views(views: Vec<ViewDef>) -> Result<Vec<ViewDef>> {
    let mut by_name: BTreeMap<String, ViewDef> = BTreeMap::new();
    for view in views {
        if let Some(first) = by_name.get(&view.name) {
            return Err(WarehouseError::DuplicateView {
                view: view.name.clone(),
                first: first.path.display().to_string(),
                second: view.path.display().to_string(),
            });
        }
        by_name.insert(view.name.clone(), view);
    }
    // Edges: view -> the views it reads.
    let mut deps: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (name, view) in &by_name {
        let refs = view
            .references()?
            .into_iter()
            .filter(|r| by_name.contains_key(r))
            .collect();
        deps.insert(name.clone(), refs);
    }
    let mut ordered = Vec::with_capacity(by_name.len());
    let mut done: BTreeSet<String> = BTreeSet::new();
    while done.len() < deps.len() {
        // Every not-yet-placed view whose dependencies are all placed, smallest name first.
        let ready: Vec<String> = deps
            .iter()
            .filter(|(name, d)| !done.contains(*name) && d.iter().all(|x| done.contains(x)))
            .map(|(name, _)| name.clone())
            .collect();
        if ready.is_empty() {
            return Err(WarehouseError::ViewCycle {
                cycle: find_cycle(&deps, &done),
            });
        }
        for name in ready {
            done.insert(name.clone());
            if let Some(view) = by_name.remove(&name) {
                ordered.push(view);
            }
        }
    }
    Ok(ordered)
}

/// Checks that every relation a view reads is one of `tables` or one of `views`.
pub fn check_references(views: &[ViewDef], tables: &[&str]) -> Result<()> {
    let names: BTreeSet<&str> = views
        .iter()
        .map(|v| v.name.as_str())
        .chain(tables.iter().copied())
        .collect();
    for view in views {
        if let Some(missing) = view
            .references()?
            .into_iter()
            .find(|r| !names.contains(r.as_str()))
        {
            return Err(WarehouseError::UnknownReference {
                view: view.name.clone(),
                path: view.path.display().to_string(),
                missing,
                known: tables.join(", "),
            });
        }
    }
    Ok(())
}

/// Walks from an unplaced view along unplaced dependencies until a name repeats.
fn find_cycle(deps: &BTreeMap<String, BTreeSet<String>>, done: &BTreeSet<String>) -> Vec<String> {
    let Some(start) = deps.keys().find(|n| !done.contains(*n)) else {
        return Vec::new();
    };
    let mut path: Vec<String> = vec![start.clone()];
    loop {
        let current = &path[path.len() - 1];
        let next = deps
            .get(current)
            .and_then(|d| d.iter().find(|x| !done.contains(*x)));
        let Some(next) = next else { return path };
        if let Some(pos) = path.iter().position(|p| p == next) {
            let mut cycle = path.split_off(pos);
            cycle.push(next.clone());
            return cycle;
        }
        path.push(next.clone());
    }
}

#[derive(Default)]
struct RelationCollector {
    relations: BTreeSet<String>,
    ctes: BTreeSet<String>,
}

impl Visitor for RelationCollector {
    type Break = ();

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<()> {
        if let Some(with) = &query.with {
            for cte in &with.cte_tables {
                self.ctes.insert(normalize_ident(&cte.alias.name));
            }
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_relation(&mut self, relation: &ObjectName) -> ControlFlow<()> {
        let parts: Vec<String> = relation
            .0
            .iter()
            .map(|part| match part {
                ObjectNamePart::Identifier(ident) => normalize_ident(ident),
                other => other.to_string(),
            })
            .collect();
        self.relations.insert(parts.join("."));
        ControlFlow::Continue(())
    }
}

fn normalize_ident(ident: &datafusion::sql::sqlparser::ast::Ident) -> String {
    match ident.quote_style {
        Some(_) => ident.value.clone(),
        None => ident.value.to_lowercase(),
    }
}

pub(crate) fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some('a'..='z'))
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && s.len() <= 127
}

#[cfg(test)]
mod tests;
