//! SIGHUP swaps the configuration in without dropping connections (a
//! request in flight across the reload finishes), and a bad file is
//! reported with its line while the old configuration keeps serving.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use axum::body::Body;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use sysblocks_gateway::demo::{Killed, TempDir};
use sysblocks_gateway::upstream_sim::UpstreamSim;

fn config(up: std::net::SocketAddr, prefix: &str) -> String {
    format!(
        "listen = \"127.0.0.1:0\"\n[[upstream]]\nname = \"api\"\nservers = [\"{up}\"]\n[[route]]\nprefix = \"{prefix}\"\nupstream = \"api\"\n"
    )
}

async fn status(client: &Client<HttpConnector, Body>, url: String) -> StatusCode {
    let response = client.request(Request::get(url).body(Body::empty()).unwrap()).await.unwrap();
    let status = response.status();
    let _ = response.into_body().collect().await;
    status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_swaps_the_routes_and_a_bad_file_keeps_the_old_ones() {
    let up = UpstreamSim::start("up", "127.0.0.1:0".parse().unwrap()).await.unwrap();
    let dir = TempDir(
        std::env::temp_dir().join(format!("sysblocks-gateway-reload-{}", std::process::id())),
    );
    std::fs::create_dir_all(&dir.0).unwrap();
    let path = dir.0.join("gateway.toml");
    std::fs::write(&path, config(up.address(), "/a")).unwrap();
    let log = dir.0.join("stderr");
    // Killed when the test ends, passed or not.
    let mut child = Killed(
        Command::new(env!("CARGO_BIN_EXE_gateway"))
            .arg("--config")
            .arg(&path)
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    let mut line = String::new();
    BufReader::new(child.0.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let gw = line.trim().strip_prefix("listening on ").unwrap().to_owned();
    let pid = child.0.id().to_string();
    let client: Client<HttpConnector, Body> = Client::builder(TokioExecutor::new()).build_http();
    assert_eq!(status(&client, format!("http://{gw}/a")).await, StatusCode::OK);
    assert_eq!(status(&client, format!("http://{gw}/b")).await, StatusCode::NOT_FOUND);

    // A slow request is in flight on its connection while the routes change:
    // the reload starts only once the upstream has it (the gateway routed
    // it under the old routes), however late the spawned task runs.
    let before = up.served();
    let slow = {
        let (client, url) = (client.clone(), format!("http://{gw}/a/slow?latency_ms=800"));
        tokio::spawn(async move { status(&client, url).await })
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while up.served() == before {
        assert!(Instant::now() < deadline, "the slow request never reached the upstream");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    std::fs::write(&path, config(up.address(), "/b")).unwrap();
    assert!(Command::new("kill").args(["-HUP", &pid]).status().unwrap().success());
    let deadline = Instant::now() + Duration::from_secs(10);
    while status(&client, format!("http://{gw}/b")).await != StatusCode::OK {
        assert!(Instant::now() < deadline, "the reload did not take");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(status(&client, format!("http://{gw}/a")).await, StatusCode::NOT_FOUND);
    assert_eq!(slow.await.unwrap(), StatusCode::OK, "the request in flight finished");

    std::fs::write(
        &path,
        "listen = \"127.0.0.1:0\"\n[[route]]\nprefix = \"/c\"\nupstream = \"gone\"\n",
    )
    .unwrap();
    assert!(Command::new("kill").args(["-HUP", &pid]).status().unwrap().success());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("reload refused") {
            assert!(
                text.contains("gateway.toml:2: route \"/c\": no upstream is named \"gone\""),
                "{text}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "no word of the bad reload:\n{text}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        status(&client, format!("http://{gw}/b")).await,
        StatusCode::OK,
        "the old routes stay"
    );
    // The gateway is killed, then its directory removed (reverse order of
    // declaration).
}
