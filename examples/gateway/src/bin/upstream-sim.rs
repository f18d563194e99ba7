//! `upstream-sim [--name NAME] [--listen ADDRESS]`: a test upstream (see
//! `sysblocks_gateway::upstream_sim`). Prints `listening on ADDRESS`.

use std::process::ExitCode;

use sysblocks_gateway::upstream_sim::UpstreamSim;

#[tokio::main]
async fn main() -> ExitCode {
    let mut name = "upstream".to_owned();
    let mut listen = "127.0.0.1:0".to_owned();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match (arg.as_str(), args.next()) {
            ("--name", Some(v)) => name = v,
            ("--listen", Some(v)) => listen = v,
            _ => {
                eprintln!("usage: upstream-sim [--name NAME] [--listen ADDRESS]");
                return ExitCode::from(2);
            }
        }
    }
    let Ok(address) = listen.parse() else {
        eprintln!("upstream-sim: {listen:?} is not an address:port");
        return ExitCode::from(2);
    };
    let sim = match UpstreamSim::start(&name, address).await {
        Ok(sim) => sim,
        Err(e) => {
            eprintln!("upstream-sim: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("listening on {}", sim.address());
    let _ = tokio::signal::ctrl_c().await;
    ExitCode::SUCCESS
}
