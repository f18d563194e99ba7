//! `tour --report`: every section's charts are drawn from real runs, every
//! chart file is well-formed SVG holding its series, and index.html shows
//! every one.

use sysblocks_examples::charts::{ChartSink, Kind, write_report};
use sysblocks_examples::sections::{ALL, TourOptions};

const EXPECTED: [&str; 10] = [
    "ratelimit-boundary.svg",
    "ratelimit-leaky.svg",
    "consistent-hash-vnodes.svg",
    "consistent-hash-join.svg",
    "consistent-hash-bounded.svg",
    "merkle-bytes.svg",
    "lru-cache-hit-ratio.svg",
    "sharded-counter-threads.svg",
    "scheduler-retries.svg",
    "scheduler-lateness.svg",
];

/// The admitted count of the series named `prefix...` at time `t`.
fn admitted_at(points: &[(f64, f64)], t: f64) -> f64 {
    points.iter().take_while(|p| p.0 <= t).last().map_or(0.0, |p| p.1)
}

#[test]
fn the_report_draws_every_block_from_its_runs() {
    let sink = ChartSink::new();
    let options = TourOptions { redis: None, charts: Some(sink.clone()) };
    for (name, run) in ALL {
        run(&options).unwrap_or_else(|e| panic!("section {name}: {e}"));
    }
    let charts = sink.charts();
    let files: Vec<&str> = charts.iter().map(|c| c.file.as_str()).collect();
    for file in EXPECTED {
        assert!(files.contains(&file), "no {file} among {files:?}");
    }

    // The data: every series has finite points, and the pictures say what
    // the captions claim.
    for chart in &charts {
        assert!(!chart.caption.is_empty(), "{}: no caption", chart.file);
        assert!(!chart.x_label.is_empty() && !chart.y_label.is_empty(), "{}", chart.file);
        for series in &chart.series {
            assert!(!series.points.is_empty(), "{}: {} is empty", chart.file, series.name);
            assert!(series.points.iter().all(|p| p.0.is_finite() && p.1.is_finite()));
        }
    }
    let chart = |file: &str| charts.iter().find(|c| c.file == file).expect("drawn");
    let series = |file: &str, prefix: &str| {
        chart(file)
            .series
            .iter()
            .find(|s| s.name.starts_with(prefix))
            .unwrap_or_else(|| panic!("{file}: no series {prefix:?}"))
            .points
            .clone()
    };
    // Across the window boundary (0.9 s to 1.1 s) the fixed window lets
    // twice its limit of 10 through; the sliding log lets 10.
    let boundary = |prefix: &str| {
        let points = series("ratelimit-boundary.svg", prefix);
        admitted_at(&points, 1.1) - admitted_at(&points, 0.89)
    };
    assert_eq!(boundary("fixed window"), 20.0);
    assert_eq!(boundary("sliding window log"), 10.0);
    // Bounded loads: no node above 1.25 x the mean (plus one).
    let bounded = series("consistent-hash-bounded.svg", "bounded loads");
    let mean = bounded.iter().map(|p| p.1).sum::<f64>() / bounded.len() as f64;
    assert!(bounded.iter().all(|p| p.1 <= 1.25 * mean + 1.0), "{bounded:?}");
    // The cache curves rise with the size, on both real traces.
    let hit_ratio = chart("lru-cache-hit-ratio.svg");
    assert!(hit_ratio.citation.as_deref().is_some_and(|c| c.contains("Megiddo")));
    for name in ["OLTP trace", "P12 trace", "Zipf"] {
        let curve = series("lru-cache-hit-ratio.svg", name);
        assert!(curve.len() >= 5, "{name}: {curve:?}");
        assert!(curve.windows(2).all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1), "{name}");
    }
    // Repair bytes grow with the differences and stay under "everything"
    // for a single one.
    let merkle = series("merkle-bytes.svg", "Merkle");
    assert!(merkle.windows(2).all(|w| w[0].1 < w[1].1), "{merkle:?}");
    let everything = series("merkle-bytes.svg", "sending every entry")[0].1;
    assert!(merkle[0].1 * 100.0 < everything, "{merkle:?} against {everything}");

    // The files.
    let dir = std::env::temp_dir().join(format!("sysblocks-report-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let index = write_report(&dir, &charts).expect("the report is written");
    let page = std::fs::read_to_string(&index).expect("index.html");
    for chart in &charts {
        assert!(page.contains(&format!("src=\"{}\"", chart.file)), "{} not shown", chart.file);
        let text = std::fs::read_to_string(dir.join(&chart.file)).expect("the SVG file");
        let svg = roxmltree::Document::parse(&text)
            .unwrap_or_else(|e| panic!("{} is not well-formed: {e}", chart.file));
        assert_eq!(svg.root_element().tag_name().name(), "svg", "{}", chart.file);
        let words: String = svg
            .descendants()
            .filter(|n| n.is_text())
            .filter_map(|n| n.text())
            .collect::<Vec<_>>()
            .join(" ");
        for label in [&chart.title, &chart.x_label, &chart.y_label] {
            assert!(words.contains(label.as_str()), "{}: {label:?} not drawn", chart.file);
        }
        for series in &chart.series {
            assert!(words.contains(&series.name), "{}: no legend {:?}", chart.file, series.name);
        }
        // Each series left marks: a line for a line, one mark per point
        // for points and bars.
        let count = |tag: &str| svg.descendants().filter(|n| n.has_tag_name(tag)).count();
        let lines = chart.series.iter().filter(|s| matches!(s.kind, Kind::Line | Kind::Reference));
        assert!(count("polyline") >= lines.count(), "{}: lines missing", chart.file);
        let marks: usize = chart
            .series
            .iter()
            .filter(|s| matches!(s.kind, Kind::Points | Kind::Bars))
            .map(|s| s.points.len())
            .sum();
        assert!(count("rect") + count("circle") >= marks, "{}: marks missing", chart.file);
    }
    let _ = std::fs::remove_dir_all(&dir);
}
