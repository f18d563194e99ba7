//! The sysblocks tour: every building block end to end, with real numbers.
//!
//! ```text
//! cargo run --release -p sysblocks-examples --bin tour [-- --redis redis://127.0.0.1:6379/] [--report DIR]
//! ```
//!
//! `--report DIR` also draws what the sections measured: one SVG per chart
//! and `DIR/index.html` showing them (works offline, reads on a phone).

use std::path::PathBuf;
use std::process::ExitCode;

use sysblocks_examples::charts::{ChartSink, write_report};

use sysblocks_examples::sections::{self, TourOptions};

fn parse_args() -> Result<(TourOptions, Option<PathBuf>), String> {
    let mut options = TourOptions::default();
    let mut report = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--redis" => {
                let url = args.next().ok_or("--redis needs a URL, e.g. redis://127.0.0.1:6379/")?;
                options.redis = Some(url);
            }
            "--report" => {
                let dir =
                    args.next().ok_or("--report needs a folder, e.g. --report target/tour")?;
                report = Some(PathBuf::from(dir));
                options.charts = Some(ChartSink::new());
            }
            "-h" | "--help" => {
                println!("usage: tour [--redis redis://HOST:PORT/] [--report DIR]");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?} (try --help)")),
        }
    }
    Ok((options, report))
}

fn main() -> ExitCode {
    let (options, report) = match parse_args() {
        Ok(parsed) => parsed,
        Err(e) => {
            eprintln!("tour: {e}");
            return ExitCode::from(2);
        }
    };
    println!("sysblocks tour: each building block at work on real numbers.");
    if let Some(url) = &options.redis {
        println!("Redis-backed sections use {url}.");
    }
    let mut failed = 0;
    for (name, run) in sections::ALL {
        if let Err(e) = run(&options) {
            eprintln!("tour: section {name} failed: {e}");
            failed += 1;
        }
    }
    match (&report, &options.charts) {
        (Some(dir), Some(sink)) => match write_report(dir, &sink.charts()) {
            Ok(index) => println!("\nThe report, with a chart of each block: {}", index.display()),
            Err(e) => {
                eprintln!("tour: the report could not be written: {e}");
                failed += 1;
            }
        },
        _ => println!(
            "\nFor the same runs drawn as charts: tour --report target/tour (then open target/tour/index.html)."
        ),
    }
    if failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}
