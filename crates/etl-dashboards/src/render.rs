//! `etl dashboards render`: one self-contained HTML page per dashboard.
//!
//! Each visual's data comes from the local warehouse ([`crate::query`]); charts are SVG from
//! [`crate::charts`], inlined; KPIs and tables are HTML. Visuals sit on a CSS grid of 36
//! columns placed as the definition's `GridLayout` says. The page loads nothing: its
//! Content-Security-Policy (`default-src 'none'`) forbids every request, and it holds no URL.

use crate::charts::{self, Series};
use crate::error::{io_err, Result};
use crate::model::{GridElement, Visual};
use crate::project::{DashboardFile, Project};
use crate::query::{self, Frame};
use crate::validate::visual_kind_and_id;
use crate::wells::Wells;
use etl_warehouse::LocalWarehouse;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The Content-Security-Policy of every page: no scripts, no requests; inline styles and
/// `data:` images only.
pub const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src data:";

/// Pixels per grid column and per grid row (row height + gap) of the charts' SVG canvas.
const COLUMN_PX: u32 = 36;
const ROW_PX: u32 = 32;

/// What was drawn for one visual.
#[derive(Debug, Clone, PartialEq)]
pub struct RenderedVisual {
    /// `VisualId`.
    pub visual_id: String,
    /// `kpi`, `line`, `bar`, `pie` or `table`.
    pub kind: &'static str,
    /// Points, bars, slices or table rows drawn.
    pub marks: usize,
    /// The KPI's value (the last period's when it has a trend).
    pub kpi_value: Option<f64>,
}

/// One rendered page.
#[derive(Debug, Clone)]
pub struct RenderedPage {
    /// The dashboard id (the page is `<id>.html`).
    pub dashboard_id: String,
    /// The HTML.
    pub html: String,
    /// Per visual, in definition order.
    pub visuals: Vec<RenderedVisual>,
    /// A browser window height that shows the whole page, in CSS pixels.
    pub height_px: u32,
}

/// Renders every dashboard of `project` into `out_dir/<id>.html`; returns the paths.
pub async fn render_all(
    project: &Project,
    warehouse: &LocalWarehouse,
    out_dir: &Path,
    queried_at: &str,
    source: &str,
) -> Result<Vec<(PathBuf, RenderedPage)>> {
    std::fs::create_dir_all(out_dir).map_err(io_err(out_dir))?;
    let mut out = Vec::new();
    for dashboard in &project.dashboards {
        let page =
            render_dashboard(project, &dashboard.value, warehouse, queried_at, source).await?;
        let path = out_dir.join(format!("{}.html", page.dashboard_id));
        std::fs::write(&path, &page.html).map_err(io_err(&path))?;
        tracing::info!(page = %path.display(), "dashboard rendered");
        out.push((path, page));
    }
    Ok(out)
}

/// Renders one dashboard with data from `warehouse`; `queried_at` and `source` are shown.
pub async fn render_dashboard(
    project: &Project,
    dashboard: &DashboardFile,
    warehouse: &LocalWarehouse,
    queried_at: &str,
    source: &str,
) -> Result<RenderedPage> {
    let def = &dashboard.definition;
    let mut views = BTreeMap::new();
    for d in &def.data_set_identifier_declarations {
        if let Some(table) = d
            .data_set_id()
            .and_then(|id| project.data_set(id))
            .and_then(|ds| ds.value.table())
        {
            views.insert(d.identifier.clone(), table.name.clone());
        }
    }
    let mut body = String::new();
    let mut visuals = Vec::new();
    let mut height_px = 160;
    for sheet in &def.sheets {
        let _ = write!(
            body,
            "<h2>{}</h2>\n<div class=\"grid\">\n",
            esc(&sheet.name)
        );
        let elements: BTreeMap<&str, &GridElement> = sheet
            .layouts
            .first()
            .map(|l| {
                l.configuration
                    .grid_layout
                    .elements
                    .iter()
                    .map(|e| (e.element_id.as_str(), e))
                    .collect()
            })
            .unwrap_or_default();
        let rows = elements
            .values()
            .map(|e| e.row_index.unwrap_or(0) + e.row_span)
            .max()
            .unwrap_or(0);
        height_px += rows * ROW_PX + 60;
        for visual in &sheet.visuals {
            let (_, id) = visual_kind_and_id(visual);
            let element = elements.get(id).copied();
            let sql = query::visual_sql(visual, &views)?;
            let frame = query::run(
                warehouse,
                &format!("visual {id} of {}", dashboard.dashboard_id),
                &sql,
            )
            .await?;
            let (html, rendered) = render_visual(visual, element, &frame)?;
            body.push_str(&html);
            visuals.push(rendered);
        }
        body.push_str("</div>\n");
    }
    let filters = filter_summary(dashboard);
    let html = format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<meta http-equiv=\"Content-Security-Policy\" content=\"{CSP}\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>{title}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<header>\n<h1>{title}</h1>\n<p class=\"meta\">Data queried at <time id=\"queried-at\">{queried_at}</time> from {source}.</p>\n<p class=\"meta\">{filters}</p>\n</header>\n<main>\n{body}</main>\n</body>\n</html>\n",
        title = esc(&dashboard.name),
        queried_at = esc(queried_at),
        source = esc(source),
    );
    Ok(RenderedPage {
        dashboard_id: dashboard.dashboard_id.clone(),
        html,
        visuals,
        height_px,
    })
}

const STYLE: &str = "
body{margin:0;font:14px/1.4 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;color:#1f2933;background:#f4f6f8}
header{padding:12px 24px;background:#fff;border-bottom:1px solid #dde3ea}
h1{margin:0 0 4px;font-size:22px}
h2{margin:16px 0 8px;font-size:16px;color:#52606d}
.meta{margin:2px 0;color:#52606d;font-size:12px}
main{padding:0 24px 24px;max-width:1320px}
.grid{display:grid;grid-template-columns:repeat(36,minmax(0,1fr));grid-auto-rows:26px;gap:6px}
.visual{background:#fff;border:1px solid #dde3ea;border-radius:4px;padding:6px 8px;overflow:hidden;display:flex;flex-direction:column}
.visual h3{flex:none;margin:0 0 4px;font-size:13px;font-weight:600;white-space:nowrap;overflow:hidden;text-overflow:ellipsis}
.visual svg{width:100%;height:auto;flex:1 1 auto;min-height:0}
.kpi-value{font-size:32px;font-weight:600;line-height:1.1}
.kpi-trend{font-size:12px;color:#52606d}
.up{color:#2f855a}.down{color:#c53030}
.legend{margin:0;padding:0;list-style:none;font-size:11px;display:flex;flex-wrap:wrap;gap:2px 10px}
.legend span{display:inline-block;width:10px;height:10px;margin-right:4px;border-radius:2px}
.table-wrap{overflow:auto;flex:1 1 auto}
table{border-collapse:collapse;width:100%;font-size:12px}
th,td{padding:3px 6px;border-bottom:1px solid #edf0f3;text-align:left}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
";

fn render_visual(
    visual: &Visual,
    element: Option<&GridElement>,
    frame: &Frame,
) -> Result<(String, RenderedVisual)> {
    let (_, id) = visual_kind_and_id(visual);
    let wells = Wells::of(visual);
    let (cs, rs) = element
        .map(|e| (e.column_span, e.row_span))
        .unwrap_or((12, 8));
    let placement = match element.and_then(|e| e.column_index.zip(e.row_index)) {
        Some((c, r)) => format!(
            "grid-column:{} / span {cs};grid-row:{} / span {rs}",
            c + 1,
            r + 1
        ),
        None => format!("grid-column:span {cs};grid-row:span {rs}"),
    };
    let title = title_of(visual).unwrap_or_else(|| id.to_string());
    let size = (cs * COLUMN_PX, (rs * ROW_PX).saturating_sub(60).max(80));
    let has_colors = !wells.colors.is_empty();
    let series_of = || -> Series {
        charts::series_of(frame.dims.iter().zip(&frame.values).flat_map(|(d, v)| {
            let category = d.first().cloned().unwrap_or_default();
            if has_colors {
                vec![(
                    category,
                    d.get(1).cloned().unwrap_or_default(),
                    v.first().copied().flatten(),
                )]
            } else {
                v.iter()
                    .enumerate()
                    .map(|(j, x)| (category.clone(), measure_label(&wells, j), *x))
                    .collect()
            }
        }))
    };
    let (kind, inner, marks, kpi_value) = match visual {
        Visual::Kpi(_) => {
            let (html, value) = kpi_html(frame);
            ("kpi", html, usize::from(value.is_some()), value)
        }
        Visual::Line(_) => {
            let s = series_of();
            let svg = charts::line_chart(id, &s, size)?;
            ("line", format!("{}{}", legend(&s), svg), s.points(), None)
        }
        Visual::Bar(b) => {
            let s = series_of();
            let c = &b.chart_configuration;
            let horizontal = c.orientation.as_deref() == Some("HORIZONTAL");
            let stacked = c
                .bars_arrangement
                .as_deref()
                .is_some_and(|a| a.starts_with("STACKED"));
            let svg = charts::bar_chart(id, &s, size, horizontal, stacked)?;
            ("bar", format!("{}{}", legend(&s), svg), s.points(), None)
        }
        Visual::Pie(_) => {
            let (labels, values): (Vec<String>, Vec<f64>) = frame
                .dims
                .iter()
                .zip(&frame.values)
                .filter_map(|(d, v)| Some((d.first()?.clone(), v.first().copied().flatten()?)))
                .unzip();
            let svg = charts::pie_chart(id, &labels, &values, size)?;
            ("pie", svg, values.len(), None)
        }
        Visual::Table(_) => {
            let html = table_html(&wells, frame);
            ("table", html, frame.dims.len(), None)
        }
    };
    let html = format!(
        "<section class=\"visual\" id=\"visual-{id}\" data-kind=\"{kind}\" data-marks=\"{marks}\" style=\"{placement}\">\n<h3>{}</h3>\n{inner}\n</section>\n",
        esc(&title),
        id = esc(id),
    );
    Ok((
        html,
        RenderedVisual {
            visual_id: id.to_string(),
            kind,
            marks,
            kpi_value,
        },
    ))
}

fn title_of(visual: &Visual) -> Option<String> {
    let t = match visual {
        Visual::Kpi(v) => &v.title,
        Visual::Line(v) => &v.title,
        Visual::Bar(v) => &v.title,
        Visual::Pie(v) => &v.title,
        Visual::Table(v) => &v.title,
    };
    t.as_ref().map(|t| t.format_text.plain_text.clone())
}

fn measure_label(wells: &Wells<'_>, j: usize) -> String {
    wells
        .values
        .get(j)
        .map(|m| m.column().column_name.clone())
        .unwrap_or_default()
}

fn legend(s: &Series) -> String {
    if s.series.len() < 2 {
        return String::new();
    }
    let items: String = s
        .series
        .iter()
        .enumerate()
        .map(|(i, (name, _))| {
            format!(
                "<li><span style=\"background:{}\"></span>{}</li>",
                charts::css_color(i),
                esc(name)
            )
        })
        .collect();
    format!("<ul class=\"legend\">{items}</ul>\n")
}

/// A KPI: the last period's value and its change against the previous period (or the one
/// value without a trend field).
fn kpi_html(frame: &Frame) -> (String, Option<f64>) {
    let rows: Vec<(&str, Option<f64>)> = frame
        .dims
        .iter()
        .zip(&frame.values)
        .map(|(d, v)| {
            (
                d.first().map(String::as_str).unwrap_or(""),
                v.first().copied().flatten(),
            )
        })
        .collect();
    let Some(&(period, value)) = rows.last() else {
        return ("<div class=\"kpi-value\">no data</div>".into(), None);
    };
    let Some(value) = value else {
        return ("<div class=\"kpi-value\">no data</div>".into(), None);
    };
    let mut html = format!(
        "<div class=\"kpi-value\" data-value=\"{value}\">{}</div>\n",
        format_number(value)
    );
    if !period.is_empty() {
        match rows
            .len()
            .checked_sub(2)
            .and_then(|i| rows[i].1.map(|p| (rows[i].0, p)))
        {
            Some((prev_period, prev)) if prev != 0.0 => {
                let change = (value - prev) / prev.abs() * 100.0;
                let (class, arrow) = if change >= 0.0 {
                    ("up", "▲")
                } else {
                    ("down", "▼")
                };
                let _ = write!(html, "<div class=\"kpi-trend\">{} <span class=\"{class}\">{arrow} {change:+.1}%</span> vs {} ({})</div>", esc(period), esc(prev_period), format_number(prev));
            }
            Some((prev_period, _)) => {
                let _ = write!(
                    html,
                    "<div class=\"kpi-trend\">{} vs {} (0)</div>",
                    esc(period),
                    esc(prev_period)
                );
            }
            None => {
                let _ = write!(
                    html,
                    "<div class=\"kpi-trend\">{} (no previous period)</div>",
                    esc(period)
                );
            }
        }
    }
    (html, Some(value))
}

fn table_html(wells: &Wells<'_>, frame: &Frame) -> String {
    let mut html = String::from("<div class=\"table-wrap\"><table>\n<thead><tr>");
    for d in wells.dims {
        let _ = write!(html, "<th>{}</th>", esc(&d.column().column_name));
    }
    for m in wells.values {
        let _ = write!(
            html,
            "<th class=\"n\">{}</th>",
            esc(&m.column().column_name)
        );
    }
    html.push_str("</tr></thead>\n<tbody>\n");
    for (d, v) in frame.dims.iter().zip(&frame.values) {
        html.push_str("<tr>");
        for x in d {
            let _ = write!(html, "<td>{}</td>", esc(x));
        }
        for x in v {
            let _ = write!(
                html,
                "<td class=\"n\">{}</td>",
                x.map(format_number).unwrap_or_default()
            );
        }
        html.push_str("</tr>\n");
    }
    html.push_str("</tbody></table></div>");
    html
}

/// Numbers as a person reads them: integers with thousands separators, ratios (below 1) with
/// 3 decimals, other numbers with 1.
pub fn format_number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        let digits = format!("{}", v.abs() as u64);
        let mut out = String::new();
        for (i, ch) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i) % 3 == 0 {
                out.push(',');
            }
            out.push(ch);
        }
        return if v < 0.0 { format!("-{out}") } else { out };
    }
    if v.abs() < 1.0 {
        format!("{v:.3}")
    } else {
        format!("{v:.1}")
    }
}

fn filter_summary(dashboard: &DashboardFile) -> String {
    let parts: Vec<String> = dashboard
        .definition
        .filter_groups
        .iter()
        .flat_map(|g| &g.filters)
        .map(|f| match f {
            crate::model::Filter::TimeRange(t) => {
                format!("date range on {}: all dates", esc(&t.column.column_name))
            }
            crate::model::Filter::Category(c) => {
                format!("{}: all values", esc(&c.column.column_name))
            }
        })
        .collect();
    if parts.is_empty() {
        "No filters.".into()
    } else {
        format!(
            "Filters (QuickSight controls; this page shows everything): {}.",
            parts.join(" · ")
        )
    }
}

/// Escapes text for HTML.
pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Saves a screenshot of `page` (an HTML file) as `png` with headless Chromium at `browser`,
/// in a fresh temporary profile, with every host name resolving to nothing (no network).
pub fn screenshot(
    browser: &Path,
    page: &Path,
    png: &Path,
    height_px: u32,
) -> Result<std::process::Output> {
    let berr = |message: String| crate::error::DashboardError::Browser {
        browser: browser.display().to_string(),
        message,
    };
    let profile =
        tempfile::tempdir().map_err(|e| berr(format!("cannot create a profile directory: {e}")))?;
    let page = std::path::absolute(page).map_err(io_err(page))?;
    let output = std::process::Command::new(browser)
        .args(headless_args(profile.path()))
        .arg(format!("--window-size=1366,{}", height_px.max(600)))
        .arg(format!("--screenshot={}", png.display()))
        .arg(format!("file://{}", page.display()))
        .output()
        .map_err(|e| berr(format!("cannot start it: {e}; install the Debian package `chromium` (scripts/setup-test-env does)")))?;
    if !output.status.success() || !png.is_file() {
        return Err(berr(format!(
            "exit {}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
                .lines()
                .rev()
                .take(5)
                .collect::<Vec<_>>()
                .join(" | ")
        )));
    }
    Ok(output)
}

/// The flags of a headless, offline Chromium with its own profile at `profile`.
pub fn headless_args(profile: &Path) -> Vec<String> {
    vec![
        "--headless".into(),
        "--no-sandbox".into(),
        "--disable-gpu".into(),
        "--hide-scrollbars".into(),
        format!("--user-data-dir={}", profile.display()),
        "--no-first-run".into(),
        "--no-default-browser-check".into(),
        "--disable-background-networking".into(),
        "--disable-component-update".into(),
        "--disable-sync".into(),
        "--disable-extensions".into(),
        // Every host name resolves to nothing: whatever the page tried, it reaches no server.
        "--host-resolver-rules=MAP * ~NOTFOUND".into(),
        "--enable-logging=stderr".into(),
        "--v=0".into(),
    ]
}
