//! `kv-node`: one node of the store.
//!
//! ```text
//! kv-node --id n1 --cluster cluster.toml --data ./n1 [--join] [--cache-mb 64]
//! ```
//!
//! `--join` starts a node that is being added to a running cluster: the
//! cluster file it is given is the one to move to (reload the other nodes
//! with it, `POST /reload` on their admin ports). Logs go to stderr; set
//! `KV_LOG=debug` for more. SIGTERM or Ctrl-C stops the node gracefully.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use sysblocks_kv::node::{Node, NodeOptions};

const USAGE: &str =
    "usage: kv-node --id ID --cluster FILE --data DIR [--join] [--cache-mb MEGABYTES]";

fn parse(args: impl Iterator<Item = String>) -> Result<NodeOptions, String> {
    let (mut id, mut cluster, mut data, mut join, mut cache_mb) =
        (None, None, None, false, 64usize);
    let mut args = args.peekable();
    while let Some(arg) = args.next() {
        let mut value =
            |name: &str| args.next().ok_or_else(|| format!("{name} needs a value\n{USAGE}"));
        match arg.as_str() {
            "--id" => id = Some(value("--id")?),
            "--cluster" => cluster = Some(PathBuf::from(value("--cluster")?)),
            "--data" => data = Some(PathBuf::from(value("--data")?)),
            "--join" => join = true,
            "--cache-mb" => {
                cache_mb = value("--cache-mb")?
                    .parse()
                    .map_err(|_| format!("--cache-mb takes a number of megabytes\n{USAGE}"))?;
            }
            "--help" | "-h" => return Err(USAGE.to_string()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    Ok(NodeOptions {
        id: id.ok_or_else(|| format!("--id is required\n{USAGE}"))?,
        cluster_file: cluster.ok_or_else(|| format!("--cluster is required\n{USAGE}"))?,
        data_dir: data.ok_or_else(|| format!("--data is required\n{USAGE}"))?,
        join,
        cache_bytes: cache_mb.saturating_mul(1 << 20),
    })
}

async fn terminated() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut term) = signal(SignalKind::terminate()) else {
            return std::future::pending().await;
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

#[tokio::main]
async fn main() -> ExitCode {
    let level = match std::env::var("KV_LOG").as_deref() {
        Ok("debug") => tracing::Level::DEBUG,
        Ok("warn") => tracing::Level::WARN,
        _ => tracing::Level::INFO,
    };
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_max_level(level)
        .with_ansi(ansi)
        .with_writer(std::io::stderr)
        .init();
    let options = match parse(std::env::args().skip(1)) {
        Ok(options) => options,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    let node = match Node::start(options).await {
        Ok(node) => node,
        Err(message) => {
            eprintln!("kv-node: {message}");
            return ExitCode::FAILURE;
        }
    };
    terminated().await;
    tracing::info!("shutting down");
    node.shutdown(Duration::from_secs(5)).await;
    ExitCode::SUCCESS
}
