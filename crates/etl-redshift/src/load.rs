//! The idempotent load of one committed lake batch, or of a group of batches of one table: the
//! COPY manifest and the one-transaction statement list (staging table, `COPY ... FORMAT AS
//! PARQUET MANIFEST`, dedup on `event_id`, `MERGE` into the target, one ledger row per batch,
//! drop staging).
//!
//! Loading a batch twice changes nothing: the MERGE updates rows whose `event_id` is already
//! there with the same values, and a ledger row is inserted only if absent. Run as one
//! `BatchExecuteStatement` (one transaction), a failure anywhere rolls everything back, so a
//! group is loaded whole (every ledger row) or not at all.

use crate::ddl::{TableDef, LEDGER_TABLE};
use crate::error::RedshiftError;
use crate::ident::{iam_role_arn, literal, qualified, s3_url, Ident};
use etl_warehouse::LoadRequest;
use serde::Serialize;

/// The column every lake table is deduplicated and merged on.
pub const KEY_COLUMN: &str = "event_id";

/// A COPY manifest: `{"entries":[{"url":…,"mandatory":true,"meta":{"content_length":N}}]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Manifest {
    /// One entry per Parquet file.
    pub entries: Vec<ManifestEntry>,
}

/// One file of a [`Manifest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ManifestEntry {
    /// `s3://bucket/key`.
    pub url: String,
    /// Always true: a missing file fails the COPY rather than loading less.
    pub mandatory: bool,
    /// Exact object size (required for Parquet).
    pub meta: ManifestMeta,
}

/// `meta` of a [`ManifestEntry`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ManifestMeta {
    /// Object size in bytes.
    pub content_length: u64,
}

impl Manifest {
    /// The manifest of `request`'s files; each must be an `s3://` URL (checked) and listed once.
    pub fn for_request(request: &LoadRequest) -> Result<Self, RedshiftError> {
        let mut entries: Vec<ManifestEntry> = Vec::with_capacity(request.files.len());
        for file in &request.files {
            s3_url(&file.uri).map_err(|_| RedshiftError::NotInS3 {
                uri: file.uri.clone(),
                batch_id: request.batch_id.clone(),
            })?;
            // A file listed twice is loaded twice: list each once.
            if entries.iter().any(|e| e.url == file.uri) {
                continue;
            }
            entries.push(ManifestEntry {
                url: file.uri.clone(),
                mandatory: true,
                meta: ManifestMeta {
                    content_length: file.bytes,
                },
            });
        }
        Ok(Manifest { entries })
    }

    /// The manifest as JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| String::from("{\"entries\":[]}"))
    }
}

/// Everything the load statements need besides the table.
#[derive(Debug, Clone)]
pub struct LoadSpec<'a> {
    /// Warehouse schema of the target table and the ledger.
    pub schema: &'a Ident,
    /// The request being loaded.
    pub request: &'a LoadRequest,
    /// `s3://…` URL of the manifest written for it.
    pub manifest_url: &'a str,
    /// IAM role Redshift assumes to read S3.
    pub iam_role_arn: &'a str,
    /// When the load runs (written to the ledger), `YYYY-MM-DD HH:MM:SS`.
    pub loaded_at: &'a str,
}

/// A staging-table name unique to the batch (temporary tables are per session anyway).
pub fn staging_name(
    table: &TableDef,
    batch_id: &str,
    suffix: &str,
) -> Result<Ident, RedshiftError> {
    let hash = batch_id.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    let base: String = table.name.as_str().chars().take(80).collect();
    Ident::new(
        "staging table",
        &format!("stage_{base}_{hash:016x}{suffix}"),
    )
}

/// The statements of one load (one batch or a group), in order, for one `BatchExecuteStatement`
/// (10 statements; the Data API takes ≤ 40). Every batch of the load gets its ledger row.
pub fn load_sqls(table: &TableDef, spec: &LoadSpec<'_>) -> Result<Vec<String>, RedshiftError> {
    if !table
        .columns
        .iter()
        .any(|(n, _, _)| n.as_str() == KEY_COLUMN)
    {
        return Err(RedshiftError::Config(format!(
            "table {} has no {KEY_COLUMN} column to merge on",
            table.name.as_str()
        )));
    }
    let target = qualified(spec.schema, &table.name);
    let ledger = format!("{}.\"{LEDGER_TABLE}\"", spec.schema);
    let raw = staging_name(table, &spec.request.batch_id, "")?;
    let dedup = staging_name(table, &spec.request.batch_id, "_u")?;
    let manifest = literal("manifest url", spec.manifest_url)?;
    s3_url(spec.manifest_url)?;
    let role = iam_role_arn(spec.iam_role_arn)?;
    let table_lit = literal("table", table.name.as_str())?;
    literal("batch id", &spec.request.batch_id)?;
    let ledger_values = ledger_values(&table_lit, spec.request)?;
    let rows = staging_name(table, &spec.request.batch_id, "_l")?;
    let loaded_at = literal("loaded_at", spec.loaded_at)?;
    let cols: Vec<String> = table
        .columns
        .iter()
        .map(|(n, _, _)| n.to_string())
        .collect();
    let col_list = cols.join(", ");
    let set_list = cols
        .iter()
        .filter(|c| c.as_str() != "\"event_id\"")
        .map(|c| format!("{c} = s.{c}"))
        .collect::<Vec<_>>()
        .join(", ");
    let values = cols
        .iter()
        .map(|c| format!("s.{c}"))
        .collect::<Vec<_>>()
        .join(", ");
    let order = if table
        .columns
        .iter()
        .any(|(n, _, _)| n.as_str() == "occurred_at")
    {
        "\"occurred_at\""
    } else {
        "\"event_id\""
    };
    Ok(vec![
        table.create_staging_sql(&raw),
        format!("COPY {raw} FROM {manifest} IAM_ROLE {role} FORMAT AS PARQUET MANIFEST"),
        format!(
            "CREATE TEMP TABLE {dedup} AS SELECT {col_list} FROM (SELECT {col_list}, ROW_NUMBER() OVER \
             (PARTITION BY \"event_id\" ORDER BY {order}) AS etl_rn FROM {raw}) d WHERE etl_rn = 1"
        ),
        format!(
            "MERGE INTO {target} USING {dedup} AS s ON {target}.\"event_id\" = s.\"event_id\" \
             WHEN MATCHED THEN UPDATE SET {set_list} \
             WHEN NOT MATCHED THEN INSERT ({col_list}) VALUES ({values})"
        ),
        format!(
            "CREATE TEMP TABLE {rows} (\"table_name\" VARCHAR(128) NOT NULL, \"batch_id\" VARCHAR(512) NOT NULL, \
             \"rows_loaded\" BIGINT NOT NULL, \"files\" INTEGER NOT NULL)"
        ),
        format!("INSERT INTO {rows} VALUES {}", ledger_values.join(", ")),
        format!(
            "INSERT INTO {ledger} (\"table_name\", \"batch_id\", \"rows_loaded\", \"files\", \"loaded_at\") \
             SELECT r.\"table_name\", r.\"batch_id\", r.\"rows_loaded\", r.\"files\", CAST({loaded_at} AS TIMESTAMP) \
             FROM {rows} r WHERE NOT EXISTS (SELECT 1 FROM {ledger} l \
             WHERE l.\"table_name\" = r.\"table_name\" AND l.\"batch_id\" = r.\"batch_id\")"
        ),
        format!("DROP TABLE {rows}"),
        format!("DROP TABLE {dedup}"),
        format!("DROP TABLE {raw}"),
    ])
}

/// The `(table, batch, rows, files)` rows of `request`'s ledger entries as SQL literals.
fn ledger_values(table_lit: &str, request: &LoadRequest) -> Result<Vec<String>, RedshiftError> {
    request
        .ledger_rows()
        .iter()
        .map(|b| {
            Ok(format!(
                "({table_lit}, {}, {}, {})",
                literal("batch id", &b.batch_id)?,
                b.rows,
                b.files
            ))
        })
        .collect()
}

/// The query counting how many of `request`'s batches the ledger has (equal to their number:
/// the load already happened).
pub fn ledger_count_sql(schema: &Ident, request: &LoadRequest) -> Result<String, RedshiftError> {
    let table_lit = literal("table", &request.table)?;
    let ids = request
        .ledger_rows()
        .iter()
        .map(|b| literal("batch id", &b.batch_id))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(format!(
        "SELECT COUNT(*) AS n FROM {schema}.\"{LEDGER_TABLE}\" WHERE \"table_name\" = {table_lit} \
         AND \"batch_id\" IN ({})",
        ids.join(", ")
    ))
}

/// The batch ids of one table in the ledger (parameter `:table`).
pub fn ledger_loaded_sql(schema: &Ident) -> String {
    format!("SELECT \"batch_id\" FROM {schema}.\"{LEDGER_TABLE}\" WHERE \"table_name\" = :table")
}

#[cfg(test)]
mod tests {
    use super::*;
    use etl_warehouse::LoadFile;

    fn request(uris: &[&str]) -> LoadRequest {
        LoadRequest {
            table: "call_events".into(),
            batch_id: "calls.ndjson-1-100".into(),
            files: uris
                .iter()
                .map(|u| LoadFile {
                    uri: (*u).into(),
                    rows: 10,
                    bytes: 1234,
                })
                .collect(),
            batches: Vec::new(),
            columns: Vec::new(),
        }
    }

    #[test]
    fn the_manifest_lists_each_file_once_with_its_length() {
        let m = Manifest::for_request(&request(&[
            "s3://lake-b/a.parquet",
            "s3://lake-b/a.parquet",
            "s3://lake-b/b.parquet",
        ]));
        let json = m.map(|m| m.to_json()).unwrap_or_default();
        assert_eq!(
            json,
            r#"{"entries":[{"url":"s3://lake-b/a.parquet","mandatory":true,"meta":{"content_length":1234}},{"url":"s3://lake-b/b.parquet","mandatory":true,"meta":{"content_length":1234}}]}"#
        );
        let err =
            Manifest::for_request(&request(&["file:///tmp/a.parquet"])).expect_err("local file");
        assert!(err.to_string().contains("not an s3:// URL"), "{err}");
    }

    #[test]
    fn the_load_is_staging_copy_dedup_merge_ledger() -> Result<(), RedshiftError> {
        let schemas = etl_schema::embedded().map_err(|e| RedshiftError::Config(e.to_string()))?;
        let calls = schemas
            .iter()
            .find(|s| s.stream == "call_events")
            .ok_or(RedshiftError::Config("no schema".into()))?;
        let table = TableDef::from_schema(calls)?;
        let schema = Ident::new("schema", "analytics")?;
        let req = request(&["s3://lake-b/a.parquet"]);
        let spec = LoadSpec {
            schema: &schema,
            request: &req,
            manifest_url: "s3://lake-b/_manifests/x.manifest",
            iam_role_arn: "arn:aws:iam::123456789012:role/Copy",
            loaded_at: "2024-05-01 00:00:00",
        };
        let sqls = load_sqls(&table, &spec)?;
        assert_eq!(sqls.len(), 10);
        assert!(sqls[1].starts_with("COPY \"stage_call_events_") && sqls[1].ends_with(
            "FROM 's3://lake-b/_manifests/x.manifest' IAM_ROLE 'arn:aws:iam::123456789012:role/Copy' FORMAT AS PARQUET MANIFEST"
        ), "{}", sqls[1]);
        assert!(
            sqls[3].starts_with("MERGE INTO \"analytics\".\"call_events\" USING"),
            "{}",
            sqls[3]
        );
        assert!(
            !sqls[3].contains("\"event_id\" = s.\"event_id\","),
            "the key is not updated: {}",
            sqls[3]
        );
        let bad_role = LoadSpec {
            iam_role_arn: "arn:aws:iam::123456789012:role/x'; drop table y; --",
            ..spec.clone()
        };
        assert!(load_sqls(&table, &bad_role).is_err());
        let bad_batch = LoadRequest {
            batch_id: "b\\'; drop table y; --".into(),
            ..req.clone()
        };
        assert!(load_sqls(
            &table,
            &LoadSpec {
                request: &bad_batch,
                ..spec
            }
        )
        .is_err());
        Ok(())
    }
}
