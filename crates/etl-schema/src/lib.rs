//! Stream schemas: the declarative files in `schemas/` and everything derived from them.
//!
//! A [`StreamSchema`] is the single source of truth for one stream. From it this crate derives
//! the Arrow schema the decoder fills ([`StreamSchema::decoded_arrow_schema`]), the lake columns
//! ([`StreamSchema::lake_columns`]) with their Glue/Hive and Redshift types, and the evolution
//! check between two versions ([`evolution::check_evolution`]).
//!
//! It does not parse events (see `etl-decode`), run SQL (`etl-transform`) or talk to any catalog.

pub mod calendar;
pub mod evolution;
mod lake;
mod limits;
mod model;

pub use lake::{LakeColumn, PARTITION_KEYS};
pub use limits::{max_text_bytes, WAREHOUSE_TEXT_MAX_BYTES};
pub use model::{Field, FieldType, SchemaError, StreamSchema, ARRIVED_AT_COLUMN, EXTRAS_COLUMN};

/// The schemas compiled into the binary, used when no `schemas/` directory is configured
/// (`etl demo` runs with these). The files in the repository's `schemas/` are the source.
pub fn embedded() -> Result<Vec<StreamSchema>, SchemaError> {
    // Every schemas/*.toml, listed by build.rs: adding a stream adds no code.
    const FILES: &[(&str, &str)] = include!(concat!(env!("OUT_DIR"), "/embedded_schemas.rs"));
    FILES
        .iter()
        .map(|(origin, text)| StreamSchema::from_toml_str(text, origin))
        .collect()
}

/// Loads every `*.toml` file of `dir`, sorted by stream name.
pub fn load_dir(dir: &std::path::Path) -> Result<Vec<StreamSchema>, SchemaError> {
    let entries = std::fs::read_dir(dir).map_err(|source| SchemaError::Io {
        path: dir.display().to_string(),
        source,
    })?;
    let mut out = Vec::new();
    for entry in entries {
        let path = entry
            .map_err(|source| SchemaError::Io {
                path: dir.display().to_string(),
                source,
            })?
            .path();
        if path.extension().and_then(|e| e.to_str()) == Some("toml") {
            out.push(StreamSchema::load(&path)?);
        }
    }
    if out.is_empty() {
        return Err(SchemaError::Invalid {
            origin: dir.display().to_string(),
            message: "no *.toml schema files found; point `schemas_dir` at the repository's `schemas/` folder".into(),
        });
    }
    out.sort_by(|a, b| a.stream.cmp(&b.stream));
    Ok(out)
}

#[cfg(test)]
mod tests;
