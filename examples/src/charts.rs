//! The tour's charts: what a section measured, drawn as SVG with plotters,
//! and the HTML page that shows them (`tour --report DIR`).
//!
//! A [`Chart`] is plain data (series of points, axis titles, one sentence
//! saying what to see), so that a test can check what was drawn without
//! parsing pictures, and so that sections only build charts when a report
//! was asked for (see [`ChartSink`]).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::prelude::*;

/// How a series is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Points joined by a line.
    Line,
    /// A line, thin and grey: a reference (a mean, a bound, an ideal).
    Reference,
    /// Unjoined points.
    Points,
    /// Bars from zero, side by side with the chart's other bar series.
    Bars,
}

/// Where the legend sits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Corner {
    /// Top left (the default).
    #[default]
    UpperLeft,
    /// Top right.
    UpperRight,
    /// Bottom right.
    LowerRight,
}

/// One named series of `(x, y)` points.
#[derive(Debug, Clone)]
pub struct Series {
    /// The legend's text.
    pub name: String,
    /// How it is drawn.
    pub kind: Kind,
    /// The points, in x order for lines.
    pub points: Vec<(f64, f64)>,
}

impl Series {
    /// A series of `kind` named `name`.
    pub fn new(name: impl Into<String>, kind: Kind, points: Vec<(f64, f64)>) -> Series {
        Series { name: name.into(), kind, points }
    }
}

/// One chart of the report.
#[derive(Debug, Clone)]
pub struct Chart {
    /// The file name (`ratelimit-boundary.svg`).
    pub file: String,
    /// The section it belongs to (`ratelimit`).
    pub section: String,
    /// The title, drawn on the chart.
    pub title: String,
    /// The x axis's title, with its unit.
    pub x_label: String,
    /// The y axis's title, with its unit.
    pub y_label: String,
    /// Logarithmic axes.
    pub log_x: bool,
    /// Logarithmic y axis.
    pub log_y: bool,
    /// The data.
    pub series: Vec<Series>,
    /// One sentence under the chart: what to see.
    pub caption: String,
    /// A citation the data requires, under the caption.
    pub citation: Option<String>,
    /// Where the legend sits.
    pub legend: Corner,
}

impl Chart {
    /// A chart with linear axes and no series yet.
    pub fn new(section: &str, file: &str, title: &str, x_label: &str, y_label: &str) -> Chart {
        Chart {
            file: file.to_owned(),
            section: section.to_owned(),
            title: title.to_owned(),
            x_label: x_label.to_owned(),
            y_label: y_label.to_owned(),
            log_x: false,
            log_y: false,
            series: Vec::new(),
            caption: String::new(),
            citation: None,
            legend: Corner::UpperLeft,
        }
    }

    /// Adds a series.
    #[must_use]
    pub fn with(mut self, series: Series) -> Chart {
        self.series.push(series);
        self
    }

    /// Sets the sentence under the chart.
    #[must_use]
    pub fn caption(mut self, caption: &str) -> Chart {
        self.caption = caption.to_owned();
        self
    }

    /// Makes the axes logarithmic.
    #[must_use]
    pub fn log(mut self, x: bool, y: bool) -> Chart {
        self.log_x = x;
        self.log_y = y;
        self
    }

    /// Moves the legend.
    #[must_use]
    pub fn legend_at(mut self, corner: Corner) -> Chart {
        self.legend = corner;
        self
    }

    /// Sets the citation the data requires.
    #[must_use]
    pub fn cite(mut self, citation: &str) -> Chart {
        self.citation = Some(citation.to_owned());
        self
    }

    /// The distance between neighbouring bars: the smallest gap between
    /// the bar series' x values (1 when there is none).
    fn bar_unit(&self) -> f64 {
        let mut xs: Vec<f64> = self
            .series
            .iter()
            .filter(|s| s.kind == Kind::Bars)
            .flat_map(|s| s.points.iter().map(|p| p.0))
            .collect();
        xs.sort_by(f64::total_cmp);
        xs.windows(2)
            .map(|w| w[1] - w[0])
            .filter(|d| *d > 1e-12)
            .fold(None, |m: Option<f64>, d| Some(m.map_or(d, |m| m.min(d))))
            .unwrap_or(1.0)
    }

    /// The chart as an SVG document.
    ///
    /// # Errors
    /// A chart with no points, or one plotters cannot draw.
    pub fn to_svg(&self) -> Result<String, String> {
        let points = || self.series.iter().flat_map(|s| s.points.iter());
        if points().next().is_none() {
            return Err(format!("{}: no data", self.file));
        }
        let bounds = |log: bool, value: fn(&(f64, f64)) -> f64, bars: bool| {
            let values = points().map(value).filter(|v| v.is_finite() && (!log || *v > 0.0));
            let (lo, hi) = values.fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
            if log {
                (lo / 1.5, hi * 1.5)
            } else {
                let lo = if bars { lo.min(0.0) } else { lo };
                let pad = ((hi - lo) * 0.05).max(1e-9);
                (lo - if bars { 0.0 } else { pad }, hi + pad)
            }
        };
        let has_bars = self.series.iter().any(|s| s.kind == Kind::Bars);
        let (x0, x1) = bounds(self.log_x, |p| p.0, false);
        let (y0, y1) = bounds(self.log_y, |p| p.1, has_bars);
        let unit = self.bar_unit();
        let (x0, x1) = if has_bars { (x0 - 0.6 * unit, x1 + 0.6 * unit) } else { (x0, x1) };
        // Linear counts and ratios read best from zero; bars get headroom
        // for the legend.
        let y0 = if self.log_y { y0 } else { y0.min(0.0) };
        let y1 = match (has_bars, self.log_y) {
            (true, false) => y1 + (y1 - y0) * 0.3,
            (true, true) => y1 * 4.0,
            _ => y1,
        };
        let mut svg = String::new();
        match (self.log_x, self.log_y) {
            (false, false) => self.draw(&mut svg, x0..x1, y0..y1, 0.0),
            (true, false) => self.draw(&mut svg, (x0..x1).log_scale(), y0..y1, 0.0),
            (false, true) => self.draw(&mut svg, x0..x1, (y0..y1).log_scale(), y0),
            (true, true) => self.draw(&mut svg, (x0..x1).log_scale(), (y0..y1).log_scale(), y0),
        }
        .map_err(|e| format!("{}: {e}", self.file))?;
        Ok(svg)
    }

    /// Draws on `x` and `y`; bars rise from `bar_base` (the axis's foot on
    /// a log scale, where zero is out of reach).
    fn draw<X, Y>(
        &self,
        svg: &mut String,
        x: X,
        y: Y,
        bar_base: f64,
    ) -> Result<(), Box<dyn std::error::Error>>
    where
        X: AsRangedCoord<Value = f64>,
        Y: AsRangedCoord<Value = f64>,
        X::CoordDescType: ValueFormatter<f64>,
        Y::CoordDescType: ValueFormatter<f64>,
    {
        let root = SVGBackend::with_string(svg, (760, 440)).into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(&self.title, ("sans-serif", 21))
            .margin(14)
            .x_label_area_size(46)
            .y_label_area_size(70)
            .build_cartesian_2d(x, y)?;
        chart
            .configure_mesh()
            .x_desc(&self.x_label)
            .y_desc(&self.y_label)
            .x_label_formatter(&|v: &f64| tick(*v))
            .y_label_formatter(&|v: &f64| tick(*v))
            .label_style(("sans-serif", 15))
            .axis_desc_style(("sans-serif", 16))
            .light_line_style(WHITE)
            .draw()?;
        let bar_series: Vec<usize> = self
            .series
            .iter()
            .enumerate()
            .filter(|(_, s)| s.kind == Kind::Bars)
            .map(|(i, _)| i)
            .collect();
        for (i, series) in self.series.iter().enumerate() {
            let color = PALETTE[i % PALETTE.len()];
            let legend_color = color;
            match series.kind {
                Kind::Line => {
                    chart
                        .draw_series(LineSeries::new(
                            series.points.iter().copied(),
                            color.stroke_width(2),
                        ))?
                        .label(&series.name)
                        .legend(move |(x, y)| {
                            PathElement::new(
                                vec![(x, y), (x + 18, y)],
                                legend_color.stroke_width(2),
                            )
                        });
                }
                Kind::Reference => {
                    let grey = RGBColor(120, 120, 120);
                    chart
                        .draw_series(LineSeries::new(series.points.iter().copied(), grey))?
                        .label(&series.name)
                        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], grey));
                }
                Kind::Points => {
                    chart
                        .draw_series(
                            series
                                .points
                                .iter()
                                .map(|&p| Circle::new(p, 2, color.mix(0.5).filled())),
                        )?
                        .label(&series.name)
                        .legend(move |(x, y)| Circle::new((x + 9, y), 3, legend_color.filled()));
                }
                Kind::Bars => {
                    let slot = bar_series.iter().position(|b| *b == i).unwrap_or(0) as f64;
                    let unit = self.bar_unit();
                    let width = 0.8 * unit / bar_series.len().max(1) as f64;
                    chart
                        .draw_series(series.points.iter().map(|&(x, y)| {
                            let left = x - 0.4 * unit + slot * width;
                            Rectangle::new(
                                [(left, bar_base), (left + width * 0.9, y)],
                                color.filled(),
                            )
                        }))?
                        .label(&series.name)
                        .legend(move |(x, y)| {
                            Rectangle::new([(x, y - 5), (x + 12, y + 5)], legend_color.filled())
                        });
                }
            }
        }
        chart
            .configure_series_labels()
            .position(match self.legend {
                Corner::UpperLeft => SeriesLabelPosition::UpperLeft,
                Corner::UpperRight => SeriesLabelPosition::UpperRight,
                Corner::LowerRight => SeriesLabelPosition::LowerRight,
            })
            .label_font(("sans-serif", 14))
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(180, 180, 180))
            .draw()?;
        root.present()?;
        Ok(())
    }
}

/// An axis label: whole numbers with thousands separators, others with
/// up to three significant digits.
fn tick(v: f64) -> String {
    if v.abs() >= 1.0 && (v - v.round()).abs() < 1e-9 || v.abs() >= 1000.0 {
        let whole = format!("{}", v.round().abs() as u64);
        let mut out = String::new();
        for (i, c) in whole.chars().enumerate() {
            if i > 0 && (whole.len() - i).is_multiple_of(3) {
                out.push(',');
            }
            out.push(c);
        }
        if v < 0.0 { format!("-{out}") } else { out }
    } else if v == 0.0 {
        "0".to_owned()
    } else {
        let digits = (2 - v.abs().log10().floor() as i32).max(0) as usize;
        let text = format!("{v:.digits$}");
        let text = if text.contains('.') {
            text.trim_end_matches('0').trim_end_matches('.')
        } else {
            &text
        };
        text.to_owned()
    }
}

/// Colours told apart by most readers, colour-blind ones included
/// (Okabe and Ito's palette).
const PALETTE: [RGBColor; 7] = [
    RGBColor(0, 114, 178),
    RGBColor(213, 94, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(230, 159, 0),
    RGBColor(86, 180, 233),
    RGBColor(0, 0, 0),
];

/// Where sections put their charts when a report was asked for; sections
/// build no chart without one, so a plain tour pays nothing for them.
#[derive(Debug, Clone, Default)]
pub struct ChartSink(Arc<Mutex<Vec<Chart>>>);

impl ChartSink {
    /// An empty sink.
    pub fn new() -> ChartSink {
        ChartSink::default()
    }

    /// Adds a chart.
    pub fn push(&self, chart: Chart) {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(chart);
    }

    /// The charts so far, in the order they came.
    pub fn charts(&self) -> Vec<Chart> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// Writes one SVG file per chart and `index.html` showing them all, by
/// section, into `dir` (made if missing). Returns the page's path.
///
/// # Errors
/// A chart that cannot be drawn, or a file that cannot be written.
pub fn write_report(dir: &Path, charts: &[Chart]) -> Result<PathBuf, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let mut page = String::from(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>sysblocks tour: the building blocks at work</title>\n<style>\n\
         body { font-family: sans-serif; max-width: 820px; margin: 0 auto; padding: 0 12px; \
         line-height: 1.45; color: #222; }\n\
         figure { margin: 1.2em 0 2em; }\n\
         img { width: 100%; height: auto; border: 1px solid #ddd; }\n\
         figcaption { margin-top: 0.4em; }\n\
         .cite { font-size: 0.85em; color: #555; }\n\
         </style>\n</head>\n<body>\n<h1>sysblocks tour: the building blocks at work</h1>\n\
         <p>Every chart is drawn from the runs the tour prints \
         (<code>cargo run --release -p sysblocks-examples --bin tour -- --report DIR</code>).</p>\n",
    );
    let mut section = "";
    for chart in charts {
        let svg = chart.to_svg()?;
        let path = dir.join(&chart.file);
        std::fs::write(&path, svg).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        if chart.section != section {
            section = &chart.section;
            let _ = writeln!(page, "<h2 id=\"{0}\">{0}</h2>", escape(section));
        }
        let _ = writeln!(
            page,
            "<figure>\n<a href=\"{file}\"><img src=\"{file}\" alt=\"{title}\"></a>\n\
             <figcaption>{caption}",
            file = escape(&chart.file),
            title = escape(&chart.title),
            caption = escape(&chart.caption),
        );
        if let Some(citation) = &chart.citation {
            let _ = write!(page, "<br><span class=\"cite\">Data: {}</span>", escape(citation));
        }
        page.push_str("</figcaption>\n</figure>\n");
    }
    page.push_str("</body>\n</html>\n");
    let index = dir.join("index.html");
    std::fs::write(&index, page).map_err(|e| format!("cannot write {}: {e}", index.display()))?;
    Ok(index)
}
