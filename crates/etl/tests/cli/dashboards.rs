//! The dashboards as a person sees them: `etl demo` renders them, headless Chromium (Debian
//! package `chromium`, own temporary profile, every host name unresolvable) opens each page,
//! and the test checks the drawn marks and the KPI numbers against its own SQL over the
//! demo's warehouse, the console and the network. Screenshots are kept under
//! `<target>/tmp/dashboards-screenshots/` (printed). Also `etl dashboards validate` and
//! `deploy` as a user runs them.

use etl_warehouse::{batches_to_csv, LocalWarehouse};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

type TestResult = Result<(), Box<dyn std::error::Error>>;

const CHROMIUM: &str = "/usr/bin/chromium";

fn etl(dir: &Path, args: &[&str]) -> Output {
    if let Err(e) = std::fs::create_dir_all(dir) {
        panic!("cannot create {}: {e}", dir.display());
    }
    match Command::new(env!("CARGO_BIN_EXE_etl"))
        .current_dir(dir)
        .arg("--dir")
        .arg(dir)
        .args(args)
        .env_remove("ETL_CONFIG")
        .env_remove("ETL_DIR")
        .env_remove("ETL_MASK_KEY_FILE")
        .output()
    {
        Ok(o) => o,
        Err(e) => panic!("cannot run the etl binary: {e}"),
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn chromium() -> PathBuf {
    let path = PathBuf::from(CHROMIUM);
    assert!(
        path.is_file(),
        "{CHROMIUM} is missing: the browser test needs the Debian package `chromium`; run scripts/setup-test-env"
    );
    path
}

/// Runs headless Chromium on `page` with `extra` arguments; returns stdout and stderr.
fn browse(page: &Path, extra: &[String]) -> Result<(String, String), Box<dyn std::error::Error>> {
    let profile = tempfile::tempdir()?;
    let page = std::path::absolute(page)?;
    let out = Command::new(chromium())
        .args(etl_dashboards::render::headless_args(profile.path()))
        .args(extra)
        .arg(format!("file://{}", page.display()))
        .output()?;
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(
        out.status.success(),
        "chromium failed on {}: {stderr}",
        page.display()
    );
    Ok((stdout, stderr))
}

/// Console messages Chromium logged (`--enable-logging=stderr` prints them as `CONSOLE`).
fn console_lines(stderr: &str) -> Vec<&str> {
    stderr.lines().filter(|l| l.contains("CONSOLE")).collect()
}

/// URLs the page itself requested, from Chromium's net log: requests made for a `file://`
/// page carry its network isolation key; Chromium's own background requests (update checks,
/// time; all unresolvable here) carry none.
fn page_requests(netlog: &Path) -> Result<Vec<String>, Box<dyn std::error::Error>> {
    let log: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(netlog)?)?;
    let events = log["events"].as_array().ok_or("net log without events")?;
    let mut urls: Vec<String> = events
        .iter()
        .filter(|e| {
            e["params"]["network_isolation_key"]
                .as_str()
                .is_some_and(|k| k.contains("file://"))
        })
        .filter_map(|e| e["params"]["url"].as_str().map(str::to_string))
        .collect();
    urls.sort();
    urls.dedup();
    Ok(urls)
}

/// The `<section class="visual" …>` elements of a dumped DOM: (id, kind, inner HTML).
fn sections(dom: &str) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    let mut rest = dom;
    while let Some(at) = rest.find("<section class=\"visual\"") {
        let tail = &rest[at..];
        let end = tail.find("</section>").unwrap_or(tail.len());
        let section = &tail[..end];
        let attr = |name: &str| -> String {
            let key = format!("{name}=\"");
            section
                .find(&key)
                .map(|i| {
                    let v = &section[i + key.len()..];
                    v[..v.find('"').unwrap_or(0)].to_string()
                })
                .unwrap_or_default()
        };
        let id = attr("id").trim_start_matches("visual-").to_string();
        out.push((id, attr("data-kind"), section.to_string()));
        rest = &tail[end..];
    }
    out
}

/// The SQL (written independently of the renderer) whose one number is what a visual must
/// show: its count of marks, or for a KPI its value (the last period's).
fn expected_sql(visual: &str) -> Option<&'static str> {
    Some(match visual {
        // Call operations
        "kpi-calls" => "SELECT CAST(SUM(attempts) AS DOUBLE) FROM answer_seizure_ratio GROUP BY day ORDER BY day DESC LIMIT 1",
        "kpi-asr" => "SELECT CAST(AVG(answered) AS DOUBLE) FROM call_outcomes GROUP BY day ORDER BY day DESC LIMIT 1",
        "kpi-avg-duration" => "SELECT CAST(AVG(duration_ms) AS DOUBLE) FROM call_outcomes GROUP BY day ORDER BY day DESC LIMIT 1",
        "kpi-p95-duration" => "SELECT CAST(percentile_cont(0.95) WITHIN GROUP (ORDER BY duration_ms) AS DOUBLE) FROM call_outcomes GROUP BY day ORDER BY day DESC LIMIT 1",
        "calls-per-hour-region" => "SELECT COUNT(*) FROM (SELECT DISTINCT date_trunc('hour', hour_start), region FROM calls_per_hour)",
        "calls-by-channel" => "SELECT COUNT(*) FROM (SELECT DISTINCT channel, direction FROM calls_per_hour)",
        "asr-by-region" => "SELECT COUNT(DISTINCT region) FROM call_outcomes",
        "mos-distribution" => "SELECT COUNT(DISTINCT mos_bucket) FROM mos_distribution",
        "poor-quality-per-day" => "SELECT COUNT(*) FROM (SELECT DISTINCT day, region FROM call_quality)",
        "top-failure-causes" => "SELECT COUNT(DISTINCT hangup_cause) FROM failed_call_causes",
        "duration-by-region" => "SELECT COUNT(*) FROM (SELECT DISTINCT region, channel FROM call_duration)",
        // App engagement
        "kpi-sessions" => "SELECT CAST(SUM(sessions) AS DOUBLE) FROM weekly_active_users GROUP BY week ORDER BY week DESC LIMIT 1",
        "kpi-messages-sent" => "SELECT CAST(SUM(messages_sent) AS DOUBLE) FROM messages_per_hour GROUP BY CAST(hour_start AS DATE) ORDER BY CAST(hour_start AS DATE) DESC LIMIT 1",
        "kpi-messages-failed" => "SELECT CAST(SUM(messages_failed) AS DOUBLE) FROM messages_per_hour GROUP BY CAST(hour_start AS DATE) ORDER BY CAST(hour_start AS DATE) DESC LIMIT 1",
        "dau-by-platform" => "SELECT COUNT(*) FROM (SELECT DISTINCT day, platform FROM daily_active_users)",
        "wau-by-country" => "SELECT COUNT(*) FROM (SELECT DISTINCT country, platform FROM weekly_active_users)",
        // Two series (sent, failed), one point per hour each.
        "messages-per-hour" => "SELECT 2 * COUNT(DISTINCT hour_start) FROM messages_per_hour",
        "failed-by-platform" => "SELECT COUNT(DISTINCT platform) FROM messages_per_hour",
        "weekly-engagement" => "SELECT COUNT(*) FROM weekly_active_users",
        _ => return None,
    })
}

async fn one_number(
    warehouse: &LocalWarehouse,
    sql: &str,
) -> Result<f64, Box<dyn std::error::Error>> {
    let csv = batches_to_csv(&warehouse.query(sql).await?)?;
    let value = csv.lines().nth(1).ok_or(format!("no row from {sql}"))?;
    Ok(value.parse()?)
}

/// Marks drawn in a section: circles (line points), rects (bars), polygons (pie slices),
/// body rows (tables).
fn marks(kind: &str, section: &str) -> usize {
    match kind {
        "line" => section.matches("<circle").count(),
        "bar" => section.matches("<rect").count(),
        "pie" => section.matches("<polygon").count(),
        "table" => section
            .split("<tbody>")
            .nth(1)
            .map_or(0, |body| body.matches("<tr").count()),
        _ => 0,
    }
}

fn kpi_value(section: &str) -> Option<f64> {
    let at = section.find("data-value=\"")? + "data-value=\"".len();
    let rest = &section[at..];
    rest[..rest.find('"')?].parse().ok()
}

#[tokio::test]
async fn demo_dashboards_draw_the_views_data_offline_in_chromium() -> TestResult {
    chromium();
    let tmp = tempfile::tempdir()?;
    let out = etl(tmp.path(), &["demo", "--events", "6000", "--rows", "1"]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "demo failed: {}", text(&out.stderr));
    let pages: Vec<PathBuf> = stdout
        .lines()
        .map(str::trim)
        .filter(|l| l.ends_with(".html"))
        .map(PathBuf::from)
        .collect();
    assert_eq!(
        pages.len(),
        2,
        "the demo prints one page per dashboard:\n{stdout}"
    );

    let warehouse = LocalWarehouse::open(
        tmp.path().join("lake"),
        &etl_schema::embedded()?,
        &etl_warehouse::embedded_views()?,
    )
    .await?;
    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dashboards-screenshots");
    std::fs::create_dir_all(&shots)?;
    let mut failures = Vec::new();
    let mut checked = 0;
    for page in &pages {
        let html = std::fs::read_to_string(page)?;
        // No URL a browser could fetch: the only `http` is the SVG namespace name.
        let without_ns = html.replace("xmlns=\"http://www.w3.org/2000/svg\"", "");
        assert!(
            !without_ns.contains("http:")
                && !without_ns.contains("https:")
                && !without_ns.contains("//"),
            "{} holds a URL",
            page.display()
        );
        assert!(
            html.contains("http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'"),
            "no CSP in {}",
            page.display()
        );
        assert!(
            html.contains("Data queried at <time"),
            "no query time in {}",
            page.display()
        );

        let netlog = tmp.path().join("netlog.json");
        let (dom, stderr) = browse(
            page,
            &[
                "--dump-dom".into(),
                format!("--log-net-log={}", netlog.display()),
            ],
        )?;
        let console = console_lines(&stderr);
        if !console.is_empty() {
            failures.push(format!("{}: console messages: {console:?}", page.display()));
        }
        let requests = page_requests(&netlog)?;
        if !requests.is_empty() {
            failures.push(format!(
                "{}: the page requested {requests:?}",
                page.display()
            ));
        }
        let found = sections(&dom);
        assert!(
            !found.is_empty(),
            "no visual in the DOM of {}:\n{dom}",
            page.display()
        );
        for (id, kind, section) in &found {
            let sql =
                expected_sql(id).ok_or(format!("visual {id} has no expected SQL in this test"))?;
            let expected = one_number(&warehouse, sql).await?;
            checked += 1;
            if kind == "kpi" {
                match kpi_value(section) {
                    Some(v) if (v - expected).abs() <= 1e-9 * expected.abs().max(1.0) => {}
                    other => failures.push(format!(
                        "KPI {id}: page shows {other:?}, the view says {expected}"
                    )),
                }
            } else {
                let drawn = marks(kind, section);
                if drawn as f64 != expected || drawn == 0 {
                    failures.push(format!(
                        "{kind} {id}: {drawn} marks drawn, the view has {expected}"
                    ));
                }
            }
        }
        let stem = page.file_stem().and_then(|s| s.to_str()).unwrap_or("page");
        let png = shots.join(format!("{stem}.png"));
        let _ = std::fs::remove_file(&png);
        browse(
            page,
            &[
                "--window-size=1366,1400".into(),
                format!("--screenshot={}", png.display()),
            ],
        )?;
        assert!(
            std::fs::metadata(&png)?.len() > 10_000,
            "{} is (nearly) empty",
            png.display()
        );
        eprintln!("screenshot: {}", png.display());
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(checked, 19, "every visual of both dashboards is checked");
    Ok(())
}

#[test]
fn the_console_check_sees_a_blocked_script() -> TestResult {
    // The page's CSP forbids scripts; Chromium reports the refusal on the console, and the
    // check above must see such messages (or it could not fail).
    let tmp = tempfile::tempdir()?;
    let page = tmp.path().join("bad.html");
    std::fs::write(
        &page,
        format!("<!DOCTYPE html><html><head><meta http-equiv=\"Content-Security-Policy\" content=\"{}\"></head><body><script>document.title='x'</script></body></html>", etl_dashboards::render::CSP),
    )?;
    let (_, stderr) = browse(&page, &["--dump-dom".into()])?;
    assert!(
        !console_lines(&stderr).is_empty(),
        "no console line for a blocked script:\n{stderr}"
    );
    Ok(())
}

#[test]
fn the_request_check_sees_a_request_of_the_page() -> TestResult {
    // A page without the CSP that loads an image from loopback: the check must report it.
    let tmp = tempfile::tempdir()?;
    let page = tmp.path().join("fetching.html");
    std::fs::write(
        &page,
        "<!DOCTYPE html><html><body><img src=\"http://127.0.0.1:9/x.png\"></body></html>",
    )?;
    let netlog = tmp.path().join("netlog.json");
    browse(
        &page,
        &[
            "--dump-dom".into(),
            format!("--log-net-log={}", netlog.display()),
        ],
    )?;
    assert_eq!(page_requests(&netlog)?, ["http://127.0.0.1:9/x.png"]);
    Ok(())
}

#[test]
fn validate_and_deploy_from_the_command_line() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let ok = etl(tmp.path(), &["dashboards", "validate"]);
    assert!(ok.status.success(), "{}", text(&ok.stderr));
    assert!(
        text(&ok.stdout).contains("dashboards valid: 2 dashboards"),
        "{}",
        text(&ok.stdout)
    );

    // Render with --png on the (empty) lake: pages and PNG screenshots, no data drawn.
    let render = etl(tmp.path(), &["dashboards", "render", "--png"]);
    assert!(render.status.success(), "{}", text(&render.stderr));
    let printed = text(&render.stdout);
    let pngs: Vec<&str> = printed.lines().filter(|l| l.ends_with(".png")).collect();
    assert_eq!(pngs.len(), 2, "{printed}");
    for png in pngs {
        let bytes = std::fs::read(png)?;
        assert!(bytes.starts_with(b"\x89PNG"), "{png} is not a PNG");
    }

    // A misspelled column in a copy of the folder: refused with the file and JSON path.
    let copy = tmp.path().join("dashboards");
    std::fs::create_dir_all(copy.join("datasets"))?;
    for sub in ["", "datasets"] {
        for entry in std::fs::read_dir(repo.join("dashboards").join(sub))? {
            let path = entry?.path();
            if path.extension().and_then(|e| e.to_str()) == Some("json") {
                std::fs::copy(&path, copy.join(sub).join(path.file_name().ok_or("name")?))?;
            }
        }
    }
    let file = copy.join("call-operations.json");
    let text_before = std::fs::read_to_string(&file)?;
    std::fs::write(
        &file,
        text_before.replacen("\"calls_started\"", "\"calls_startd\"", 1),
    )?;
    let bad = etl(
        tmp.path(),
        &[
            "dashboards",
            "validate",
            "--dashboards",
            copy.to_str().ok_or("path")?,
        ],
    );
    assert!(!bad.status.success());
    let err = text(&bad.stderr);
    assert!(err.contains("call-operations.json: $.Definition.Sheets[0].Visuals[4].LineChartVisual.ChartConfiguration.FieldWells.LineChartAggregatedFieldWells.Values[0].NumericalMeasureField.Column.ColumnName: `calls_startd` is not a column"), "{err}");

    // Deploy: dry run lists the resources; two writes give the same bytes, the second says so.
    let args = [
        "dashboards",
        "deploy",
        "--account-id",
        "123456789012",
        "--region",
        "eu-west-1",
        "--param",
        "redshift_host=analytics.example.internal",
        "--param",
        "secret_arn=arn:aws:secretsmanager:eu-west-1:123456789012:secret:qs",
    ];
    let dry = etl(tmp.path(), &[&args[..], &["--dry-run"]].concat());
    assert!(dry.status.success(), "{}", text(&dry.stderr));
    assert!(
        text(&dry.stdout).contains("AWS::QuickSight::Dashboard"),
        "{}",
        text(&dry.stdout)
    );
    let out_dir = tmp.path().join("cfn");
    let out_arg = ["--out", out_dir.to_str().ok_or("path")?];
    let first = etl(tmp.path(), &[&args[..], &out_arg].concat());
    assert!(first.status.success(), "{}", text(&first.stderr));
    assert!(
        text(&first.stdout).contains(": created"),
        "{}",
        text(&first.stdout)
    );
    let bytes = std::fs::read(out_dir.join("etl-dashboards.template.json"))?;
    let second = etl(tmp.path(), &[&args[..], &out_arg].concat());
    assert!(
        text(&second.stdout).contains("unchanged, nothing to deploy"),
        "{}",
        text(&second.stdout)
    );
    assert_eq!(
        bytes,
        std::fs::read(out_dir.join("etl-dashboards.template.json"))?
    );
    // Without an account id: the placeholder and the fix are named.
    let missing = etl(tmp.path(), &["dashboards", "deploy", "--dry-run"]);
    assert!(!missing.status.success());
    assert!(
        text(&missing.stderr).contains("account_id"),
        "{}",
        text(&missing.stderr)
    );
    Ok(())
}
