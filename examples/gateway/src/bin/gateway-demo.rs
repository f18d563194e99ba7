//! `gateway-demo [--redis URL]`: three upstreams, two gateway processes
//! sharing a Redis, a load through both, what happened; everything stops
//! at the end (also on Ctrl-C). See `sysblocks_gateway::demo`.

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let redis = match args.as_slice() {
        [] => None,
        [flag, url] if flag == "--redis" => Some(url.clone()),
        _ => {
            eprintln!("usage: gateway-demo [--redis URL]");
            return ExitCode::from(2);
        }
    };
    tokio::select! {
        result = sysblocks_gateway::demo::run(redis) => match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("gateway-demo: {e}");
                ExitCode::FAILURE
            }
        },
        _ = tokio::signal::ctrl_c() => {
            eprintln!("gateway-demo: stopped (Ctrl-C); everything it started is stopped");
            ExitCode::from(130)
        }
    }
}
