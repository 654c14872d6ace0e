//! `queries/athena/*.sql` as Athena named queries (`etl query --save-named`).
//!
//! Idempotent: the workgroup's named queries are listed first (`ListNamedQueries`, every page,
//! then `GetNamedQuery` each); a query whose name exists with the same text and database is left
//! alone, one with other text is updated in place (`UpdateNamedQuery`), a new one is created
//! (`CreateNamedQuery` with a `ClientRequestToken`). Running it twice creates nothing the second
//! time.

use crate::error::sdk_err;
use crate::QueryError;
use etl_aws::athena::Client;
use std::collections::BTreeMap;
use std::path::Path;

/// One query file of `queries/athena/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryFile {
    /// The file stem, e.g. `call_timeline` (also the named query's name).
    pub name: String,
    /// The first line of the header comment (without `-- `).
    pub description: String,
    /// The whole text.
    pub sql: String,
}

/// Reads `<dir>/*.sql`, sorted by name.
pub fn load_dir(dir: &Path) -> Result<Vec<QueryFile>, QueryError> {
    let read_err = |e: std::io::Error| {
        QueryError::File(format!("cannot read query folder {}: {e}", dir.display()))
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(read_err)? {
        let path = entry.map_err(read_err)?.path();
        if path.extension().is_some_and(|e| e == "sql") {
            files.push(load_file(&path)?);
        }
    }
    files.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(files)
}

/// Reads one query file.
pub fn load_file(path: &Path) -> Result<QueryFile, QueryError> {
    let sql = std::fs::read_to_string(path)
        .map_err(|e| QueryError::File(format!("cannot read query file {}: {e}", path.display())))?;
    let name = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default()
        .to_string();
    let description = sql
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("--"))
        .map(|l| l.trim().to_string())
        .unwrap_or_default();
    Ok(QueryFile {
        name,
        description,
        sql,
    })
}

/// What `save` did with one query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Saved {
    /// Created, with this `NamedQueryId`.
    Created(String),
    /// Updated in place (other text or database before).
    Updated(String),
    /// Already there with the same text.
    Unchanged(String),
}

/// The text saved for `file`: placeholders become `?` (Athena's console asks for them).
pub fn named_text(file: &QueryFile) -> Result<String, QueryError> {
    let names = crate::params::placeholders(&file.sql)?;
    let params: BTreeMap<String, String> = names.into_iter().map(|n| (n, String::new())).collect();
    Ok(crate::params::bind(&file.sql, &params)?.positional)
}

/// Registers `files` as named queries of `workgroup` on `database`.
pub async fn save(
    client: &Client,
    workgroup: &str,
    database: &str,
    files: &[QueryFile],
) -> Result<Vec<(String, Saved)>, QueryError> {
    let mut existing: BTreeMap<String, (String, String, String)> = BTreeMap::new();
    let mut token: Option<String> = None;
    loop {
        let page = client
            .list_named_queries()
            .work_group(workgroup)
            .set_next_token(token.take())
            .send()
            .await
            .map_err(|e| sdk_err("ListNamedQueries", &e))?;
        for id in page.named_query_ids() {
            let got = client
                .get_named_query()
                .named_query_id(id)
                .send()
                .await
                .map_err(|e| sdk_err("GetNamedQuery", &e))?;
            if let Some(q) = got.named_query() {
                existing.insert(
                    q.name().to_string(),
                    (
                        id.clone(),
                        q.query_string().to_string(),
                        q.database().to_string(),
                    ),
                );
            }
        }
        match page.next_token() {
            Some(t) if !t.is_empty() => token = Some(t.to_string()),
            _ => break,
        }
    }
    let mut out = Vec::new();
    for file in files {
        let text = named_text(file)?;
        crate::dialect::check(&format!("{}.sql", file.name), &text)?;
        let saved = match existing.get(&file.name) {
            Some((id, old_text, old_db)) if *old_text == text && old_db == database => {
                Saved::Unchanged(id.clone())
            }
            Some((id, _, _)) => {
                client
                    .update_named_query()
                    .named_query_id(id)
                    .name(&file.name)
                    .description(&file.description)
                    .query_string(&text)
                    .send()
                    .await
                    .map_err(|e| sdk_err("UpdateNamedQuery", &e))?;
                Saved::Updated(id.clone())
            }
            None => {
                let created = client
                    .create_named_query()
                    .name(&file.name)
                    .description(&file.description)
                    .database(database)
                    .query_string(&text)
                    .work_group(workgroup)
                    .client_request_token(crate::athena::request_token())
                    .send()
                    .await
                    .map_err(|e| sdk_err("CreateNamedQuery", &e))?;
                Saved::Created(created.named_query_id().unwrap_or_default().to_string())
            }
        };
        out.push((file.name.clone(), saved));
    }
    Ok(out)
}

/// The files of `queries/athena/`, built into the binary (a test keeps the list in step with
/// the folder).
pub const EMBEDDED: &[(&str, &str)] = &[
    (
        "call_timeline",
        include_str!("../../../queries/athena/call_timeline.sql"),
    ),
    (
        "hourly_volume",
        include_str!("../../../queries/athena/hourly_volume.sql"),
    ),
    (
        "late_arrivals",
        include_str!("../../../queries/athena/late_arrivals.sql"),
    ),
    (
        "top_hangup_causes",
        include_str!("../../../queries/athena/top_hangup_causes.sql"),
    ),
    (
        "user_sessions",
        include_str!("../../../queries/athena/user_sessions.sql"),
    ),
];

/// [`EMBEDDED`] as query files.
pub fn embedded() -> Vec<QueryFile> {
    EMBEDDED
        .iter()
        .map(|(name, sql)| QueryFile {
            name: name.to_string(),
            description: sql
                .lines()
                .next()
                .and_then(|l| l.strip_prefix("--"))
                .map(|l| l.trim().to_string())
                .unwrap_or_default(),
            sql: sql.to_string(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../queries/athena")
    }

    #[test]
    fn the_embedded_list_is_the_folder() {
        let on_disk = load_dir(&dir()).unwrap();
        assert_eq!(embedded(), on_disk);
    }

    /// How we know the Athena text is valid: every file, as saved for Athena (placeholders as
    /// `?`), parses as ANSI SQL and stays in the subset of `crate::dialect`.
    #[test]
    fn every_query_file_is_in_the_common_subset() {
        for file in embedded() {
            let text = named_text(&file).unwrap();
            assert!(!text.contains("{{"), "{}", file.name);
            crate::dialect::check(&file.name, &text).unwrap();
            assert!(
                !file.description.is_empty(),
                "{} has no header line",
                file.name
            );
        }
    }
}
