//! The sysblocks tour: every building block end to end, with real numbers.
//!
//! ```text
//! cargo run --release -p sysblocks-examples --bin tour [-- --redis redis://127.0.0.1:6379/]
//! ```

use std::process::ExitCode;

use sysblocks_examples::sections::{self, TourOptions};

fn parse_args() -> Result<TourOptions, String> {
    let mut options = TourOptions::default();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--redis" => {
                let url = args.next().ok_or("--redis needs a URL, e.g. redis://127.0.0.1:6379/")?;
                options.redis = Some(url);
            }
            "-h" | "--help" => {
                println!("usage: tour [--redis redis://HOST:PORT/]");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?} (try --help)")),
        }
    }
    Ok(options)
}

fn main() -> ExitCode {
    let options = match parse_args() {
        Ok(options) => options,
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
    if failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}
