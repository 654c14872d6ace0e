//! Schema evolution: which changes between two versions of a stream are allowed.
//!
//! Allowed: new fields appended at the end (nullable in the lake), doc changes, new enum values,
//! a longer `max_length`. Refused: removing, renaming, reordering or retyping a column, or making
//! an optional field required — each would break readers of existing Parquet files, the Glue
//! table, or Redshift's by-position COPY.

use crate::{LakeColumn, StreamSchema};

/// A change that existing data cannot follow.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EvolutionError {
    #[error("stream `{stream}`: column `{column}` was removed or renamed; existing files, the Glue table and the warehouse keep it, so restore it. Supported path: keep `{column}` and add the new field as an optional field at the end of the schema (new version), then backfill it (`etl backfill`); to start over, create a new stream")]
    Removed { stream: String, column: String },
    #[error("stream `{stream}`: column `{column}` changed type from {old} to {new}; a type change is breaking (existing files hold {old}). Supported path: keep `{column}` as {old} and add a new optional field of type {new} at the end of the schema (new version), then backfill it (`etl backfill`)")]
    TypeChanged {
        stream: String,
        column: String,
        old: String,
        new: String,
    },
    #[error("stream `{stream}`: column `{column}` moved from position {old} to {new}; add new fields at the end of the schema")]
    Moved {
        stream: String,
        column: String,
        old: usize,
        new: usize,
    },
    #[error("stream `{stream}`: field `{column}` is required but was not before, or is new and required; existing events and files lack it. Supported path: keep `{column}` optional (required = false), add new fields as optional fields at the end, and backfill them (`etl backfill`)")]
    AddedRequired { stream: String, column: String },
    #[error("stream `{stream}`: version must grow when the schema changes (old {old}, new {new})")]
    Version { stream: String, old: u32, new: u32 },
}

/// Checks that `new` is an additive evolution of `old` and returns the added lake columns.
pub fn check_evolution(
    old: &StreamSchema,
    new: &StreamSchema,
) -> Result<Vec<LakeColumn>, EvolutionError> {
    let stream = new.stream.clone();
    let (old_cols, new_cols) = (old.lake_columns(), new.lake_columns());
    // `extras` and `arrived_at` always come last: compare the schema-defined prefix.
    let (old_body, new_body) = (
        &old_cols[..old_cols.len() - crate::lake::PIPELINE_COLUMNS],
        &new_cols[..new_cols.len() - crate::lake::PIPELINE_COLUMNS],
    );
    for (i, oc) in old_body.iter().enumerate() {
        match new_body.iter().position(|nc| nc.name == oc.name) {
            None => {
                return Err(EvolutionError::Removed {
                    stream,
                    column: oc.name.clone(),
                })
            }
            Some(j) if j != i => {
                return Err(EvolutionError::Moved {
                    stream,
                    column: oc.name.clone(),
                    old: i,
                    new: j,
                })
            }
            Some(j) => {
                let nc = &new_body[j];
                if oc.nullable && !nc.nullable {
                    return Err(EvolutionError::AddedRequired {
                        stream,
                        column: oc.name.clone(),
                    });
                }
                if nc.data_type != oc.data_type {
                    return Err(EvolutionError::TypeChanged {
                        stream,
                        column: oc.name.clone(),
                        old: oc.hive_type.to_string(),
                        new: nc.hive_type.to_string(),
                    });
                }
            }
        }
    }
    let added: Vec<LakeColumn> = new_body[old_body.len()..].to_vec();
    if let Some(c) = added.iter().find(|c| !c.nullable) {
        return Err(EvolutionError::AddedRequired {
            stream,
            column: c.name.clone(),
        });
    }
    if old != new && new.version <= old.version {
        return Err(EvolutionError::Version {
            stream,
            old: old.version,
            new: new.version,
        });
    }
    Ok(added)
}
