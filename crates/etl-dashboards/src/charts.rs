//! Line, bar and pie charts as SVG, drawn by `plotters` (SVG backend only; text is left to the
//! browser's fonts). Marks: one `<circle>` per line point, one `<rect>` per bar, one
//! `<polygon>` per pie slice; axes and grid are lines, so marks can be counted in the page.

use crate::error::{DashboardError, Result};
use plotters::prelude::*;
use std::collections::BTreeMap;

/// Series colours (Tableau 10), also used by the page's legends.
pub const PALETTE: [(u8, u8, u8); 10] = [
    (78, 121, 167),
    (242, 142, 43),
    (225, 87, 89),
    (118, 183, 178),
    (89, 161, 79),
    (237, 201, 72),
    (176, 122, 161),
    (255, 157, 167),
    (156, 117, 95),
    (186, 176, 172),
];

/// The colour of series `i`.
pub fn color(i: usize) -> RGBColor {
    let (r, g, b) = PALETTE[i % PALETTE.len()];
    RGBColor(r, g, b)
}

/// The colour of series `i` as CSS.
pub fn css_color(i: usize) -> String {
    let (r, g, b) = PALETTE[i % PALETTE.len()];
    format!("#{r:02x}{g:02x}{b:02x}")
}

/// Points of a chart: categories in order, and per series the value at each category.
#[derive(Debug, Clone, Default)]
pub struct Series {
    /// Category labels (x axis), in order.
    pub categories: Vec<String>,
    /// Series name → value per category (`None`: no row for it).
    pub series: Vec<(String, Vec<Option<f64>>)>,
}

impl Series {
    /// Number of (category, series) points that have a value: the marks a chart draws.
    pub fn points(&self) -> usize {
        self.series
            .iter()
            .map(|(_, v)| v.iter().filter(|x| x.is_some()).count())
            .sum()
    }

    fn max(&self, stacked: bool) -> f64 {
        let max = if stacked {
            (0..self.categories.len())
                .map(|i| {
                    self.series
                        .iter()
                        .filter_map(|(_, v)| v[i])
                        .filter(|x| *x > 0.0)
                        .sum::<f64>()
                })
                .fold(0.0, f64::max)
        } else {
            self.series
                .iter()
                .flat_map(|(_, v)| v.iter().flatten())
                .fold(0.0_f64, |a, b| a.max(*b))
        };
        if max > 0.0 {
            max * 1.1
        } else {
            1.0
        }
    }
}

/// Groups `(category, series, value)` rows into [`Series`], keeping first-seen order.
pub fn series_of(rows: impl IntoIterator<Item = (String, String, Option<f64>)>) -> Series {
    let mut categories: Vec<String> = Vec::new();
    let mut index: BTreeMap<String, usize> = BTreeMap::new();
    let mut names: Vec<String> = Vec::new();
    let mut cells: BTreeMap<(usize, String), Option<f64>> = BTreeMap::new();
    for (category, series, value) in rows {
        let i = *index.entry(category.clone()).or_insert_with(|| {
            categories.push(category.clone());
            categories.len() - 1
        });
        if !names.contains(&series) {
            names.push(series.clone());
        }
        cells.insert((i, series), value);
    }
    let series = names
        .into_iter()
        .map(|name| {
            let values = (0..categories.len())
                .map(|i| cells.get(&(i, name.clone())).copied().flatten())
                .collect();
            (name, values)
        })
        .collect();
    Series { categories, series }
}

fn chart_err<E: std::fmt::Debug>(visual: &str) -> impl Fn(E) -> DashboardError + '_ {
    move |e| DashboardError::Chart {
        visual: visual.to_string(),
        message: format!("{e:?}"),
    }
}

fn label_every(n: usize, max_labels: usize) -> usize {
    n.div_ceil(max_labels.max(1)).max(1)
}

fn axis_number(v: &f64) -> String {
    let a = v.abs();
    if a >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if a >= 1e4 {
        format!("{:.0}k", v / 1e3)
    } else if a >= 100.0 || a == 0.0 || (v.fract() == 0.0) {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

/// A line chart: one line (with a circle per point) per series.
pub fn line_chart(visual: &str, data: &Series, size: (u32, u32)) -> Result<String> {
    let err = chart_err(visual);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        let n = data.categories.len().max(1);
        let every = label_every(n, (size.0 / 90) as usize);
        let mut chart = ChartBuilder::on(&root)
            .margin(8)
            .x_label_area_size(26)
            .y_label_area_size(48)
            .build_cartesian_2d(-0.5f64..(n as f64 - 0.5), 0f64..data.max(false))
            .map_err(&err)?;
        let cats = &data.categories;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(n.min(size.0 as usize / 40).max(2))
            .x_label_formatter(&|x| category_label(cats, *x, every))
            .y_labels(6)
            .y_label_formatter(&axis_number)
            .label_style(("sans-serif", 11))
            .light_line_style(RGBColor(235, 235, 235))
            .draw()
            .map_err(&err)?;
        for (s, (_, values)) in data.series.iter().enumerate() {
            let points: Vec<(f64, f64)> = values
                .iter()
                .enumerate()
                .filter_map(|(i, v)| v.map(|y| (i as f64, y)))
                .collect();
            let c = color(s);
            chart
                .draw_series(LineSeries::new(points.clone(), c.stroke_width(2)))
                .map_err(&err)?;
            chart
                .draw_series(points.into_iter().map(|p| Circle::new(p, 3, c.filled())))
                .map_err(&err)?;
        }
        root.present().map_err(&err)?;
    }
    Ok(svg)
}

/// A category label at integer positions (every `every`-th), nothing between them.
fn category_label(cats: &[String], x: f64, every: usize) -> String {
    let i = x.round();
    if (x - i).abs() > 1e-6 || i < 0.0 {
        return String::new();
    }
    let i = i as usize;
    if !i.is_multiple_of(every) {
        return String::new();
    }
    cats.get(i).cloned().unwrap_or_default()
}

/// A bar chart: vertical or horizontal, clustered or stacked; one rectangle per value.
pub fn bar_chart(
    visual: &str,
    data: &Series,
    size: (u32, u32),
    horizontal: bool,
    stacked: bool,
) -> Result<String> {
    let err = chart_err(visual);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        let n = data.categories.len().max(1);
        let k = data.series.len().max(1);
        let cat_range = -0.5f64..(n as f64 - 0.5);
        let val_range = 0f64..data.max(stacked);
        // Bars in data coordinates: (category position from, to; value from, to).
        let mut bars: Vec<(usize, f64, f64, f64, f64)> = Vec::new();
        let mut base = vec![0.0f64; n];
        for (s, (_, values)) in data.series.iter().enumerate() {
            for (i, v) in values.iter().enumerate() {
                let Some(v) = v else { continue };
                let pos = if horizontal {
                    (n - 1 - i) as f64
                } else {
                    i as f64
                };
                if stacked {
                    bars.push((s, pos - 0.4, pos + 0.4, base[i], base[i] + v));
                    base[i] += v;
                } else {
                    let w = 0.8 / k as f64;
                    let from = pos - 0.4 + w * s as f64;
                    bars.push((s, from, from + w, 0.0, *v));
                }
            }
        }
        let cats: Vec<String> = if horizontal {
            data.categories.iter().rev().cloned().collect()
        } else {
            data.categories.clone()
        };
        if horizontal {
            let mut chart = ChartBuilder::on(&root)
                .margin(8)
                .x_label_area_size(24)
                .y_label_area_size((size.0 / 4).clamp(60, 160))
                .build_cartesian_2d(val_range, cat_range)
                .map_err(&err)?;
            chart
                .configure_mesh()
                .disable_y_mesh()
                .y_labels(n + 1)
                .y_label_formatter(&|y| category_label(&cats, *y, 1))
                .x_labels(5)
                .x_label_formatter(&axis_number)
                .label_style(("sans-serif", 11))
                .light_line_style(RGBColor(235, 235, 235))
                .draw()
                .map_err(&err)?;
            chart
                .draw_series(bars.iter().map(|&(s, a, b, lo, hi)| {
                    Rectangle::new([(lo, a), (hi, b)], color(s).filled())
                }))
                .map_err(&err)?;
        } else {
            let every = label_every(n, (size.0 / 70) as usize);
            let mut chart = ChartBuilder::on(&root)
                .margin(8)
                .x_label_area_size(26)
                .y_label_area_size(48)
                .build_cartesian_2d(cat_range, val_range)
                .map_err(&err)?;
            chart
                .configure_mesh()
                .disable_x_mesh()
                .x_labels(n + 1)
                .x_label_formatter(&|x| category_label(&cats, *x, every))
                .y_labels(6)
                .y_label_formatter(&axis_number)
                .label_style(("sans-serif", 11))
                .light_line_style(RGBColor(235, 235, 235))
                .draw()
                .map_err(&err)?;
            chart
                .draw_series(bars.iter().map(|&(s, a, b, lo, hi)| {
                    Rectangle::new([(a, lo), (b, hi)], color(s).filled())
                }))
                .map_err(&err)?;
        }
        root.present().map_err(&err)?;
    }
    Ok(svg)
}

/// A pie chart: one slice per label, with its percentage.
pub fn pie_chart(
    visual: &str,
    labels: &[String],
    values: &[f64],
    size: (u32, u32),
) -> Result<String> {
    let err = chart_err(visual);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        let (w, h) = root.dim_in_pixel();
        let center = ((w / 2) as i32, (h / 2) as i32);
        let radius = f64::from(w.min(h)) * 0.36;
        let colors: Vec<RGBColor> = (0..values.len()).map(color).collect();
        let mut pie = Pie::new(&center, &radius, values, &colors, labels);
        pie.label_style(("sans-serif", 11).into_font().color(&BLACK));
        pie.percentages(("sans-serif", 10).into_font().color(&WHITE));
        root.draw(&pie).map_err(&err)?;
        root.present().map_err(&err)?;
    }
    Ok(svg)
}
