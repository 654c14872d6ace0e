//! Schema evolution on the lake side, as a user meets it: every breaking change to
//! `schemas/<stream>.toml` (type change, removal, rename, optional → required) is refused when
//! the command starts, naming the field and the supported path, with nothing written; an added
//! optional field is accepted and files written before it read as NULL for it.

use crate::{counts, etl, text, walk, TestResult};
use std::path::Path;

const REPO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

fn schemas_with(dir: &Path, name: &str, edit: impl Fn(&str) -> String) -> TestResult {
    let to = dir.join(name);
    std::fs::create_dir_all(&to)?;
    for entry in std::fs::read_dir(format!("{REPO}/schemas"))? {
        let path = entry?.path();
        let file = path.file_name().ok_or("name")?;
        let mut body = std::fs::read_to_string(&path)?;
        if file == "call_events.toml" {
            body = edit(&body);
        }
        std::fs::write(to.join(file), body)?;
    }
    Ok(())
}

fn bump(body: &str) -> String {
    let version: u32 = body
        .lines()
        .find_map(|l| l.strip_prefix("version = "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(1);
    body.replacen(
        &format!("version = {version}"),
        &format!("version = {}", version + 1),
        1,
    )
}

#[test]
fn breaking_changes_are_refused_at_start_and_an_added_field_reads_null_in_old_files() -> TestResult
{
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path();
    let out = etl(dir, &["generate", "--events", "2000", "--out", "in"]);
    assert!(out.status.success(), "generate: {}", text(&out.stderr));
    let input = dir.join("in").join("call_events.ndjson");
    let input = input.to_str().ok_or("utf8")?;
    let out = etl(dir, &["ingest", "--stream", "call_events", input]);
    assert!(out.status.success(), "ingest: {}", text(&out.stderr));
    let lake_before = walk(&dir.join("lake"));

    let field = "name = \"hangup_cause\"\ntype = \"string\"\n";
    type Edit = Box<dyn Fn(&str) -> String>;
    let cases: [(&str, Edit, &str, &str); 4] = [
        (
            "type",
            Box::new(|b| {
                bump(&b.replace(
                    "name = \"duration_ms\"\ntype = \"int64\"",
                    "name = \"duration_ms\"\ntype = \"double\"",
                ))
            }),
            "`duration_ms`",
            "changed type",
        ),
        (
            "removed",
            Box::new(|b| {
                let start = b.find("[[fields]]\nname = \"hangup_cause\"").unwrap_or(0);
                let end = b[start + 1..]
                    .find("[[fields]]")
                    .map_or(b.len(), |e| start + 1 + e);
                bump(&format!("{}{}", &b[..start], &b[end..]))
            }),
            "`hangup_cause`",
            "removed or renamed",
        ),
        (
            "renamed",
            Box::new(|b| bump(&b.replace("name = \"hangup_cause\"", "name = \"hangup_reason\""))),
            "`hangup_cause`",
            "removed or renamed",
        ),
        (
            "required",
            Box::new(move |b| bump(&b.replace(field, &format!("{field}required = true\n")))),
            "`hangup_cause`",
            "is required",
        ),
    ];
    for (name, edit, column, what) in cases {
        schemas_with(dir, name, edit)?;
        let schemas = dir.join(name);
        let out = etl(
            dir,
            &[
                "--schemas",
                schemas.to_str().ok_or("utf8")?,
                "ingest",
                "--stream",
                "call_events",
                input,
            ],
        );
        let stderr = text(&out.stderr);
        assert!(!out.status.success(), "{name}: accepted");
        assert!(
            stderr.contains(column) && stderr.contains(what),
            "{name}: {stderr}"
        );
        assert!(
            stderr.contains("Supported path") && stderr.contains("backfill"),
            "{name}: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{name}: {stderr}");
        assert_eq!(
            walk(&dir.join("lake")),
            lake_before,
            "{name}: nothing written"
        );
    }

    // Additive: a new optional field at the end is accepted; the files written before it read
    // as NULL for it (Parquet columns are matched by name).
    schemas_with(dir, "added", |b| {
        bump(&format!(
            "{b}\n[[fields]]\nname = \"network_type\"\ntype = \"string\"\ndoc = \"wifi or cellular.\"\n"
        ))
    })?;
    let added = dir.join("added");
    let added = added.to_str().ok_or("utf8")?;
    let out = etl(dir, &["--schemas", added, "catalog", "sync"]);
    assert!(out.status.success(), "sync: {}", text(&out.stderr));
    let (rows, _) = counts(dir, "call_events")?;
    let out = etl(
        dir,
        &[
            "--schemas",
            added,
            "query",
            "SELECT count(*) AS n, count(network_type) AS m FROM call_events",
        ],
    );
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "query: {}", text(&out.stderr));
    let row = stdout
        .lines()
        .filter(|l| l.starts_with("| "))
        .nth(1)
        .ok_or("row")?;
    let cells: Vec<&str> = row
        .split('|')
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect();
    assert_eq!(cells, vec![rows.to_string(), "0".to_string()], "{stdout}");
    Ok(())
}
