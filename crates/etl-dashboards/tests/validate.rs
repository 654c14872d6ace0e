//! `validate` on the repository's dashboards (valid) and on the fixtures (each refused with
//! the file, the JSON path and what is wrong), against the views' schemas as the local
//! DataFusion warehouse reports them.

use etl_dashboards::{validate, view_schemas, Issue, Project};
use etl_warehouse::LocalWarehouse;
use std::path::{Path, PathBuf};

type TestResult<T = ()> = Result<T, Box<dyn std::error::Error>>;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

async fn warehouse(dir: &Path) -> TestResult<LocalWarehouse> {
    Ok(LocalWarehouse::open(
        dir.join("lake"),
        &etl_schema::embedded()?,
        &etl_warehouse::embedded_views()?,
    )
    .await?)
}

/// The repository's data source and data sets plus `extra` files (path in the project,
/// fixture file name); a fixture data set replaces the repository's file of that path.
fn project_with(extra: &[(&str, &str)]) -> TestResult<Project> {
    let dir = repo().join("dashboards");
    let mut files = vec![(
        "datasource.json".to_string(),
        std::fs::read_to_string(dir.join("datasource.json"))?,
    )];
    for entry in std::fs::read_dir(dir.join("datasets"))? {
        let path = entry?.path();
        let name = format!(
            "datasets/{}",
            path.file_name().and_then(|n| n.to_str()).ok_or("name")?
        );
        if extra.iter().all(|(p, _)| *p != name) {
            files.push((name, std::fs::read_to_string(&path)?));
        }
    }
    for (path, fixture) in extra {
        let text = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures")
                .join(fixture),
        )?;
        files.push((path.to_string(), text));
    }
    Ok(Project::from_files(files)?)
}

async fn issues(project: &Project) -> TestResult<Vec<String>> {
    let tmp = tempfile::tempdir()?;
    let schemas = view_schemas(&warehouse(tmp.path()).await?).await?;
    Ok(validate(project, &schemas)
        .iter()
        .map(Issue::to_string)
        .collect())
}

#[tokio::test]
async fn the_repository_dashboards_match_the_views() -> TestResult {
    let project = Project::load(&repo().join("dashboards"))?;
    assert_eq!(project.dashboards.len(), 2);
    assert_eq!(issues(&project).await?, Vec::<String>::new());
    Ok(())
}

#[test]
fn the_embedded_dashboards_are_the_folder() -> TestResult {
    let dir = Project::load(&repo().join("dashboards"))?;
    let embedded = Project::embedded()?;
    let files = |p: &Project| -> Vec<(String, serde_json::Value)> {
        let mut v = vec![(p.data_source.file.clone(), p.data_source.raw.clone())];
        v.extend(p.data_sets.iter().map(|d| (d.file.clone(), d.raw.clone())));
        v.extend(p.dashboards.iter().map(|d| (d.file.clone(), d.raw.clone())));
        v
    };
    assert_eq!(
        files(&dir),
        files(&embedded),
        "add the new file to Project::embedded"
    );
    Ok(())
}

#[tokio::test]
async fn a_misspelled_column_is_refused_with_file_and_path() -> TestResult {
    let got = issues(&project_with(&[(
        "misspelled-column.json",
        "misspelled-column.json",
    )])?)
    .await?;
    assert_eq!(got, vec![
        "misspelled-column.json: $.Definition.Sheets[0].Visuals[0].BarChartVisual.ChartConfiguration.FieldWells.BarChartAggregatedFieldWells.Category[0].CategoricalDimensionField.Column.ColumnName: `regoin` is not a column of data set `cph` (view calls_per_hour); its columns: calls_answered, calls_failed, calls_started, channel, direction, hour_start, region".to_string()
    ]);
    Ok(())
}

#[tokio::test]
async fn a_wrong_type_is_refused_in_a_visual_and_in_a_data_set() -> TestResult {
    let got = issues(&project_with(&[("wrong-type.json", "wrong-type.json")])?).await?;
    assert_eq!(got, vec![
        "wrong-type.json: $.Definition.Sheets[0].Visuals[0].BarChartVisual.ChartConfiguration.FieldWells.BarChartAggregatedFieldWells.Values[0].NumericalMeasureField.Column.ColumnName: `channel` of view calls_per_hour is STRING, but a NumericalMeasureField needs INTEGER or DECIMAL".to_string()
    ]);
    let got = issues(&project_with(&[(
        "datasets/calls-per-hour.json",
        "wrong-type-data-set.json",
    )])?)
    .await?;
    assert!(got.contains(&"datasets/calls-per-hour.json: $.PhysicalTableMap.view.RelationalTable.InputColumns[4].Type: `calls_started` is Int64 in view calls_per_hour, so QuickSight reads it as INTEGER, not STRING".to_string()), "{got:#?}");
    Ok(())
}

#[tokio::test]
async fn an_unknown_data_set_is_refused() -> TestResult {
    let got = issues(&project_with(&[(
        "unknown-data-set.json",
        "unknown-data-set.json",
    )])?)
    .await?;
    assert!(got[0].starts_with("unknown-data-set.json: $.Definition.DataSetIdentifierDeclarations[0].DataSetArn: unknown data set `call-volume`: no datasets/call-volume.json"), "{got:#?}");
    // The visual's columns then name the undeclared identifier too.
    assert!(
        got.iter()
            .skip(1)
            .all(|i| i.contains("unknown data set identifier `cph`")),
        "{got:#?}"
    );
    Ok(())
}

#[tokio::test]
async fn an_out_of_bounds_layout_is_refused() -> TestResult {
    let got = issues(&project_with(&[(
        "out-of-bounds-layout.json",
        "out-of-bounds-layout.json",
    )])?)
    .await?;
    let p = "out-of-bounds-layout.json: $.Definition.Sheets[0].Layouts[0].Configuration.GridLayout.Elements";
    assert_eq!(
        got,
        vec![
            format!("{p}[0].ColumnSpan: 40 is outside 1-36"),
            format!("{p}[0].ColumnIndex: columns 0..40 do not fit the 36 columns of the grid"),
            format!("{p}[1].RowSpan: 22 is outside 1-21"),
            format!("{p}[1]: `v2` overlaps element 0 (`v1`)"),
            format!("{p}[2]: `v3` overlaps element 0 (`v1`)"),
        ]
    );
    Ok(())
}

#[tokio::test]
async fn duplicate_identifiers_and_unknown_filter_columns_are_refused() -> TestResult {
    let mut project = Project::load(&repo().join("dashboards"))?;
    let dashboard = &mut project.dashboards[0].value.definition;
    let copy = dashboard.sheets[0].visuals[0].clone();
    dashboard.sheets[0].visuals.push(copy);
    if let Some(etl_dashboards::model::Filter::Category(c)) =
        dashboard.filter_groups[1].filters.first_mut()
    {
        c.column.column_name = "countri".into();
    }
    let got = issues(&project).await?;
    let file = &project.dashboards[0].file;
    assert!(got.iter().any(|i| i.starts_with(&format!("{file}: $.Definition.Sheets[0].Visuals[8].KPIVisual.VisualId: identifier `kpi-sessions` is used twice"))), "{got:#?}");
    assert!(got.iter().any(|i| i.starts_with(&format!("{file}: $.Definition.FilterGroups[1].Filters[0].CategoryFilter.Column.ColumnName: `countri` is not a column"))), "{got:#?}");
    Ok(())
}
