//! The configuration file as users write it: every TOML example in the documentation parses,
//! environment variables override fields, and mistakes are refused with the field's name.

use super::*;

const REPO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

/// The ```toml blocks of a Markdown file.
fn toml_blocks(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut block: Option<String> = None;
    for line in text.lines() {
        match (&mut block, line.trim_start()) {
            (None, l) if l.starts_with("```toml") => block = Some(String::new()),
            (Some(_), l) if l.starts_with("```") => out.extend(block.take()),
            (Some(b), _) => {
                b.push_str(line);
                b.push('\n');
            }
            _ => {}
        }
    }
    out
}

#[test]
fn every_toml_example_in_the_documentation_parses_as_a_configuration_file() {
    let mut files = vec![std::path::PathBuf::from(format!("{REPO}/README.md"))];
    let mut stack = vec![
        std::path::PathBuf::from(format!("{REPO}/docs")),
        std::path::PathBuf::from(format!("{REPO}/deploy")),
    ];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("docs/ and deploy/") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "md" || e == "toml") {
                files.push(path);
            }
        }
    }
    let mut checked = 0;
    for file in files {
        let text = std::fs::read_to_string(&file).expect("read doc");
        // A .toml file is one example; Markdown holds them in ```toml blocks.
        let blocks = if file.extension().is_some_and(|e| e == "toml") {
            vec![text]
        } else {
            toml_blocks(&text)
        };
        for (i, block) in blocks.into_iter().enumerate() {
            let origin = format!("{} block {}", file.display(), i + 1);
            let config = ConfigFile::parse(&block, &origin, Vec::new())
                .unwrap_or_else(|e| panic!("{origin}: {e:#}\n{block}"));
            config
                .pipeline
                .validate()
                .unwrap_or_else(|e| panic!("{origin}: {e}"));
            config
                .lake
                .resolve(std::path::Path::new("/tmp"))
                .unwrap_or_else(|e| panic!("{origin}: {e:#}"));
            checked += 1;
        }
    }
    assert!(
        checked >= 3,
        "the README and the deploy/ examples hold configuration files ({checked} checked)"
    );
}

#[test]
fn the_kinesis_section_names_streams_and_has_named_defaults() {
    let config = ConfigFile::parse(
        "[kinesis]\nstreams = { app_events = \"app-prod\", sms_events = \"sms-prod\" }\n",
        "test",
        Vec::new(),
    )
    .expect("parse");
    assert_eq!(config.kinesis.streams["sms_events"], "sms-prod");
    assert_eq!(config.kinesis.start, DEFAULT_KINESIS_START);
    assert_eq!(config.kinesis.batch_max_ms, DEFAULT_BATCH_MAX_MS);
    assert!(config.kinesis.raw_archive);
}

#[test]
fn environment_variables_override_fields_of_any_section() {
    let env = vec![
        ("ETL_PIPELINE__PARALLELISM".to_string(), "3".to_string()),
        (
            "ETL_KINESIS__STREAMS__CALL_EVENTS".to_string(),
            "calls-from-env".to_string(),
        ),
        ("ETL_KINESIS__RAW_ARCHIVE".to_string(), "false".to_string()),
        ("ETL_AWS__REGION".to_string(), "eu-west-1".to_string()),
        // Not fields: command-line options and unrelated variables are left alone.
        ("ETL_LOG".to_string(), "debug".to_string()),
        ("PATH".to_string(), "/bin".to_string()),
    ];
    let config = ConfigFile::parse(
        "[pipeline]\nparallelism = 8\n[kinesis]\nstreams = { app_events = \"apps\" }\n",
        "test",
        env,
    )
    .expect("parse");
    assert_eq!(config.pipeline.parallelism, 3);
    assert_eq!(config.kinesis.streams["app_events"], "apps");
    assert_eq!(config.kinesis.streams["call_events"], "calls-from-env");
    assert!(!config.kinesis.raw_archive);
    assert_eq!(config.aws.region, "eu-west-1");
}

#[test]
fn unknown_keys_are_refused_with_their_name_also_from_the_environment() {
    let err =
        ConfigFile::parse("[kinesis]\nstream = {}\n", "etl.toml", Vec::new()).expect_err("typo");
    let text = format!("{err:#}");
    assert!(
        text.contains("etl.toml") && text.contains("stream"),
        "{text}"
    );

    let err = ConfigFile::parse(
        "",
        "etl.toml",
        vec![("ETL_PIPELINE__PARALELISM".to_string(), "2".to_string())],
    )
    .expect_err("typo in a variable");
    let text = format!("{err:#}");
    assert!(
        text.contains("ETL_PIPELINE__PARALELISM") && text.contains("paralelism"),
        "{text}"
    );
}

#[test]
fn the_warehouse_section_names_the_redshift_target_with_named_defaults() {
    let config = ConfigFile::parse(
        "[warehouse.redshift]\nworkgroup = \"wg\"\niam_role_arn = \"arn:aws:iam::1:role/r\"\n",
        "test",
        vec![(
            "ETL_WAREHOUSE__REDSHIFT__SCHEMA".to_string(),
            "reporting".to_string(),
        )],
    )
    .expect("parse");
    let r = &config.warehouse.redshift;
    assert_eq!(r.workgroup.as_deref(), Some("wg"));
    assert_eq!(r.database, DEFAULT_REDSHIFT_DATABASE);
    assert_eq!(r.schema, "reporting");
    assert_eq!(r.statement_timeout_secs, DEFAULT_STATEMENT_TIMEOUT_SECS);
    assert_eq!(
        ConfigFile::parse("", "none", Vec::new())
            .expect("empty")
            .warehouse
            .redshift,
        RedshiftConfig::default()
    );
}
