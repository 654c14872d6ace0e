//! The Glue `TableInput`, `StorageDescriptor` and `PartitionInput` of a lake table: pure
//! functions of the stream schema and the lake location, so they can be checked without a server.

use etl_aws::glue::types::{Column, PartitionInput, SerDeInfo, StorageDescriptor, TableInput};
use etl_lake::catalog::CatalogError;
use etl_lake::PartitionValues;
use etl_schema::{StreamSchema, PARTITION_KEYS};
use std::collections::HashMap;

/// `TableType` of every lake table.
pub const TABLE_TYPE: &str = "EXTERNAL_TABLE";
/// Hive input format Athena needs for Parquet.
pub const INPUT_FORMAT: &str = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat";
/// Hive output format of Parquet tables.
pub const OUTPUT_FORMAT: &str = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat";
/// Athena's Parquet SerDe.
pub const SERDE_LIBRARY: &str = "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe";
/// Table parameter holding the stream schema (JSON) the table was last synced from; the
/// evolution check compares against it.
pub const SCHEMA_PARAMETER: &str = "etl.schema";
/// Table parameter holding the schema version, for people reading the catalog.
pub const SCHEMA_VERSION_PARAMETER: &str = "etl.schema_version";
/// Longest column comment Glue accepts.
const MAX_COMMENT: usize = 255;
/// Longest `StorageDescriptor.Location` Glue accepts.
const MAX_LOCATION: usize = 2056;

/// Athena partition projection for `dt` (a date, `yyyy-MM-dd`, daily, from `dt_start` to NOW)
/// and `hour` (`00`..`23`). With it Athena ignores the partitions registered in Glue, which are
/// still registered for Redshift Spectrum and EMR.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Projection {
    /// First `dt` of the projected range, `YYYY-MM-DD`.
    pub dt_start: String,
}

/// The table's location: `<lake>/<table>/`, e.g. `s3://bucket/prefix/app_events/`.
pub fn table_location(lake_location: &str, table: &str) -> String {
    format!("{}/{table}/", lake_location.trim_end_matches('/'))
}

fn check_location(location: &str) -> Result<(), CatalogError> {
    if !location.starts_with("s3://") {
        return Err(CatalogError::Backend(format!(
            "Glue table location `{location}` must be an s3:// URL (Athena reads S3 only); configure the lake as s3://bucket/prefix"
        )));
    }
    if location.len() > MAX_LOCATION {
        return Err(CatalogError::Backend(format!(
            "Glue table location is {} characters long, over Glue's limit of {MAX_LOCATION}; use a shorter lake prefix",
            location.len()
        )));
    }
    Ok(())
}

fn comment(doc: &str) -> String {
    // One line, at most 255 characters (Glue's limit), cut on a character boundary.
    let flat: String = doc.split_whitespace().collect::<Vec<_>>().join(" ");
    flat.chars().take(MAX_COMMENT).collect()
}

fn build_err(what: &str, e: impl std::fmt::Display) -> CatalogError {
    CatalogError::Backend(format!("building the Glue {what} failed: {e}"))
}

/// Data columns of the table (partition keys excluded), with Hive types and comments.
pub fn columns(schema: &StreamSchema) -> Result<Vec<Column>, CatalogError> {
    schema
        .lake_columns()
        .into_iter()
        .map(|c| {
            Column::builder()
                .name(c.name)
                .r#type(c.hive_type)
                .comment(comment(&c.doc))
                .build()
                .map_err(|e| build_err("column", e))
        })
        .collect()
}

/// `dt` and `hour`, both `string`.
pub fn partition_keys() -> Result<Vec<Column>, CatalogError> {
    PARTITION_KEYS
        .iter()
        .map(|k| {
            let doc = if *k == "dt" {
                "Event date (UTC) of occurred_at, YYYY-MM-DD."
            } else {
                "Event hour (UTC) of occurred_at, HH."
            };
            Column::builder()
                .name(*k)
                .r#type("string")
                .comment(doc)
                .build()
                .map_err(|e| build_err("partition key", e))
        })
        .collect()
}

/// The Parquet storage descriptor at `location` with `columns`.
pub fn storage_descriptor(location: &str, columns: Vec<Column>) -> StorageDescriptor {
    StorageDescriptor::builder()
        .set_columns(Some(columns))
        .location(location)
        .input_format(INPUT_FORMAT)
        .output_format(OUTPUT_FORMAT)
        .serde_info(
            SerDeInfo::builder()
                .serialization_library(SERDE_LIBRARY)
                .parameters("serialization.format", "1")
                .build(),
        )
        .build()
}

/// The complete `TableInput` of `schema`'s table in a lake at `lake_location`.
pub fn table_input(
    schema: &StreamSchema,
    lake_location: &str,
    projection: Option<&Projection>,
) -> Result<TableInput, CatalogError> {
    let location = table_location(lake_location, &schema.stream);
    check_location(&location)?;
    let schema_json =
        serde_json::to_string(schema).map_err(|e| build_err("schema parameter", e))?;
    let mut parameters: HashMap<String, String> = HashMap::from([
        ("classification".to_string(), "parquet".to_string()),
        ("EXTERNAL".to_string(), "TRUE".to_string()),
        (SCHEMA_PARAMETER.to_string(), schema_json),
        (
            SCHEMA_VERSION_PARAMETER.to_string(),
            schema.version.to_string(),
        ),
    ]);
    if let Some(p) = projection {
        parameters.extend(projection_parameters(p, &location));
    }
    TableInput::builder()
        .name(&schema.stream)
        .description(comment_long(&schema.description))
        .table_type(TABLE_TYPE)
        .set_parameters(Some(parameters))
        .storage_descriptor(storage_descriptor(&location, columns(schema)?))
        .set_partition_keys(Some(partition_keys()?))
        .build()
        .map_err(|e| build_err("table input", e))
}

fn comment_long(text: &str) -> String {
    text.chars().take(2048).collect()
}

/// Athena partition-projection table parameters for `dt` and `hour`.
pub fn projection_parameters(p: &Projection, table_location: &str) -> Vec<(String, String)> {
    [
        ("projection.enabled", "true".to_string()),
        ("projection.dt.type", "date".to_string()),
        ("projection.dt.format", "yyyy-MM-dd".to_string()),
        ("projection.dt.range", format!("{},NOW", p.dt_start)),
        ("projection.dt.interval", "1".to_string()),
        ("projection.dt.interval.unit", "DAYS".to_string()),
        ("projection.hour.type", "integer".to_string()),
        ("projection.hour.range", "0,23".to_string()),
        ("projection.hour.digits", "2".to_string()),
        (
            "storage.location.template",
            format!("{table_location}dt=${{dt}}/hour=${{hour}}/"),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// A partition of a table whose storage descriptor is `table_sd`: the same descriptor (columns,
/// formats, SerDe) with the partition's own `Location`.
pub fn partition_input(
    table_sd: &StorageDescriptor,
    p: &PartitionValues,
) -> Result<PartitionInput, CatalogError> {
    let table_location = table_sd.location().ok_or_else(|| {
        CatalogError::Backend("the Glue table has no StorageDescriptor.Location".into())
    })?;
    let mut sd = table_sd.clone();
    sd.location = Some(format!(
        "{}/{}/",
        table_location.trim_end_matches('/'),
        p.path()
    ));
    Ok(PartitionInput::builder()
        .values(&p.dt)
        .values(&p.hour)
        .storage_descriptor(sd)
        .build())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema() -> StreamSchema {
        etl_schema::embedded().unwrap().remove(0)
    }

    #[test]
    fn table_input_has_the_fields_athena_needs() {
        let s = schema();
        let t = table_input(&s, "s3://bucket/lake/", None).unwrap();
        assert_eq!(t.name(), s.stream);
        assert_eq!(t.table_type(), Some("EXTERNAL_TABLE"));
        let params = t.parameters().unwrap();
        assert_eq!(
            params.get("classification").map(String::as_str),
            Some("parquet")
        );
        assert_eq!(params.get("EXTERNAL").map(String::as_str), Some("TRUE"));
        assert!(!params.contains_key("projection.enabled"));
        let stored: StreamSchema = serde_json::from_str(&params[SCHEMA_PARAMETER]).unwrap();
        assert_eq!(stored, s);
        let sd = t.storage_descriptor().unwrap();
        assert_eq!(
            sd.location(),
            Some(format!("s3://bucket/lake/{}/", s.stream).as_str())
        );
        assert_eq!(sd.columns().len(), s.lake_columns().len());
        assert!(sd
            .columns()
            .iter()
            .all(|c| c.comment().is_some_and(|x| x.chars().count() <= 255)));
        let keys: Vec<(&str, Option<&str>)> = t
            .partition_keys()
            .iter()
            .map(|c| (c.name(), c.r#type()))
            .collect();
        assert_eq!(keys, [("dt", Some("string")), ("hour", Some("string"))]);
    }

    #[test]
    fn local_locations_are_refused_and_projection_is_optional() {
        let err = table_input(&schema(), "/tmp/lake", None).unwrap_err();
        assert!(err.to_string().contains("s3://"), "{err}");
        let t = table_input(
            &schema(),
            "s3://b/p",
            Some(&Projection {
                dt_start: "2024-01-01".into(),
            }),
        )
        .unwrap();
        let params = t.parameters().unwrap();
        assert_eq!(
            params.get("projection.dt.range").map(String::as_str),
            Some("2024-01-01,NOW")
        );
        let template = &params["storage.location.template"];
        assert!(
            template.ends_with("/dt=${dt}/hour=${hour}/") && template.starts_with("s3://b/p/"),
            "{template}"
        );
    }

    #[test]
    fn partition_copies_the_table_descriptor_with_its_own_location() {
        let t = table_input(&schema(), "s3://b/p", None).unwrap();
        let sd = t.storage_descriptor().unwrap();
        let p = partition_input(
            sd,
            &PartitionValues {
                dt: "2024-05-01".into(),
                hour: "07".into(),
            },
        )
        .unwrap();
        assert_eq!(p.values(), ["2024-05-01", "07"]);
        let psd = p.storage_descriptor().unwrap();
        assert_eq!(
            psd.location(),
            Some(format!("s3://b/p/{}/dt=2024-05-01/hour=07/", t.name()).as_str())
        );
        assert_eq!(psd.columns(), sd.columns());
        assert_eq!(psd.serde_info(), sd.serde_info());
        assert_eq!(psd.input_format(), Some(INPUT_FORMAT));
    }
}
