//! What several gateway tests share: a gateway in the test's process in
//! front of one upstream, with one route for every path.

use std::net::SocketAddr;

use sysblocks_gateway::config::Config;
use sysblocks_gateway::proxy::Gateway;
use tokio::sync::watch;

/// Serves a gateway whose `[server]` table holds `server` (TOML lines, may
/// be empty) and whose one route, for `/` to `upstream`, adds `route`
/// (TOML lines: a cache, a limit). Dropping the returned sender stops it.
pub async fn gateway(
    upstream: SocketAddr,
    server: &str,
    route: &str,
) -> (SocketAddr, watch::Sender<bool>) {
    let text = format!(
        "listen = \"127.0.0.1:0\"\n[server]\n{server}\n[[upstream]]\nname = \"api\"\n\
         servers = [\"{upstream}\"]\n[[route]]\nprefix = \"/\"\nupstream = \"api\"\n{route}\n"
    );
    let config = Config::parse("test.toml", &text).expect("the test's configuration");
    let (stop, stopped) = watch::channel(false);
    let gateway = std::sync::Arc::new(Gateway::new(config, None).expect("a gateway"));
    (gateway.serve(stopped).await.expect("a free port"), stop)
}
