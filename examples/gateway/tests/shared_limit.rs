//! Two gateway processes share one limit through Redis, then through the
//! Redis Cluster: 200 concurrent clients spread over both send 1,500
//! requests to a route limited to 1,000 a minute (a fixed window, as
//! Envoy's), and exactly 1,000 are admitted; every other request gets 429 with headers that agree with the
//! limit. Also: a shadow route refuses nothing, and a route without a
//! limit is not limited.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use axum::body::Body;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use sysblocks_gateway::demo::{Killed, TempDir};
use sysblocks_gateway::upstream_sim::UpstreamSim;
use sysblocks_testkit::{Cluster, Redis};

/// A gateway process, killed on drop (then its directory removed).
struct GatewayProcess {
    _child: Killed,
    address: SocketAddr,
    _dir: TempDir,
}

fn start_gateway(config: &str) -> GatewayProcess {
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    let dir =
        std::env::temp_dir().join(format!("sysblocks-gateway-{}-{nanos:x}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("gateway.toml");
    std::fs::write(&path, config).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_gateway"))
        .arg("--config")
        .arg(&path)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the gateway binary starts");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let address = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("gateway said {line:?}"));
    GatewayProcess { address: address.parse().unwrap(), _child: Killed(child), _dir: TempDir(dir) }
}

fn config(redis: &str, upstreams: &[SocketAddr], run: &str) -> String {
    let servers: Vec<String> = upstreams.iter().map(|a| format!("\"{a}\"")).collect();
    format!(
        r#"
listen = "127.0.0.1:0"
{redis}

[[upstream]]
name = "api"
servers = [{servers}]

[[route]]
name = "{run}-limited"
prefix = "/limited"
upstream = "api"
limit = {{ key = "header:x-api-key", algorithm = "fixed_window", rate = "1000/min" }}

[[route]]
name = "{run}-shadow"
prefix = "/shadow"
upstream = "api"
limit = {{ key = "header:x-api-key", algorithm = "token_bucket", rate = "10/min", shadow = true }}

[[route]]
prefix = "/"
upstream = "api"
"#,
        servers = servers.join(", ")
    )
}

async fn scrape(gateway: SocketAddr) -> String {
    let client: Client<HttpConnector, Body> = Client::builder(TokioExecutor::new()).build_http();
    let request = Request::get(format!("http://{gateway}/metrics")).body(Body::empty()).unwrap();
    let response = client.request(request).await.unwrap();
    String::from_utf8_lossy(&response.into_body().collect().await.unwrap().to_bytes()).into_owned()
}

fn run_name() -> String {
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    format!("t{}x{nanos:x}", std::process::id())
}

/// Sends `total` requests to `path` from `clients` concurrent clients,
/// alternating between the gateways; returns the answers' statuses with
/// their RateLimit headers.
async fn load(
    gateways: &[SocketAddr],
    path: &str,
    clients: usize,
    total: usize,
) -> Vec<(StatusCode, http::HeaderMap)> {
    let client: Client<HttpConnector, Body> = Client::builder(TokioExecutor::new()).build_http();
    sysblocks_gateway::demo::load(&client, gateways, path, clients, total).await
}

/// Waits, if the next minute starts within 10 s, until it has started: the
/// fixed window is the epoch's minute (on Redis's clock, this machine's), and
/// the load must fall in one.
async fn clear_of_a_minute_boundary() {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
    let into = now.as_millis() % 60_000;
    if into > 50_000 {
        tokio::time::sleep(Duration::from_millis((60_000 - into) as u64 + 100)).await;
    }
}

async fn exactly_the_limit_across_two_gateways(redis_line: String) {
    let up1 = UpstreamSim::start("up1", "127.0.0.1:0".parse().unwrap()).await.unwrap();
    let up2 = UpstreamSim::start("up2", "127.0.0.1:0".parse().unwrap()).await.unwrap();
    let text = config(&redis_line, &[up1.address(), up2.address()], &run_name());
    let (a, b) = (start_gateway(&text), start_gateway(&text));
    let gateways = [a.address, b.address];

    clear_of_a_minute_boundary().await;
    let answers = load(&gateways, "/limited/items", 200, 1500).await;
    let admitted = answers.iter().filter(|(s, _)| *s == StatusCode::OK).count();
    assert_eq!(admitted, 1000, "exactly the limit in the minute, over both gateways");
    for (status, headers) in &answers {
        let header =
            |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
        assert!(
            header("ratelimit-policy").ends_with(";q=1000;w=60"),
            "{}",
            header("ratelimit-policy")
        );
        if *status == StatusCode::OK {
            continue;
        }
        assert_eq!(*status, StatusCode::TOO_MANY_REQUESTS);
        assert!(header("ratelimit").contains(";r=0;"), "{}", header("ratelimit"));
        let retry: u64 = header("retry-after").parse().expect("Retry-After in seconds");
        assert!((1..=60).contains(&retry), "Retry-After {retry}");
    }
    assert_eq!(up1.served() + up2.served(), 1000, "refused requests never reach an upstream");

    // The counters: each instance's decisions add up to the limit, and
    // the all-instances family (sharded counters in Redis) gets there too.
    let metric = |text: &str, line_start: &str| -> i64 {
        text.lines()
            .find(|l| l.starts_with(line_start))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {line_start} in\n{text}"))
    };
    let route = text
        .lines()
        .find(|l| l.contains("-limited\""))
        .unwrap()
        .split('"')
        .nth(1)
        .unwrap()
        .to_owned();
    let admitted =
        format!("gateway_limit_decisions_total{{route=\"{route}\",decision=\"admitted\"}}");
    let mut sum = 0;
    for gateway in gateways {
        let text = scrape(gateway).await;
        sum += metric(&text, &admitted);
    }
    assert_eq!(sum, 1000);
    let all = format!("gateway_requests_all_instances_total{{route=\"{route}\",class=\"2xx\"}}");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let total = metric(&scrape(gateways[0]).await, &all);
        if total == 1000 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "all instances: {total}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let shadow = load(&gateways, "/shadow", 20, 40).await;
    assert!(shadow.iter().all(|(s, _)| *s == StatusCode::OK), "shadow mode refuses nothing");
    let marked = shadow.iter().filter(|(_, h)| h.get("ratelimit-shadow").is_some()).count();
    assert_eq!(marked, 30, "30 of 40 would have been refused at 10 a minute");

    let free = load(&gateways, "/anything", 20, 200).await;
    assert!(free.iter().all(|(s, _)| *s == StatusCode::OK));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gateways_on_redis_admit_exactly_the_limit() {
    let redis = Redis::new();
    exactly_the_limit_across_two_gateways(format!("redis = \"{}\"", redis.url())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gateways_on_the_cluster_admit_exactly_the_limit() {
    let cluster = Cluster::new();
    let nodes: Vec<String> = cluster.nodes().iter().map(|n| format!("\"{n}\"")).collect();
    exactly_the_limit_across_two_gateways(format!("redis_cluster = [{}]", nodes.join(", "))).await;
}

#[test]
fn a_bad_config_is_refused_at_start_with_the_file_and_line() {
    let dir = std::env::temp_dir().join(format!("sysblocks-gateway-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bad.toml");
    std::fs::write(
        &path,
        "listen = \"127.0.0.1:0\"\n\n[[route]]\nprefix = \"/\"\nupstream = \"missing\"\n",
    )
    .unwrap();
    let out =
        Command::new(env!("CARGO_BIN_EXE_gateway")).arg("--config").arg(&path).output().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("bad.toml:3: route \"/\": no upstream is named \"missing\""),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_outage_follows_each_routes_policy_and_limits_are_exact_again_after() {
    let mut redis = Redis::private();
    let up = UpstreamSim::start("up", "127.0.0.1:0".parse().unwrap()).await.unwrap();
    let run = run_name();
    let text = format!(
        r#"
listen = "127.0.0.1:0"
redis = "{url}"

[[upstream]]
name = "api"
servers = ["{up}"]

[[route]]
name = "{run}-open"
prefix = "/open"
upstream = "api"
limit = {{ key = "header:x-api-key", algorithm = "fixed_window", rate = "100/min", on_failure = "open" }}

[[route]]
name = "{run}-closed"
prefix = "/closed"
upstream = "api"
limit = {{ key = "header:x-api-key", algorithm = "fixed_window", rate = "100/min", on_failure = "closed" }}
"#,
        url = redis.url(),
        up = up.address()
    );
    let gateway = start_gateway(&text);
    let gateways = [gateway.address];
    clear_of_a_minute_boundary().await;
    let ok = |answers: &[(StatusCode, http::HeaderMap)]| {
        answers.iter().filter(|(s, _)| *s == StatusCode::OK).count()
    };
    assert_eq!(ok(&load(&gateways, "/open", 10, 60).await), 60);

    redis.server().unwrap().stop();
    let started = std::time::Instant::now();
    let open = load(&gateways, "/open", 10, 50).await;
    let closed = load(&gateways, "/closed", 10, 50).await;
    assert_eq!(ok(&open), 50, "fail open: admitted while Redis is down");
    assert!(closed.iter().all(|(s, _)| *s == StatusCode::SERVICE_UNAVAILABLE), "fail closed: 503");
    assert!(closed.iter().all(|(_, h)| h.get("retry-after").is_some()));
    // Each decision is bounded (250 ms): 100 requests by 10 clients take
    // well under 10x what the bound allows them.
    assert!(
        started.elapsed() < Duration::from_secs(25),
        "no hung request: {:?}",
        started.elapsed()
    );

    redis.server().unwrap().restart();
    clear_of_a_minute_boundary().await;
    // Back: exact again (a fresh window after the restart of an empty Redis).
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let probe = load(&gateways, "/closed", 1, 1).await;
        if probe[0].0 == StatusCode::OK {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the gateway did not reconnect to Redis");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let after = load(&gateways, "/closed", 20, 150).await;
    assert_eq!(ok(&after), 99, "100 a minute, one spent by the probe");
}
