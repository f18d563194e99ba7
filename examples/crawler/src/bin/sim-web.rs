//! `sim-web`: serves the synthetic web on loopback until Ctrl-C, writes
//! its hosts file, then prints what it saw (one line a request).
//!
//! ```text
//! cargo run --release -p sysblocks-crawler --bin sim-web -- [--hosts N] [--pages N] [--hosts-file PATH]
//! ```

use std::process::ExitCode;

use sysblocks_crawler::sim_web::{SimConfig, SimWeb};

const USAGE: &str = "usage: sim-web [--hosts N] [--pages N] [--per-ip N] [--latency-ms N] [--seed N] \
                     [--no-specials] [--hosts-file PATH]";

#[tokio::main]
async fn main() -> ExitCode {
    let mut config = SimConfig::default();
    let mut hosts_file = std::path::PathBuf::from("sim-web.hosts");
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut number = || args.next().and_then(|v| v.parse::<u64>().ok());
        let ok = match arg.as_str() {
            "--hosts" => number().map(|n| config.hosts = n as usize),
            "--pages" => number().map(|n| config.pages = n as usize),
            "--per-ip" => number().map(|n| config.hosts_per_ip = n as usize),
            "--latency-ms" => {
                number().map(|n| config.latency = std::time::Duration::from_millis(n))
            }
            "--seed" => number().map(|n| config.seed = n),
            "--no-specials" => {
                config.specials = false;
                Some(())
            }
            "--hosts-file" => args.next().map(|p| hosts_file = p.into()),
            _ => None,
        };
        if ok.is_none() {
            eprintln!("sim-web: bad argument {arg:?}\n{USAGE}");
            return ExitCode::from(2);
        }
    }
    let web = match SimWeb::start(config).await {
        Ok(web) => web,
        Err(e) => {
            eprintln!("sim-web: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(e) = web.write_hosts_file(&hosts_file) {
        eprintln!("sim-web: cannot write {}: {e}", hosts_file.display());
        return ExitCode::FAILURE;
    }
    println!(
        "sim-web: {} host names, seed {}; hosts file {}",
        web.addresses().len(),
        web.seed(),
        hosts_file.display()
    );
    println!(
        "crawl it with: crawl --seeds <(echo {}) --hosts {}",
        web.seed(),
        hosts_file.display()
    );
    let _ = tokio::signal::ctrl_c().await;
    for entry in web.log() {
        println!(
            "{:>10.3} s {} {}{}",
            entry.at.as_secs_f64(),
            entry.status,
            entry.host,
            entry.path
        );
    }
    ExitCode::SUCCESS
}
