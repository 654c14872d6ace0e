//! `etl compact` as a user runs it on a local lake: the dry run prints the plan and changes
//! nothing; the run merges each closed hour, drops the repeated events of a file ingested twice
//! under another name, and `etl query` answers the same before and after.

use crate::{counts, etl, text, walk, TestResult};

fn json(stdout: &str) -> Result<serde_json::Value, Box<dyn std::error::Error>> {
    Ok(serde_json::from_str(stdout.trim())?)
}

#[test]
fn compact_plans_merges_and_deduplicates_without_changing_answers() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path();
    std::fs::write(
        dir.join("etl.toml"),
        "[pipeline]\nbatch_max_records = 500\n",
    )?;
    let out = etl(dir, &["generate", "--events", "6000", "--out", "in"]);
    assert!(out.status.success(), "generate: {}", text(&out.stderr));
    let input = dir.join("in").join("call_events.ndjson");
    let copy = dir.join("in").join("call_events-copy.ndjson");
    std::fs::copy(&input, &copy)?;
    for file in [&input, &copy] {
        let file = file.to_str().ok_or("utf8")?;
        let out = etl(
            dir,
            &[
                "--config",
                "etl.toml",
                "ingest",
                "--stream",
                "call_events",
                file,
            ],
        );
        assert!(out.status.success(), "ingest: {}", text(&out.stderr));
    }
    // Every manifest records the schema version its files were written with.
    let version = etl_schema::embedded()?
        .into_iter()
        .find(|s| s.stream == "call_events")
        .ok_or("schema")?
        .version;
    let manifests = walk(&dir.join("lake").join("_commits").join("call_events"));
    assert!(!manifests.is_empty());
    for path in &manifests {
        let manifest = json(&std::fs::read_to_string(path)?)?;
        assert_eq!(
            manifest["schema_version"].as_u64(),
            Some(u64::from(version)),
            "{path}"
        );
    }
    let (rows, distinct) = counts(dir, "call_events")?;
    assert_eq!(rows, 2 * distinct, "the copy repeats every event");
    let files_before: Vec<String> = walk(&dir.join("lake"));

    let out = etl(
        dir,
        &[
            "compact",
            "--stream",
            "call_events",
            "--older-than",
            "0s",
            "--dry-run",
            "--json",
        ],
    );
    assert!(out.status.success(), "dry run: {}", text(&out.stderr));
    let plan = json(&text(&out.stdout))?;
    let plans = plan[0]["plans"].as_array().ok_or("plans")?;
    assert!(!plans.is_empty());
    assert!(plans.iter().any(|p| p["action"] == "compact:1"), "{plan}");
    assert_eq!(
        walk(&dir.join("lake")),
        files_before,
        "a dry run changes nothing"
    );

    let out = etl(
        dir,
        &[
            "compact",
            "--stream",
            "call_events",
            "--older-than",
            "0s",
            "--json",
        ],
    );
    assert!(out.status.success(), "compact: {}", text(&out.stderr));
    let report = json(&text(&out.stdout))?;
    let r = &report[0];
    assert_eq!(
        r["duplicates_dropped"].as_u64(),
        Some(rows - distinct),
        "{r}"
    );
    assert_eq!(r["rows_in"].as_u64(), Some(rows), "{r}");
    assert_eq!(r["rows_out"].as_u64(), Some(distinct), "{r}");
    let (before, after) = (
        r["files_before"].as_u64().ok_or("n")?,
        r["files_after"].as_u64().ok_or("n")?,
    );
    assert!(after < before, "{before} files -> {after}");
    assert_eq!(counts(dir, "call_events")?, (distinct, distinct));
    // The default grace period keeps the writer's files for queries still running.
    assert!(r["waiting_for_grace"].as_u64().ok_or("n")? >= before);

    // A second run finds every closed hour compact.
    let out = etl(
        dir,
        &[
            "compact",
            "--stream",
            "call_events",
            "--older-than",
            "0s",
            "--json",
        ],
    );
    assert!(out.status.success(), "again: {}", text(&out.stderr));
    assert_eq!(json(&text(&out.stdout))?[0]["compacted"].as_u64(), Some(0));
    Ok(())
}
