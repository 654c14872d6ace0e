//! The CloudFormation template of `deploy`: its resources in dependency order, byte-identical
//! for the same input, placeholders refused when missing, and accepted by `cfn-lint`
//! (installed into `.tools/venv` by scripts/setup-test-env).

use etl_dashboards::deploy::{plan, write, DeployConfig, WriteOutcome};
use etl_dashboards::Project;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn config() -> DeployConfig {
    DeployConfig {
        account_id: Some("123456789012".into()),
        region: Some("eu-west-1".into()),
        redshift_host: Some(
            "analytics.123456789012.eu-west-1.redshift-serverless.amazonaws.com".into(),
        ),
        secret_arn: Some(
            "arn:aws:secretsmanager:eu-west-1:123456789012:secret:quicksight-redshift-AbCdEf"
                .into(),
        ),
        owner_arn: Some("arn:aws:quicksight:eu-west-1:123456789012:group/default/analysts".into()),
        ..DeployConfig::default()
    }
}

#[test]
fn the_template_orders_resources_and_fills_every_placeholder() -> TestResult {
    let project = Project::load(&repo().join("dashboards"))?;
    let p = plan(&project, &config().params(&BTreeMap::new()))?;
    let types: Vec<&str> = p.resources.iter().map(|r| r.resource_type).collect();
    assert_eq!(types[0], "AWS::QuickSight::DataSource");
    let first_dashboard = types
        .iter()
        .position(|t| *t == "AWS::QuickSight::Dashboard")
        .ok_or("no dashboard")?;
    assert!(types[1..first_dashboard]
        .iter()
        .all(|t| *t == "AWS::QuickSight::DataSet" || *t == "AWS::QuickSight::RefreshSchedule"));
    assert_eq!(
        types
            .iter()
            .filter(|t| **t == "AWS::QuickSight::DataSet")
            .count(),
        project.data_sets.len()
    );
    assert_eq!(
        types
            .iter()
            .filter(|t| **t == "AWS::QuickSight::RefreshSchedule")
            .count(),
        3
    );
    assert_eq!(&types[first_dashboard..], ["AWS::QuickSight::Dashboard"; 2]);
    assert!(!p.template.contains("${"), "a placeholder was left");
    let t: serde_json::Value = serde_json::from_str(&p.template)?;
    let dash = &t["Resources"]["DashboardCallOperations"];
    assert_eq!(
        dash["Properties"]["Definition"],
        {
            let mut d = project.dashboards[1].raw["Definition"].clone();
            let params = config().params(&BTreeMap::new());
            d = etl_dashboards::fill("call-operations.json", &d, &params)?;
            d
        },
        "the dashboard's Definition is the file's"
    );
    assert!(dash["DependsOn"]
        .as_array()
        .ok_or("DependsOn")?
        .contains(&serde_json::json!("DataSetCallOutcomes")));
    assert_eq!(
        t["Resources"]["DataSourceEtlRedshift"]["Properties"]["DataSourceParameters"]
            ["RedshiftParameters"]["Port"],
        5439
    );
    Ok(())
}

#[test]
fn the_same_input_gives_the_same_bytes_and_a_second_write_changes_nothing() -> TestResult {
    let project = Project::load(&repo().join("dashboards"))?;
    let params = config().params(&BTreeMap::new());
    let a = plan(&project, &params)?;
    let b = plan(&Project::embedded()?, &params)?;
    assert_eq!(a.template, b.template);
    let dir = tempfile::tempdir()?;
    assert_eq!(write(&a, dir.path())?.1, WriteOutcome::Created);
    assert_eq!(write(&b, dir.path())?.1, WriteOutcome::Unchanged);
    let mut other = params.clone();
    other.insert("schema".into(), "analytics".into());
    assert_eq!(
        write(&plan(&project, &other)?, dir.path())?.1,
        WriteOutcome::Updated
    );
    Ok(())
}

#[test]
fn a_missing_placeholder_value_is_named() -> TestResult {
    let project = Project::load(&repo().join("dashboards"))?;
    let mut cfg = config();
    cfg.secret_arn = None;
    let err = plan(&project, &cfg.params(&BTreeMap::new()))
        .err()
        .ok_or("no error")?;
    assert_eq!(err.to_string(), "datasource.json: placeholder `${secret_arn}` has no value; set `secret_arn` in the `[dashboards]` section of the config file or pass `--param secret_arn=VALUE`");
    Ok(())
}

#[test]
fn cfn_lint_accepts_the_template() -> TestResult {
    let lint = repo().join(".tools/venv/bin/cfn-lint");
    assert!(
        lint.is_file(),
        "{} is missing: run scripts/setup-test-env (installs cfn-lint into .tools/venv)",
        lint.display()
    );
    let project = Project::load(&repo().join("dashboards"))?;
    let dir = tempfile::tempdir()?;
    let (path, _) = write(
        &plan(&project, &config().params(&BTreeMap::new()))?,
        dir.path(),
    )?;
    let out = std::process::Command::new(&lint)
        .arg("--")
        .arg(&path)
        .output()?;
    assert!(
        out.status.success(),
        "cfn-lint {}:\n{}{}",
        path.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // The check can fail: a dashboard with a misspelled property is refused.
    let broken = std::fs::read_to_string(&path)?.replacen(
        "\"DataSetIdentifierDeclarations\"",
        "\"DataSetIdentifierDeclaration\"",
        1,
    );
    let bad = dir.path().join("broken.template.json");
    std::fs::write(&bad, broken)?;
    let out = std::process::Command::new(&lint)
        .arg("--")
        .arg(&bad)
        .output()?;
    assert!(
        !out.status.success(),
        "cfn-lint accepted a misspelled property"
    );
    Ok(())
}
