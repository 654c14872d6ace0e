//! The files of a dashboards folder: `datasource.json`, `datasets/<id>.json` and one
//! `<dashboard-id>.json` per dashboard; `${name}` placeholders and their values.

use crate::error::{io_err, DashboardError, Result};
use crate::model::{DataSet, Definition};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// A dashboard file: the `CreateDashboard` fields we keep in the repository.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct DashboardFile {
    /// Id of the dashboard, equal to the file stem.
    pub dashboard_id: String,
    /// Title.
    pub name: String,
    /// The QuickSight `Definition`.
    pub definition: Definition,
}

/// `datasource.json`: the properties of `AWS::QuickSight::DataSource` we use.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct DataSource {
    /// Id; data sets point at `…:datasource/<DataSourceId>`.
    pub data_source_id: String,
    /// Display name.
    pub name: String,
    /// `REDSHIFT`.
    pub r#type: String,
    /// `{"RedshiftParameters": {...}}`.
    pub data_source_parameters: serde_json::Value,
    /// `{"SecretArn": ...}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<serde_json::Value>,
}

/// One parsed file: its name (relative to the folder), the JSON as written, the typed value.
#[derive(Debug, Clone)]
pub struct SourceFile<T> {
    /// Path relative to the dashboards folder, e.g. `datasets/calls-per-hour.json`.
    pub file: String,
    /// The JSON as written (placeholders not filled).
    pub raw: serde_json::Value,
    /// The typed view of `raw`.
    pub value: T,
}

/// Every file of a dashboards folder.
#[derive(Debug, Clone)]
pub struct Project {
    /// `datasource.json`.
    pub data_source: SourceFile<DataSource>,
    /// `datasets/*.json`, sorted by file name.
    pub data_sets: Vec<SourceFile<DataSet>>,
    /// `*.json` besides `datasource.json`, sorted by file name.
    pub dashboards: Vec<SourceFile<DashboardFile>>,
}

/// The name of the data source file in a dashboards folder.
pub const DATA_SOURCE_FILE: &str = "datasource.json";

impl Project {
    /// Reads a dashboards folder.
    pub fn load(dir: &Path) -> Result<Project> {
        let mut files = Vec::new();
        for (sub, prefix) in [(dir.to_path_buf(), ""), (dir.join("datasets"), "datasets/")] {
            let mut names = Vec::new();
            for entry in std::fs::read_dir(&sub).map_err(io_err(&sub))? {
                let path = entry.map_err(io_err(&sub))?.path();
                if path.is_file() && path.extension().and_then(|e| e.to_str()) == Some("json") {
                    names.push(path);
                }
            }
            names.sort();
            for path in names {
                let text = std::fs::read_to_string(&path).map_err(io_err(&path))?;
                let name = path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .unwrap_or_default();
                files.push((format!("{prefix}{name}"), text));
            }
        }
        Project::from_files(files)
    }

    /// The repository's `dashboards/` folder, compiled into the binary (a test checks that
    /// it equals the folder).
    pub fn embedded() -> Result<Project> {
        macro_rules! file {
            ($name:literal) => {
                (
                    $name.to_string(),
                    include_str!(concat!("../../../dashboards/", $name)).to_string(),
                )
            };
        }
        Project::from_files(vec![
            file!("app-engagement.json"),
            file!("call-operations.json"),
            file!("datasource.json"),
            file!("datasets/answer-seizure-ratio.json"),
            file!("datasets/call-duration.json"),
            file!("datasets/call-outcomes.json"),
            file!("datasets/call-quality.json"),
            file!("datasets/calls-per-hour.json"),
            file!("datasets/daily-active-users.json"),
            file!("datasets/failed-call-causes.json"),
            file!("datasets/messages-per-hour.json"),
            file!("datasets/mos-distribution.json"),
            file!("datasets/weekly-active-users.json"),
        ])
    }

    /// Builds a project from `(relative path, text)` pairs.
    pub fn from_files(files: Vec<(String, String)>) -> Result<Project> {
        let mut data_source = None;
        let mut data_sets = Vec::new();
        let mut dashboards = Vec::new();
        for (file, text) in files {
            if file == DATA_SOURCE_FILE {
                data_source = Some(parse(&file, &text)?);
            } else if file.starts_with("datasets/") {
                data_sets.push(parse(&file, &text)?);
            } else {
                dashboards.push(parse(&file, &text)?);
            }
        }
        let data_source = data_source.ok_or_else(|| DashboardError::Parse {
            file: DATA_SOURCE_FILE.into(),
            message: "missing: the folder needs the Redshift data source definition".into(),
        })?;
        data_sets.sort_by(|a: &SourceFile<DataSet>, b| a.file.cmp(&b.file));
        dashboards.sort_by(|a: &SourceFile<DashboardFile>, b| a.file.cmp(&b.file));
        Ok(Project {
            data_source,
            data_sets,
            dashboards,
        })
    }

    /// The data set with id `id`.
    pub fn data_set(&self, id: &str) -> Option<&SourceFile<DataSet>> {
        self.data_sets.iter().find(|d| d.value.data_set_id == id)
    }
}

fn parse<T: serde::de::DeserializeOwned>(file: &str, text: &str) -> Result<SourceFile<T>> {
    let perr = |e: serde_json::Error| DashboardError::Parse {
        file: file.to_string(),
        message: e.to_string(),
    };
    let raw: serde_json::Value = serde_json::from_str(text).map_err(perr)?;
    let value: T = serde_json::from_str(text).map_err(perr)?;
    Ok(SourceFile {
        file: file.to_string(),
        raw,
        value,
    })
}

/// The file stem of a project-relative path (`datasets/calls-per-hour.json` → `calls-per-hour`).
pub fn stem(file: &str) -> &str {
    let name = file.rsplit('/').next().unwrap_or(file);
    name.strip_suffix(".json").unwrap_or(name)
}

/// Replaces every `${name}` in the strings of `value` with `params[name]`; a placeholder
/// without a value is an error naming `file`.
pub fn fill(
    file: &str,
    value: &serde_json::Value,
    params: &BTreeMap<String, String>,
) -> Result<serde_json::Value> {
    use serde_json::Value;
    Ok(match value {
        Value::String(s) => Value::String(fill_str(file, s, params)?),
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|v| fill(file, v, params))
                .collect::<Result<_>>()?,
        ),
        Value::Object(map) => {
            let mut out = serde_json::Map::new();
            for (k, v) in map {
                out.insert(k.clone(), fill(file, v, params)?);
            }
            Value::Object(out)
        }
        other => other.clone(),
    })
}

/// [`fill`] for one string.
pub fn fill_str(file: &str, s: &str, params: &BTreeMap<String, String>) -> Result<String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            return Err(DashboardError::Parse {
                file: file.into(),
                message: format!("unclosed placeholder in `{s}`"),
            });
        };
        let name = &after[..end];
        match params.get(name) {
            Some(v) => out.push_str(v),
            None => {
                return Err(DashboardError::MissingParameter {
                    file: file.into(),
                    name: name.into(),
                })
            }
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}
