//! The schema file model and its validation.

use arrow_schema::{DataType, Field as ArrowField, Fields, Schema, SchemaRef, TimeUnit};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;

/// Errors reading or validating a schema file.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("cannot read schema {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("schema {origin} is not valid TOML or has an unknown key: {message}")]
    Parse { origin: String, message: String },
    #[error("schema {origin}: {message}")]
    Invalid { origin: String, message: String },
}

/// One stream's schema, as written in `schemas/<stream>.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamSchema {
    /// Stream and table name: lowercase letters, digits and `_`.
    pub stream: String,
    /// Schema version; bump it with every change.
    pub version: u32,
    /// What the stream carries.
    #[serde(default)]
    pub description: String,
    /// Fields in column order.
    pub fields: Vec<Field>,
}

/// One field of an event. In the file: `name`, `type`, and the optional `required`,
/// `max_length` (strings), `values` (enums), `fields` (structs) and `doc`; any other key is refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawField", into = "RawField")]
pub struct Field {
    /// JSON key and column name (lowercase).
    pub name: String,
    /// The field's type and its parameters.
    pub ty: FieldType,
    /// A record without this field (or with `null`) is dead-lettered.
    pub required: bool,
    /// Longest accepted text, in bytes (string fields only).
    pub max_length: Option<usize>,
    /// What the field means; copied into catalog comments.
    pub doc: String,
}

/// Field types; see the header of `schemas/app_events.toml`.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldType {
    String,
    /// Text from a set of values. Closed (`open = false`, the default): only `values` are
    /// accepted (states the platform owns, e.g. call lifecycle events). Open (`open = true`):
    /// `values` are the known ones, and any other text of at most `max_length` bytes matching
    /// `pattern` is accepted too (names that grow with every app release).
    Enum {
        values: Vec<String>,
        open: bool,
        pattern: Option<String>,
    },
    Phone,
    Int64,
    Double,
    Boolean,
    Timestamp,
    Json,
    Struct {
        fields: Vec<Field>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum TypeName {
    String,
    Enum,
    Phone,
    Int64,
    Double,
    Boolean,
    Timestamp,
    Json,
    Struct,
}

/// The field as written in the file; `Field` is built from it with its rules checked.
/// (serde's `flatten` cannot be combined with `deny_unknown_fields`, hence this form.)
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawField {
    name: String,
    #[serde(rename = "type")]
    ty: TypeName,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    required: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_length: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    values: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    fields: Option<Vec<Field>>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    open: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pattern: Option<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    doc: String,
}

impl TryFrom<RawField> for Field {
    type Error = String;
    fn try_from(raw: RawField) -> Result<Self, String> {
        let name = raw.name;
        if raw.ty != TypeName::Enum && (raw.open || raw.pattern.is_some()) {
            return Err(format!(
                "field `{name}`: `open` and `pattern` apply to type = \"enum\" only"
            ));
        }
        if raw.pattern.is_some() && !raw.open {
            return Err(format!(
                "field `{name}`: `pattern` applies to open enums: add `open = true` or remove `pattern`"
            ));
        }
        let ty = match (raw.ty, raw.values, raw.fields) {
            (TypeName::Enum, Some(values), None) => FieldType::Enum {
                values,
                open: raw.open,
                pattern: raw.pattern,
            },
            (TypeName::Enum, None, _) => {
                return Err(format!(
                    "field `{name}`: type = \"enum\" needs `values = [...]`"
                ))
            }
            (TypeName::Struct, None, Some(fields)) => FieldType::Struct { fields },
            (TypeName::Struct, _, None) => {
                return Err(format!(
                    "field `{name}`: type = \"struct\" needs `fields = [...]`"
                ))
            }
            (_, Some(_), _) => {
                return Err(format!(
                    "field `{name}`: `values` applies to type = \"enum\" only"
                ))
            }
            (_, _, Some(_)) => {
                return Err(format!(
                    "field `{name}`: `fields` applies to type = \"struct\" only"
                ))
            }
            (TypeName::String, None, None) => FieldType::String,
            (TypeName::Phone, None, None) => FieldType::Phone,
            (TypeName::Int64, None, None) => FieldType::Int64,
            (TypeName::Double, None, None) => FieldType::Double,
            (TypeName::Boolean, None, None) => FieldType::Boolean,
            (TypeName::Timestamp, None, None) => FieldType::Timestamp,
            (TypeName::Json, None, None) => FieldType::Json,
        };
        Ok(Field {
            name,
            ty,
            required: raw.required,
            max_length: raw.max_length,
            doc: raw.doc,
        })
    }
}

impl From<Field> for RawField {
    fn from(f: Field) -> Self {
        let (mut open, mut pattern) = (false, None);
        let (ty, values, fields) = match f.ty {
            FieldType::String => (TypeName::String, None, None),
            FieldType::Enum {
                values,
                open: o,
                pattern: p,
            } => {
                (open, pattern) = (o, p);
                (TypeName::Enum, Some(values), None)
            }
            FieldType::Phone => (TypeName::Phone, None, None),
            FieldType::Int64 => (TypeName::Int64, None, None),
            FieldType::Double => (TypeName::Double, None, None),
            FieldType::Boolean => (TypeName::Boolean, None, None),
            FieldType::Timestamp => (TypeName::Timestamp, None, None),
            FieldType::Json => (TypeName::Json, None, None),
            FieldType::Struct { fields } => (TypeName::Struct, None, Some(fields)),
        };
        RawField {
            name: f.name,
            ty,
            required: f.required,
            max_length: f.max_length,
            values,
            fields,
            open,
            pattern,
            doc: f.doc,
        }
    }
}

/// Name of the column that keeps unknown keys as a JSON object.
pub const EXTRAS_COLUMN: &str = "extras";

/// Name of the column with the time a record reached the source (Kinesis'
/// `ApproximateArrivalTimestamp`; for files, the file's modification time). The pipeline adds it
/// to the decoded batch (the transform's `input`), after `extras`.
pub const ARRIVED_AT_COLUMN: &str = "arrived_at";

impl StreamSchema {
    /// Reads and validates one schema file.
    pub fn load(path: &Path) -> Result<Self, SchemaError> {
        let text = std::fs::read_to_string(path).map_err(|source| SchemaError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_toml_str(&text, &path.display().to_string())
    }

    /// Parses and validates schema text; `origin` names it in errors.
    pub fn from_toml_str(text: &str, origin: &str) -> Result<Self, SchemaError> {
        let schema: StreamSchema = toml::from_str(text).map_err(|e| SchemaError::Parse {
            origin: origin.to_string(),
            message: e.to_string(),
        })?;
        schema.validate(origin)?;
        Ok(schema)
    }

    fn validate(&self, origin: &str) -> Result<(), SchemaError> {
        let bad = |message: String| {
            Err(SchemaError::Invalid {
                origin: origin.to_string(),
                message,
            })
        };
        if !is_identifier(&self.stream) {
            return bad(format!(
                "stream name `{}` must be lowercase letters, digits and `_`",
                self.stream
            ));
        }
        if self.fields.is_empty() {
            return bad("a schema needs at least one field under [[fields]]".into());
        }
        let mut columns = HashSet::new();
        for f in &self.fields {
            validate_field(f, origin, None)?;
            for col in f.lake_names() {
                if !columns.insert(col.clone()) {
                    return bad(format!(
                        "column `{col}` appears twice (flattened struct fields count)"
                    ));
                }
            }
        }
        for reserved in [EXTRAS_COLUMN, ARRIVED_AT_COLUMN, "dt", "hour"] {
            if columns.contains(reserved) {
                return bad(format!(
                    "field name `{reserved}` is reserved; rename the field"
                ));
            }
        }
        for key in ["event_id", "occurred_at"] {
            match self.field(key) {
                Some(f) if f.required => {}
                _ => return bad(format!("every stream needs a required field `{key}`")),
            }
        }
        if self.field("occurred_at").map(|f| &f.ty) != Some(&FieldType::Timestamp) {
            return bad("`occurred_at` must have type = \"timestamp\"".into());
        }
        Ok(())
    }

    /// The top-level field called `name`.
    pub fn field(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// Arrow schema of a decoded batch: one column per top-level field (structs stay nested,
    /// phones are still raw text, json is text, timestamps are ms UTC), then `extras` (JSON text
    /// of unknown keys, null when none). Required fields are non-nullable.
    pub fn decoded_arrow_schema(&self) -> SchemaRef {
        let mut fields: Vec<ArrowField> =
            self.fields.iter().map(Field::decoded_arrow_field).collect();
        fields.push(ArrowField::new(EXTRAS_COLUMN, DataType::Utf8, true));
        Arc::new(Schema::new(fields))
    }
}

impl Field {
    /// Arrow field of this field in a decoded batch.
    pub fn decoded_arrow_field(&self) -> ArrowField {
        let dt = match &self.ty {
            FieldType::String | FieldType::Enum { .. } | FieldType::Phone | FieldType::Json => {
                DataType::Utf8
            }
            FieldType::Int64 => DataType::Int64,
            FieldType::Double => DataType::Float64,
            FieldType::Boolean => DataType::Boolean,
            FieldType::Timestamp => timestamp_ms(),
            FieldType::Struct { fields } => DataType::Struct(Fields::from(
                fields
                    .iter()
                    .map(Field::decoded_arrow_field)
                    .collect::<Vec<_>>(),
            )),
        };
        ArrowField::new(&self.name, dt, !self.required)
    }

    /// Column names this field becomes in the lake (structs flatten to `<name>_<child>`).
    pub fn lake_names(&self) -> Vec<String> {
        match &self.ty {
            FieldType::Struct { fields } => fields
                .iter()
                .flat_map(|c| {
                    c.lake_names()
                        .into_iter()
                        .map(|n| format!("{}_{}", self.name, n))
                })
                .collect(),
            _ => vec![self.name.clone()],
        }
    }
}

/// The one timestamp type of the project: milliseconds, UTC (what Athena reads).
pub fn timestamp_ms() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
}

fn validate_field(f: &Field, origin: &str, parent: Option<&str>) -> Result<(), SchemaError> {
    let path = match parent {
        Some(p) => format!("{p}.{}", f.name),
        None => f.name.clone(),
    };
    let bad = |message: String| {
        Err(SchemaError::Invalid {
            origin: origin.to_string(),
            message,
        })
    };
    if !is_identifier(&f.name) {
        return bad(format!("field `{path}`: names must be lowercase letters, digits and `_`, starting with a letter"));
    }
    let open_enum = matches!(f.ty, FieldType::Enum { open: true, .. });
    if f.max_length.is_some() && !matches!(f.ty, FieldType::String) && !open_enum {
        return bad(format!(
            "field `{path}`: max_length applies to type = \"string\" and open enums only"
        ));
    }
    match &f.ty {
        FieldType::Enum { values, .. } if values.is_empty() => bad(format!(
            "field `{path}`: an enum needs a non-empty `values` list (for an open enum: the values known today)"
        )),
        FieldType::Enum {
            values,
            open: true,
            pattern,
        } => {
            let Some(max) = f.max_length.filter(|n| (1..=65535).contains(n)) else {
                return bad(format!(
                    "field `{path}`: an open enum needs `max_length` (1 to 65535 bytes; it sizes the warehouse column)"
                ));
            };
            let re = match pattern {
                Some(p) => Some(regex::Regex::new(p).map_err(|e| SchemaError::Invalid {
                    origin: origin.to_string(),
                    message: format!("field `{path}`: `pattern` is not a valid regular expression: {e}"),
                })?),
                None => None,
            };
            match values
                .iter()
                .find(|v| v.len() > max || re.as_ref().is_some_and(|re| !re.is_match(v)))
            {
                Some(v) => bad(format!(
                    "field `{path}`: the known value `{v}` is longer than max_length or does not match `pattern`"
                )),
                None => Ok(()),
            }
        }
        FieldType::Struct { fields } => {
            if parent.is_some() {
                return bad(format!("field `{path}`: structs nest one level only"));
            }
            if fields.is_empty() {
                return bad(format!("field `{path}`: a struct needs `fields`"));
            }
            fields
                .iter()
                .try_for_each(|c| validate_field(c, origin, Some(&path)))
        }
        _ => Ok(()),
    }
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some('a'..='z'))
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && s.len() <= 255
}
