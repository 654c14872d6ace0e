//! `etl dashboards validate | render | deploy` and the demo's last step.

use crate::cli::Global;
use crate::setup::Setup;
use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use etl_dashboards::deploy::{self, WriteOutcome};
use etl_dashboards::render;
use etl_dashboards::Project;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, Subcommand)]
pub enum DashboardsCommand {
    /// Check the dashboards against the curated views' output schemas (columns, types,
    /// identifiers, layout, filters); errors name the file and the JSON path.
    Validate(SourceArgs),
    /// Render one self-contained HTML page per dashboard with data from the local warehouse.
    Render(RenderArgs),
    /// Write the CloudFormation template (data source, data sets, refresh schedules,
    /// dashboards); the same input gives the same bytes, so a second deploy changes nothing.
    Deploy(DeployArgs),
}

#[derive(Debug, Args)]
pub struct SourceArgs {
    /// Dashboards folder; default: the repository's `dashboards/` built into the binary.
    #[arg(long)]
    pub dashboards: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct RenderArgs {
    #[command(flatten)]
    pub source: SourceArgs,
    /// Output folder; default `<--dir>/dashboards`.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Also save `<id>.png`, a screenshot by headless Chromium.
    #[arg(long)]
    pub png: bool,
    /// The Chromium binary for `--png`.
    #[arg(long, default_value = "/usr/bin/chromium")]
    pub browser: PathBuf,
}

#[derive(Debug, Args)]
pub struct DeployArgs {
    #[command(flatten)]
    pub source: SourceArgs,
    /// Folder of the template (`etl-dashboards.template.json`); required unless --dry-run.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Print the resources the template creates or updates; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// AWS account id (overrides `[dashboards] account_id`).
    #[arg(long)]
    pub account_id: Option<String>,
    /// AWS region (overrides `[dashboards] region`).
    #[arg(long)]
    pub region: Option<String>,
    /// Any placeholder value, `NAME=VALUE` (repeatable; overrides the config file).
    #[arg(long = "param", value_parser = parse_param)]
    pub params: Vec<(String, String)>,
}

fn parse_param(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.trim().to_string(), v.to_string()))
        .filter(|(k, _)| !k.is_empty())
        .ok_or_else(|| format!("`{s}`: write NAME=VALUE, e.g. account_id=123456789012"))
}

fn load_project(args: &SourceArgs) -> Result<Project> {
    Ok(match &args.dashboards {
        Some(dir) => Project::load(dir)
            .with_context(|| format!("reading the dashboards folder {}", dir.display()))?,
        None => Project::embedded()?,
    })
}

pub async fn run(global: &Global, setup: &Setup, command: DashboardsCommand) -> Result<()> {
    match command {
        DashboardsCommand::Validate(args) => {
            let project = load_project(&args)?;
            let warehouse = crate::commands::open_warehouse(global, setup).await?;
            etl_dashboards::check(&project, &warehouse).await?;
            println!(
                "dashboards valid: {} dashboards, {} data sets, checked against {} views",
                project.dashboards.len(),
                project.data_sets.len(),
                warehouse.views().len()
            );
            Ok(())
        }
        DashboardsCommand::Render(args) => {
            let project = load_project(&args.source)?;
            let out = args.out.unwrap_or_else(|| global.dir.join("dashboards"));
            let browser = args.png.then_some(args.browser.as_path());
            for path in render_pages(global, setup, &project, &out, browser).await? {
                println!("{}", path.display());
            }
            Ok(())
        }
        DashboardsCommand::Deploy(args) => deploy_cmd(global, setup, args).await,
    }
}

/// Validates, renders every dashboard into `out` and returns the pages (and screenshots).
async fn render_pages(
    global: &Global,
    setup: &Setup,
    project: &Project,
    out: &Path,
    browser: Option<&Path>,
) -> Result<Vec<PathBuf>> {
    let warehouse = crate::commands::open_warehouse(global, setup).await?;
    etl_dashboards::check(project, &warehouse).await?;
    let queried_at = chrono::Utc::now()
        .format("%Y-%m-%d %H:%M:%S UTC")
        .to_string();
    let source = format!("the local warehouse over {}", setup.lake_dir.display());
    let pages = render::render_all(project, &warehouse, out, &queried_at, &source).await?;
    let mut paths = Vec::new();
    for (path, page) in pages {
        if let Some(browser) = browser {
            let png = path.with_extension("png");
            render::screenshot(browser, &path, &png, page.height_px)?;
            paths.push(path);
            paths.push(png);
        } else {
            paths.push(path);
        }
    }
    Ok(paths)
}

/// The demo's last step: the dashboards from the demo's warehouse.
pub async fn render_for_demo(global: &Global, setup: &Setup) -> Result<()> {
    let project = Project::embedded()?;
    let out = global.dir.join("dashboards");
    let paths = render_pages(global, setup, &project, &out, None).await?;
    println!("dashboards (open in a browser; they work offline):");
    for path in paths {
        let shown = std::path::absolute(&path).unwrap_or(path);
        println!("  {}", shown.display());
    }
    Ok(())
}

async fn deploy_cmd(global: &Global, setup: &Setup, args: DeployArgs) -> Result<()> {
    let project = load_project(&args.source)?;
    let warehouse = crate::commands::open_warehouse(global, setup).await?;
    etl_dashboards::check(&project, &warehouse).await?;
    let config = &setup.dashboards;
    let mut overrides: BTreeMap<String, String> = args.params.into_iter().collect();
    if let Some(a) = args.account_id {
        overrides.insert("account_id".into(), a);
    }
    if let Some(r) = args.region {
        overrides.insert("region".into(), r);
    }
    let plan = deploy::plan(&project, &config.params(&overrides))?;
    if args.dry_run {
        println!(
            "would create or update (CloudFormation, {} resources):",
            plan.resources.len()
        );
        for r in &plan.resources {
            println!("  {:<34} {:<40} {}", r.resource_type, r.logical_id, r.id);
        }
        if let Some(out) = &args.out {
            let path = out.join(deploy::TEMPLATE_FILE);
            let same = std::fs::read(&path).is_ok_and(|old| old == plan.template.as_bytes());
            println!(
                "{}: {}",
                path.display(),
                if same {
                    "unchanged (a deploy would change nothing)"
                } else {
                    "would be written"
                }
            );
        }
        return Ok(());
    }
    let Some(out) = args.out else {
        bail!(
            "--out DIR is required (the folder for {}), or pass --dry-run",
            deploy::TEMPLATE_FILE
        );
    };
    let (path, outcome) = deploy::write(&plan, &out)?;
    match outcome {
        WriteOutcome::Unchanged => println!(
            "{}: unchanged, nothing to deploy ({} resources)",
            path.display(),
            plan.resources.len()
        ),
        WriteOutcome::Created | WriteOutcome::Updated => {
            println!(
                "{}: {} ({} resources)",
                path.display(),
                if outcome == WriteOutcome::Created {
                    "created"
                } else {
                    "updated"
                },
                plan.resources.len()
            );
            println!(
                "apply with: aws cloudformation deploy --stack-name etl-dashboards --template-file {}",
                path.display()
            );
        }
    }
    Ok(())
}
