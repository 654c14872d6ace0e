//! `etl warehouse status`: per table, what is loaded, what waits, and why a table stopped.
//!
//! Read from the two sources of truth, never from a loader's memory: the lake's commit records
//! (`_commits/<table>/<batch>.json`, the batches that exist) and the warehouse (its load ledger,
//! the batches loaded; its failure record, why a table stopped). So it answers the same from
//! any process, whether a loader runs or not.

use crate::error::RedshiftError;
use etl_lake::{BatchCommit, Lake};
use etl_warehouse::{LoadFailure, LoadTarget};
use serde::Serialize;

/// The load state of one table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TableStatus {
    /// The table (stream).
    pub table: String,
    /// Batches in the load ledger.
    pub loaded_batches: u64,
    /// The highest batch id in the ledger (batch ids sort in commit order per source).
    pub loaded_up_to: Option<String>,
    /// Committed batches with data that are not in the ledger yet.
    pub pending_batches: u64,
    /// Rows of the pending batches.
    pub pending_rows: u64,
    /// The oldest pending batch (where loading resumes).
    pub next_batch: Option<String>,
    /// Why the table stopped loading, if it did (cleared by the next successful load).
    pub failure: Option<LoadFailure>,
}

/// The status of `tables` (see the module doc).
pub async fn warehouse_status(
    warehouse: &dyn LoadTarget,
    lake: &Lake,
    tables: &[String],
) -> Result<Vec<TableStatus>, RedshiftError> {
    let failures = warehouse.failures().await?;
    let lake_err = |e: etl_lake::LakeError| RedshiftError::Lake(e.to_string());
    let mut out = Vec::with_capacity(tables.len());
    for table in tables {
        let loaded = warehouse.loaded_batches(table).await?;
        let mut status = TableStatus {
            table: table.clone(),
            loaded_batches: loaded.len() as u64,
            loaded_up_to: loaded.iter().next_back().cloned(),
            pending_batches: 0,
            pending_rows: 0,
            next_batch: None,
            failure: failures.iter().find(|f| &f.table == table).cloned(),
        };
        let mut paths = lake
            .list(&format!("_commits/{table}"))
            .await
            .map_err(lake_err)?;
        paths.sort();
        for path in paths {
            let Some(stem) = path
                .rsplit('/')
                .next()
                .and_then(|name| name.strip_suffix(".json"))
            else {
                continue;
            };
            if loaded.contains(stem) {
                continue;
            }
            // Not in the ledger: read the record (batches without data files never load).
            let Some(bytes) = lake.get(&path).await.map_err(lake_err)? else {
                continue;
            };
            let commit: BatchCommit = serde_json::from_slice(&bytes)
                .map_err(|e| RedshiftError::Lake(format!("{path} is not a commit record: {e}")))?;
            if commit.files.is_empty() || loaded.contains(&commit.load_id()) {
                continue;
            }
            status.pending_batches += 1;
            status.pending_rows += commit.rows();
            if status.next_batch.is_none() {
                status.next_batch = Some(commit.load_id());
            }
        }
        out.push(status);
    }
    Ok(out)
}
