//! `etl dashboards deploy`: a CloudFormation template with the QuickSight data source, data
//! sets (+ SPICE refresh schedules) and dashboards, from the same files that are validated and
//! rendered. The template is a pure function of the files and the parameters: the same input
//! gives byte-identical output, so applying it again is an empty change set. Applying it
//! (`aws cloudformation deploy`, or Terraform's `aws_cloudformation_stack`) is left to the
//! caller; this crate sends nothing to AWS.

use crate::error::{DashboardError, Result};
use crate::project::{fill, stem, Project};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// `[dashboards]` of the configuration file: the values of the `${…}` placeholders.
///
/// ```toml
/// [dashboards]
/// account_id = "123456789012"
/// region = "eu-west-1"
/// redshift_host = "analytics.123456789012.eu-west-1.redshift-serverless.amazonaws.com"
/// secret_arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:quicksight-redshift"
/// owner_arn = "arn:aws:quicksight:eu-west-1:123456789012:group/default/analysts"
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeployConfig {
    /// AWS account (12 digits) that owns the QuickSight resources: `${account_id}`.
    pub account_id: Option<String>,
    /// Region of QuickSight and the warehouse, e.g. `eu-west-1`: `${region}`.
    pub region: Option<String>,
    /// Host name of the Redshift endpoint (cluster or serverless workgroup): `${redshift_host}`.
    pub redshift_host: Option<String>,
    /// Port of the Redshift endpoint: `${redshift_port}`. Default 5439.
    #[serde(default = "default_port")]
    pub redshift_port: u16,
    /// Database that holds the curated views: `${database}`. Default `dev`.
    #[serde(default = "default_database")]
    pub database: String,
    /// Schema of the curated views: `${schema}`. Default `public`.
    #[serde(default = "default_schema")]
    pub schema: String,
    /// Secrets Manager secret (user name and password) QuickSight connects with: `${secret_arn}`.
    pub secret_arn: Option<String>,
    /// QuickSight user or group given full rights on every resource; without it the resources
    /// get no permissions (only the account's QuickSight admins see them).
    pub owner_arn: Option<String>,
}

/// Default of [`DeployConfig::redshift_port`].
pub fn default_port() -> u16 {
    5439
}
/// Default of [`DeployConfig::database`].
pub fn default_database() -> String {
    "dev".into()
}
/// Default of [`DeployConfig::schema`].
pub fn default_schema() -> String {
    "public".into()
}

impl Default for DeployConfig {
    fn default() -> Self {
        DeployConfig {
            account_id: None,
            region: None,
            redshift_host: None,
            redshift_port: default_port(),
            database: default_database(),
            schema: default_schema(),
            secret_arn: None,
            owner_arn: None,
        }
    }
}

impl DeployConfig {
    /// The placeholder values: these settings, then `overrides` (`--param name=value`).
    pub fn params(&self, overrides: &BTreeMap<String, String>) -> BTreeMap<String, String> {
        let mut p = BTreeMap::new();
        let mut put = |k: &str, v: Option<String>| {
            if let Some(v) = v {
                p.insert(k.to_string(), v);
            }
        };
        put("account_id", self.account_id.clone());
        put("region", self.region.clone());
        put("redshift_host", self.redshift_host.clone());
        put("redshift_port", Some(self.redshift_port.to_string()));
        put("database", Some(self.database.clone()));
        put("schema", Some(self.schema.clone()));
        put("secret_arn", self.secret_arn.clone());
        if let Some(owner) = &self.owner_arn {
            p.insert("owner_arn".into(), owner.clone());
        }
        p.extend(overrides.iter().map(|(k, v)| (k.clone(), v.clone())));
        p
    }
}

/// One resource of the template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedResource {
    /// CloudFormation logical id.
    pub logical_id: String,
    /// `AWS::QuickSight::…`.
    pub resource_type: &'static str,
    /// The QuickSight id (`DataSourceId`, `DataSetId`, `DashboardId`, schedule id).
    pub id: String,
}

/// The generated template and what it holds.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The template, pretty JSON with a final newline.
    pub template: String,
    /// Its resources, in template order.
    pub resources: Vec<PlannedResource>,
}

const DATA_SOURCE_ACTIONS: [&str; 6] = [
    "quicksight:DeleteDataSource",
    "quicksight:DescribeDataSource",
    "quicksight:DescribeDataSourcePermissions",
    "quicksight:PassDataSource",
    "quicksight:UpdateDataSource",
    "quicksight:UpdateDataSourcePermissions",
];
const DATA_SET_ACTIONS: [&str; 10] = [
    "quicksight:CancelIngestion",
    "quicksight:CreateIngestion",
    "quicksight:DeleteDataSet",
    "quicksight:DescribeDataSet",
    "quicksight:DescribeDataSetPermissions",
    "quicksight:DescribeIngestion",
    "quicksight:ListIngestions",
    "quicksight:PassDataSet",
    "quicksight:UpdateDataSet",
    "quicksight:UpdateDataSetPermissions",
];
const DASHBOARD_ACTIONS: [&str; 8] = [
    "quicksight:DeleteDashboard",
    "quicksight:DescribeDashboard",
    "quicksight:DescribeDashboardPermissions",
    "quicksight:ListDashboardVersions",
    "quicksight:QueryDashboard",
    "quicksight:UpdateDashboard",
    "quicksight:UpdateDashboardPermissions",
    "quicksight:UpdateDashboardPublishedVersion",
];

/// `call-operations` → `CallOperations` (CloudFormation logical ids are alphanumeric).
fn pascal(id: &str) -> String {
    id.split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| {
            let mut cs = w.chars();
            cs.next()
                .map(|f| f.to_ascii_uppercase().to_string() + cs.as_str())
                .unwrap_or_default()
        })
        .collect()
}

/// Builds the template from `project` with placeholder values `params` (every placeholder
/// used must have one, and `account_id` is required).
pub fn plan(project: &Project, params: &BTreeMap<String, String>) -> Result<Plan> {
    let account =
        params
            .get("account_id")
            .cloned()
            .ok_or_else(|| DashboardError::MissingParameter {
                file: "(the template's AwsAccountId)".into(),
                name: "account_id".into(),
            })?;
    let permissions = |actions: &[&str]| -> Option<Value> {
        params
            .get("owner_arn")
            .map(|owner| json!([{ "Principal": owner, "Actions": actions }]))
    };
    let mut resources = serde_json::Map::new();
    let mut planned = Vec::new();
    let mut add = |logical: String,
                   rtype: &'static str,
                   id: String,
                   depends: Vec<String>,
                   mut props: serde_json::Map<String, Value>,
                   perms: Option<Value>| {
        props.insert("AwsAccountId".into(), Value::String(account.clone()));
        if let Some(p) = perms {
            props.insert("Permissions".into(), p);
        }
        let mut res = serde_json::Map::new();
        res.insert("Type".into(), Value::String(rtype.into()));
        if !depends.is_empty() {
            res.insert("DependsOn".into(), json!(depends));
        }
        res.insert("Properties".into(), Value::Object(props));
        resources.insert(logical.clone(), Value::Object(res));
        planned.push(PlannedResource {
            logical_id: logical,
            resource_type: rtype,
            id,
        });
    };

    // The data source.
    let src = &project.data_source;
    let mut props = object(&src.file, fill(&src.file, &src.raw, params)?)?;
    if let Some(port) = props
        .get_mut("DataSourceParameters")
        .and_then(|p| p.get_mut("RedshiftParameters"))
        .and_then(|r| r.get_mut("Port"))
    {
        // CloudFormation's Port is a number; the placeholder filled a string.
        if let Some(n) = port.as_str().and_then(|s| s.parse::<u64>().ok()) {
            *port = json!(n);
        }
    }
    let source_logical = format!("DataSource{}", pascal(&src.value.data_source_id));
    add(
        source_logical.clone(),
        "AWS::QuickSight::DataSource",
        src.value.data_source_id.clone(),
        vec![],
        props,
        permissions(&DATA_SOURCE_ACTIONS),
    );

    // Data sets and their refresh schedules.
    let mut data_set_logical: BTreeMap<String, String> = BTreeMap::new();
    for ds in &project.data_sets {
        let mut props = object(&ds.file, fill(&ds.file, &ds.raw, params)?)?;
        let schedule = props.remove("RefreshSchedule");
        let logical = format!("DataSet{}", pascal(&ds.value.data_set_id));
        data_set_logical.insert(ds.value.data_set_id.clone(), logical.clone());
        add(
            logical.clone(),
            "AWS::QuickSight::DataSet",
            ds.value.data_set_id.clone(),
            vec![source_logical.clone()],
            props,
            permissions(&DATA_SET_ACTIONS),
        );
        if let Some(schedule) = schedule {
            let id = schedule
                .get("ScheduleId")
                .and_then(Value::as_str)
                .unwrap_or(stem(&ds.file))
                .to_string();
            let mut props = serde_json::Map::new();
            props.insert(
                "DataSetId".into(),
                Value::String(ds.value.data_set_id.clone()),
            );
            props.insert("Schedule".into(), schedule);
            add(
                format!("RefreshSchedule{}", pascal(&ds.value.data_set_id)),
                "AWS::QuickSight::RefreshSchedule",
                id,
                vec![logical],
                props,
                None,
            );
        }
    }

    // Dashboards (same Definition JSON, placeholders filled).
    for d in &project.dashboards {
        let props = object(&d.file, fill(&d.file, &d.raw, params)?)?;
        let depends: Vec<String> = d
            .value
            .definition
            .data_set_identifier_declarations
            .iter()
            .filter_map(|decl| {
                decl.data_set_id()
                    .and_then(|id| data_set_logical.get(id))
                    .cloned()
            })
            .collect();
        add(
            format!("Dashboard{}", pascal(&d.value.dashboard_id)),
            "AWS::QuickSight::Dashboard",
            d.value.dashboard_id.clone(),
            depends,
            props,
            permissions(&DASHBOARD_ACTIONS),
        );
    }

    let template = json!({
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": "etl QuickSight dashboards over the curated views: data source, data sets, refresh schedules, dashboards. Generated by `etl dashboards deploy` from dashboards/; do not edit.",
        "Resources": Value::Object(resources),
    });
    let mut text = serde_json::to_string_pretty(&template).map_err(|e| DashboardError::Parse {
        file: "(template)".into(),
        message: e.to_string(),
    })?;
    text.push('\n');
    Ok(Plan {
        template: text,
        resources: planned,
    })
}

fn object(file: &str, value: Value) -> Result<serde_json::Map<String, Value>> {
    match value {
        Value::Object(map) => Ok(map),
        _ => Err(DashboardError::Parse {
            file: file.into(),
            message: "the file must hold a JSON object".into(),
        }),
    }
}

/// The file name of the template in `--out DIR`.
pub const TEMPLATE_FILE: &str = "etl-dashboards.template.json";

/// What writing the template did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOutcome {
    /// No template was there.
    Created,
    /// The template changed.
    Updated,
    /// The same bytes were there already: nothing to deploy.
    Unchanged,
}

/// Writes `plan` to `dir/etl-dashboards.template.json` unless the same bytes are there.
pub fn write(plan: &Plan, dir: &std::path::Path) -> Result<(std::path::PathBuf, WriteOutcome)> {
    std::fs::create_dir_all(dir).map_err(crate::error::io_err(dir))?;
    let path = dir.join(TEMPLATE_FILE);
    let outcome = match std::fs::read(&path) {
        Ok(old) if old == plan.template.as_bytes() => return Ok((path, WriteOutcome::Unchanged)),
        Ok(_) => WriteOutcome::Updated,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => WriteOutcome::Created,
        Err(e) => return Err(crate::error::io_err(&path)(e)),
    };
    std::fs::write(&path, &plan.template).map_err(crate::error::io_err(&path))?;
    Ok((path, outcome))
}
