use super::*;
use datafusion::sql::sqlparser::ast::SetExpr;
use datafusion::sql::sqlparser::dialect::{Dialect, GenericDialect, RedshiftSqlDialect};

fn repo_views_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../queries/views")
}

fn view(name: &str, sql: &str) -> ViewDef {
    match ViewDef::new(name, sql, PathBuf::from(format!("{name}.sql"))) {
        Ok(v) => v,
        Err(e) => panic!("test view {name} should be valid: {e}"),
    }
}

fn names(views: &[ViewDef]) -> Vec<&str> {
    views.iter().map(|v| v.name.as_str()).collect()
}

/// The SQL without `--` comment lines (the header may mention `FILTER` or `::`).
fn code_only(sql: &str) -> String {
    sql.lines()
        .filter(|l| !l.trim_start().starts_with("--"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn embedded_views_match_the_directory() {
    let embedded = embedded_views().expect("embedded views load");
    let loaded = load_views(&repo_views_dir()).expect("queries/views loads");
    let pairs = |v: &[ViewDef]| {
        v.iter()
            .map(|v| (v.name.clone(), v.sql_body.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        pairs(&embedded),
        pairs(&loaded),
        "embedded_views() and queries/views/*.sql differ: the build script (build.rs) embeds every file of the folder"
    );
}

#[test]
fn every_view_parses_as_postgres_redshift_and_generic() {
    let dialects: [(&str, &dyn Dialect); 3] = [
        ("PostgreSQL", &PostgreSqlDialect {}),
        ("Redshift", &RedshiftSqlDialect {}),
        ("generic", &GenericDialect {}),
    ];
    for v in embedded_views().expect("embedded views load") {
        for (label, dialect) in dialects {
            let parsed = Parser::parse_sql(dialect, &v.create_sql());
            assert!(
                parsed.is_ok(),
                "view {} does not parse with the {label} dialect: {:?}",
                v.name,
                parsed.err()
            );
        }
    }
}

#[test]
fn every_view_is_documented_ordered_and_portable() {
    for v in embedded_views().expect("embedded views load") {
        assert!(
            v.sql_body.starts_with(&format!("-- {}: ", v.name)),
            "{}: the file must open with a `-- {}: <what it shows>` header",
            v.path.display(),
            v.name
        );
        for needed in ["Grain:", "Columns:", "Dialect notes:"] {
            assert!(
                v.sql_body.contains(needed),
                "{}: the header lacks `{needed}`",
                v.path.display()
            );
        }
        let code = code_only(&v.sql_body).to_uppercase();
        for banned in ["FILTER (", "FILTER(", "::", "ILIKE", " QUALIFY ", "ROUND("] {
            assert!(
                !code.contains(banned),
                "{}: `{banned}` is not portable to Redshift/PostgreSQL",
                v.path.display()
            );
        }
        let statements = v.parse().expect("view parses");
        let Some(Statement::Query(query)) = statements.first() else {
            panic!("{}: not a query", v.name)
        };
        assert!(
            query.order_by.is_some(),
            "{}: add an ORDER BY over the whole grain",
            v.path.display()
        );
        assert!(
            matches!(*query.body, SetExpr::Select(_)),
            "{}: the body should be one SELECT",
            v.name
        );
    }
}

#[test]
fn views_come_after_the_views_they_read() {
    let views = embedded_views().expect("embedded views load");
    let position = |n: &str| names(&views).iter().position(|x| *x == n);
    let base = position("call_outcomes").expect("call_outcomes exists");
    let asr = position("answer_seizure_ratio").expect("answer_seizure_ratio exists");
    assert!(
        base < asr,
        "call_outcomes must be created before answer_seizure_ratio: {:?}",
        names(&views)
    );
    check_references(&views, &["app_events", "call_events"]).expect("every reference is known");
}

#[test]
fn dependency_order_is_topological_then_by_name() {
    let views = vec![
        view("c", "SELECT * FROM b JOIN a ON true"),
        view("b", "SELECT * FROM a"),
        view("a", "SELECT * FROM call_events"),
        view("d", "SELECT 1 AS x"),
    ];
    let ordered = order_views(views).expect("no cycle");
    assert_eq!(names(&ordered), ["a", "d", "b", "c"]);
}

#[test]
fn a_cycle_is_an_error_naming_it() {
    let views = vec![
        view("a", "SELECT * FROM c"),
        view("b", "SELECT * FROM a"),
        view("c", "SELECT * FROM b"),
        view("z", "SELECT * FROM app_events"),
    ];
    let err = order_views(views).expect_err("cycle must be refused");
    let text = err.to_string();
    assert!(matches!(err, WarehouseError::ViewCycle { .. }), "{text}");
    assert!(text.contains("a -> c -> b -> a"), "{text}");

    let err = order_views(vec![view("s", "SELECT * FROM s")]).expect_err("self reference");
    assert!(err.to_string().contains("s -> s"), "{err}");
}

#[test]
fn an_unknown_reference_is_an_error_naming_it() {
    let views = vec![view("v", "SELECT * FROM call_event")];
    let err =
        check_references(&views, &["app_events", "call_events"]).expect_err("typo must be refused");
    let text = err.to_string();
    assert!(
        text.contains("`call_event`")
            && text.contains("view `v`")
            && text.contains("app_events, call_events"),
        "{text}"
    );
}

#[test]
fn ctes_and_quoting_are_handled() {
    let v = view(
        "v",
        "WITH calls AS (SELECT * FROM Call_Events) SELECT * FROM calls JOIN \"Mixed\" ON true \
         WHERE EXISTS (SELECT 1 FROM app_events)",
    );
    let refs: Vec<String> = v.references().expect("parses").into_iter().collect();
    assert_eq!(refs, ["Mixed", "app_events", "call_events"]);
}

#[test]
fn bad_view_files_are_refused_with_the_reason() {
    let bad = |name: &str, sql: &str| match ViewDef::new(name, sql, PathBuf::from("x.sql")) {
        Ok(_) => panic!("{name}: `{sql}` should be refused"),
        Err(e) => e.to_string(),
    };
    assert!(bad("Bad-Name", "SELECT 1").contains("file name"));
    assert!(bad("v", "CREATE VIEW v AS SELECT 1").contains("SELECT only"));
    assert!(bad("v", "SELECT 1; SELECT 2").contains("2 statements"));
    assert!(bad("v", "-- nothing").contains("no SQL"));
    assert!(bad("v", "SELEC 1").contains("not valid SQL"));
    // A trailing semicolon is fine and dropped.
    assert_eq!(view("v", "SELECT 1 AS x;\n").sql_body, "SELECT 1 AS x");
}

#[test]
fn duplicate_names_and_missing_directories_are_errors() {
    let err =
        order_views(vec![view("v", "SELECT 1"), view("v", "SELECT 2")]).expect_err("duplicate");
    assert!(err.to_string().contains("defined twice"), "{err}");
    let err = load_views(Path::new("/nonexistent/views")).expect_err("missing dir");
    assert!(err.to_string().contains("/nonexistent/views"), "{err}");
}
