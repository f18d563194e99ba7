//! `gateway --config FILE [--threads N]`: serves the routes of FILE until
//! Ctrl-C or SIGTERM, on N threads (default: one per core), each with its
//! own runtime, listening socket and upstream connections (see
//! `Gateway::serve_threads`). Prints `listening on ADDRESS` once it accepts
//! requests. On
//! SIGHUP it reads FILE again and swaps the routes in (connections stay
//! open); a bad file is reported with its line and the old routes stay.

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::process::ExitCode;
use std::time::Duration;

use sysblocks_gateway::config::{Config, RedisTarget};
use sysblocks_gateway::proxy::Gateway;

const USAGE: &str = "usage: gateway --config FILE [--threads N]";

async fn connect(target: &RedisTarget) -> Result<sysblocks_core::RedisConnection, String> {
    let fail = |e: redis::RedisError| format!("cannot connect to Redis: {e}");
    match target {
        RedisTarget::Standalone(url) => {
            let client = redis::Client::open(url.as_str()).map_err(fail)?;
            let config = redis::aio::ConnectionManagerConfig::new()
                .set_connection_timeout(Some(Duration::from_secs(1)))
                .set_response_timeout(Some(Duration::from_secs(1)));
            Ok(client.get_connection_manager_with_config(config).await.map_err(fail)?.into())
        }
        RedisTarget::Cluster(nodes) => {
            let client = redis::cluster::ClusterClient::builder(nodes.clone())
                .connection_timeout(Duration::from_secs(1))
                .response_timeout(Duration::from_secs(1))
                .build()
                .map_err(fail)?;
            Ok(client.get_async_connection().await.map_err(fail)?.into())
        }
    }
}

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

// The main thread's runtime only waits for signals and drives the Redis
// connection; requests are served by the threads of `serve_threads`.
#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_ansi(ansi)
        .with_writer(std::io::stderr)
        .init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut path = None;
    let mut threads = std::thread::available_parallelism().map_or(2, usize::from);
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        match (arg.as_str(), rest.next()) {
            ("--config", Some(file)) => path = Some(std::path::PathBuf::from(file)),
            ("--threads", Some(n)) if n.parse::<usize>().is_ok_and(|n| (1..=1024).contains(&n)) => {
                threads = n.parse().unwrap_or(threads);
            }
            _ => {
                eprintln!("{USAGE}");
                return ExitCode::from(2);
            }
        }
    }
    let Some(path) = path else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let config = match Config::load(&path) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("gateway: {e}");
            return ExitCode::from(2);
        }
    };
    let redis = match &config.redis {
        Some(target) => match connect(target).await {
            Ok(connection) => Some(connection),
            Err(e) => {
                eprintln!("gateway: {e}");
                return ExitCode::FAILURE;
            }
        },
        None => None,
    };
    let gateway = match Gateway::new(config, redis) {
        Ok(gateway) => gateway,
        Err(e) => {
            eprintln!("gateway: {e}");
            return ExitCode::from(2);
        }
    };
    let gateway = std::sync::Arc::new(gateway);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    match std::sync::Arc::clone(&gateway).serve_threads(threads, stopped) {
        Ok((bound, _threads)) => println!("listening on {bound}"),
        Err(e) => {
            eprintln!("gateway: {e}");
            return ExitCode::FAILURE;
        }
    }
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut hangup) = signal(SignalKind::hangup()) {
            let gateway = std::sync::Arc::clone(&gateway);
            tokio::spawn(async move {
                while hangup.recv().await.is_some() {
                    match Config::load(&path)
                        .map_err(|e| e.to_string())
                        .and_then(|config| gateway.reload(config).map_err(|e| e.to_string()))
                    {
                        Ok(()) => eprintln!("gateway: reloaded {}", path.display()),
                        Err(e) => {
                            eprintln!("gateway: reload refused, the old configuration stays: {e}");
                        }
                    }
                }
            });
        }
    }
    stop_signal().await;
    let _ = stop.send(true);
    ExitCode::SUCCESS
}
