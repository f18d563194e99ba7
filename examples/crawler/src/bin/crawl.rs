//! `crawl`: crawls sim-web (or your seeds) with one worker, or with
//! several sharing Redis. See [`sysblocks_crawler::app`].
//!
//! ```text
//! cargo run --release -p sysblocks-crawler --bin crawl
//! cargo run --release -p sysblocks-crawler --bin crawl -- --workers 3 --redis redis://127.0.0.1:6379/
//! cargo run --release -p sysblocks-crawler --bin crawl -- --seeds seeds.txt
//! ```

use std::process::ExitCode;

use sysblocks_crawler::app::{parse, run};

/// Ctrl-C, or SIGTERM.
async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

#[tokio::main]
async fn main() -> ExitCode {
    let options = match parse(std::env::args().skip(1)) {
        Ok(options) => options,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    // CRAWL_LOG=debug|info; warnings only by default, under the progress bar.
    let level = match std::env::var("CRAWL_LOG").as_deref() {
        Ok("debug") => tracing::Level::DEBUG,
        Ok("info") => tracing::Level::INFO,
        _ => tracing::Level::WARN,
    };
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_max_level(level)
        .with_ansi(ansi)
        .with_writer(std::io::stderr)
        .init();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        stop_signal().await;
        eprintln!("crawl: stopping: fetches in flight finish, leases are given back");
        let _ = stop.send(true);
    });
    match run(options, stopped).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("crawl: {e}");
            ExitCode::FAILURE
        }
    }
}
