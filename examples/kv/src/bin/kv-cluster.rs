//! `kv-cluster`: the demo. Starts a cluster of `kv-node` processes on
//! loopback in a temp dir (5 by default), writes, kills a node while more
//! writes go on, restarts it, shows what repaired it, and stops everything
//! (also on Ctrl-C).
//!
//! ```text
//! cargo build --release -p sysblocks-kv --bins    # kv-node too: the demo starts it
//! cargo run --release -p sysblocks-kv --bin kv-cluster -- [--nodes 5] [--keys 20000]
//!     [--missed 5000] [--value-bytes 100] [--clients 16] [--cache-mb 64] [--no-kill] [--keep]
//! ```

use std::process::ExitCode;

use sysblocks_kv::demo::{DemoOptions, run, sibling_binary};

const USAGE: &str = "usage: kv-cluster [--nodes N] [--keys N] [--missed N] [--value-bytes N] \
                     [--clients N] [--cache-mb N] [--no-kill] [--keep] [--node-binary PATH]";

fn parse(args: impl Iterator<Item = String>) -> Result<DemoOptions, String> {
    let mut options = DemoOptions {
        nodes: 5,
        keys: 20_000,
        missed: 5_000,
        value_bytes: 100,
        clients: 16,
        node_binary: sibling_binary("kv-node"),
        keep: false,
        no_kill: false,
        cache_mb: 64,
    };
    let mut args = args.peekable();
    while let Some(arg) = args.next() {
        let mut number = |name: &str| -> Result<u64, String> {
            args.next()
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| format!("{name} takes a number\n{USAGE}"))
        };
        match arg.as_str() {
            "--nodes" => options.nodes = number("--nodes")? as usize,
            "--keys" => {
                options.keys = u32::try_from(number("--keys")?).map_err(|e| e.to_string())?;
            }
            "--missed" => {
                options.missed = u32::try_from(number("--missed")?).map_err(|e| e.to_string())?;
            }
            "--value-bytes" => options.value_bytes = number("--value-bytes")? as usize,
            "--clients" => options.clients = number("--clients")? as usize,
            "--cache-mb" => options.cache_mb = number("--cache-mb")?,
            "--no-kill" => options.no_kill = true,
            "--keep" => options.keep = true,
            "--node-binary" => {
                options.node_binary = args
                    .next()
                    .ok_or_else(|| format!("--node-binary takes a path\n{USAGE}"))?
                    .into();
            }
            "--help" | "-h" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    Ok(options)
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
    tokio::select! {
        result = run(options) => match result {
            Ok(_) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("kv-cluster: {e}");
                ExitCode::FAILURE
            }
        },
        _ = tokio::signal::ctrl_c() => {
            eprintln!("interrupted: stopping every node");
            ExitCode::from(130)
        }
    }
}
