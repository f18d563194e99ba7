//! `gateway-demo`: starts three upstreams, two gateway processes sharing a
//! Redis (the one given, or a throwaway `redis-server` when one is on PATH;
//! without either, each gateway limits on its own), sends a load through
//! both, prints what happened, and stops everything.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::body::Body;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::upstream_sim::UpstreamSim;

/// A child process, killed (and reaped) on drop, so that nothing it
/// started outlives a demo or a test that fails half way.
#[derive(Debug)]
pub struct Killed(pub Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A temporary directory, removed on drop.
#[derive(Debug)]
pub struct TempDir(pub PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The binary `name` beside this one (cargo puts a package's binaries in
/// one folder).
pub fn sibling_binary(name: &str) -> PathBuf {
    let me = std::env::current_exe().unwrap_or_default();
    me.with_file_name(name)
}

fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Starts a throwaway `redis-server` in `dir`, if there is one on PATH.
fn throwaway_redis(dir: &Path) -> Option<(Killed, String)> {
    let port = free_port().ok()?;
    let child = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .arg("--dir")
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let child = Killed(child);
    let deadline = Instant::now() + Duration::from_secs(5);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Some((child, format!("redis://127.0.0.1:{port}/")))
}

fn start_gateway(binary: &Path, config: &Path) -> Result<(Killed, SocketAddr), String> {
    let mut child = Command::new(binary)
        .arg("--config")
        .arg(config)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", binary.display()))?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let child = Killed(child);
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).map_err(|e| e.to_string())?;
    let address =
        line.trim().strip_prefix("listening on ").ok_or(format!("the gateway said {line:?}"))?;
    Ok((child, address.parse().map_err(|e| format!("{address}: {e}"))?))
}

/// Sends `total` GETs of `path` (`{i}` in it replaced by the request's
/// number) from `clients` concurrent clients, in turn to each gateway,
/// with one API key; returns each answer's status and headers (a request
/// that got no answer counts as 502).
pub async fn load(
    client: &Client<HttpConnector, Body>,
    gateways: &[SocketAddr],
    path: &str,
    clients: usize,
    total: usize,
) -> Vec<(StatusCode, http::HeaderMap)> {
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (client, next, gateways, path) =
            (client.clone(), Arc::clone(&next), gateways.to_vec(), path.to_owned());
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    return out;
                }
                let gateway = gateways[i % gateways.len()];
                let url = format!("http://{gateway}{}", path.replace("{i}", &i.to_string()));
                let request = Request::get(url).header("x-api-key", "demo").body(Body::empty());
                let Ok(request) = request else { continue };
                match client.request(request).await {
                    Ok(response) => {
                        let (parts, body) = response.into_parts();
                        let _ = body.collect().await;
                        out.push((parts.status, parts.headers));
                    }
                    Err(_) => out.push((StatusCode::BAD_GATEWAY, http::HeaderMap::new())),
                }
            }
        }));
    }
    let mut answers = Vec::new();
    for task in tasks {
        answers.extend(task.await.unwrap_or_default());
    }
    answers
}

/// Runs the demo; `redis` is a Redis URL to share the limits through.
///
/// # Errors
/// What could not be started.
pub async fn run(redis: Option<String>) -> Result<(), String> {
    let dir = std::env::temp_dir().join(format!("sysblocks-gateway-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let dir = TempDir(dir);
    let mut upstreams = Vec::new();
    for name in ["up1", "up2", "up3"] {
        let up = UpstreamSim::start(name, "127.0.0.1:0".parse().map_err(|_| "address")?)
            .await
            .map_err(|e| e.to_string())?;
        upstreams.push(up);
    }
    let mut _redis_server = None;
    let redis = match redis {
        Some(url) => Some(url),
        None => match throwaway_redis(&dir.0) {
            Some((child, url)) => {
                _redis_server = Some(child);
                Some(url)
            }
            None => None,
        },
    };
    match &redis {
        Some(url) => println!("limits shared through Redis at {url}"),
        None => println!(
            "no Redis (none given, no redis-server on PATH): each gateway limits on its own"
        ),
    }
    let servers: Vec<String> = upstreams.iter().map(|u| format!("\"{}\"", u.address())).collect();
    let redis_line = redis.map(|url| format!("redis = \"{url}\"")).unwrap_or_default();
    let run = format!("demo{}", std::process::id());
    let config = format!(
        r#"listen = "127.0.0.1:0"
{redis_line}

[[upstream]]
name = "api"
servers = [{servers}]
hash_key = "path"

[[route]]
name = "{run}-pricing"
prefix = "/pricing"
upstream = "api"
limit = {{ key = "header:x-api-key", algorithm = "fixed_window", rate = "1000/min" }}

[[route]]
name = "{run}-catalog"
prefix = "/catalog"
upstream = "api"
cache = {{ max_bytes = 10000000 }}

[[route]]
name = "{run}-users"
prefix = "/users"
upstream = "api"
"#,
        servers = servers.join(", ")
    );
    let path = dir.0.join("gateway.toml");
    std::fs::write(&path, &config).map_err(|e| e.to_string())?;
    println!("config:\n{config}");
    let binary = sibling_binary("gateway");
    if !binary.is_file() {
        // `cargo run --bin gateway-demo` builds gateway-demo alone.
        return Err(format!(
            "no gateway at {}: build the package's binaries first, \
             `cargo build --release -p sysblocks-gateway --bins`",
            binary.display()
        ));
    }
    let (_a, a) = start_gateway(&binary, &path)?;
    let (_b, b) = start_gateway(&binary, &path)?;
    println!("two gateways: http://{a} and http://{b}; upstreams {}", servers.join(", "));
    let gateways = [a, b];
    let client: Client<HttpConnector, Body> = Client::builder(TokioExecutor::new()).build_http();

    // The fixed window is the epoch's minute: a load that straddled two
    // would see two windows' budgets.
    let into = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() % 60_000);
    if into > 55_000 {
        let wait = Duration::from_millis((60_100 - into) as u64);
        println!(
            "(waiting {:.1} s for the next minute, so that the load falls in one window)",
            wait.as_secs_f64()
        );
        tokio::time::sleep(wait).await;
    }
    let started = Instant::now();
    let answers = load(&client, &gateways, "/pricing/q", 200, 1500).await;
    let admitted = answers.iter().filter(|(s, _)| *s == StatusCode::OK).count();
    let limited = answers.iter().filter(|(s, _)| *s == StatusCode::TOO_MANY_REQUESTS).count();
    println!(
        "\n/pricing (1,000 a minute, shared): 1,500 requests from 200 clients over both gateways in {:.2} s: \
         {admitted} admitted, {limited} answered 429",
        started.elapsed().as_secs_f64()
    );

    let before: u64 = upstreams.iter().map(UpstreamSim::served).sum();
    let answers =
        load(&client, &[a], "/catalog/item?latency_ms=200&cache=max-age%3D60", 1000, 1000).await;
    let after: u64 = upstreams.iter().map(UpstreamSim::served).sum();
    let ok = answers.iter().filter(|(s, _)| *s == StatusCode::OK).count();
    println!(
        "/catalog (cached): 1,000 concurrent requests for one cold key: {ok} answered, {} upstream request(s)",
        after - before
    );

    let answers = load(&client, &gateways, "/users/{i}", 50, 3000).await;
    let mut per: std::collections::BTreeMap<String, usize> = std::collections::BTreeMap::new();
    for (_, headers) in &answers {
        let upstream = headers.get("x-upstream").and_then(|v| v.to_str().ok()).unwrap_or("none");
        *per.entry(upstream.to_owned()).or_default() += 1;
    }
    println!(
        "/users/<id> (consistent hash of the path, bounded loads): 3,000 requests over {per:?}"
    );

    // The all-instances totals reach Redis in batches (every 100 ms): read
    // until they have counted every request sent to /users, for at most 3 s.
    let users_line = |text: &str| {
        text.lines()
            .find(|l| {
                l.starts_with("gateway_requests_all_instances_total{route=\"")
                    && l.contains("-users\",class=\"2xx\"}")
            })
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|n| n.parse::<u64>().ok())
    };
    let deadline = Instant::now() + Duration::from_secs(3);
    let text = loop {
        let request = Request::get(format!("http://{a}/metrics"))
            .body(Body::empty())
            .map_err(|e| e.to_string())?;
        let response = client.request(request).await.map_err(|e| e.to_string())?;
        let bytes = response.into_body().collect().await.map_err(|e| e.to_string())?.to_bytes();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let shared = text.contains("gateway_requests_all_instances_total{");
        if !shared || users_line(&text) >= Some(3000) || Instant::now() >= deadline {
            break text;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    println!(
        "\nfrom http://{a}/metrics (this instance; all instances from Redis, added every 100 ms):"
    );
    let wanted = |l: &&str| {
        (l.starts_with("gateway_limit_decisions_total")
            || l.starts_with("gateway_cache_total")
            || l.starts_with("gateway_requests_all_instances_total"))
            && !l.ends_with(" 0")
    };
    for line in text.lines().filter(wanted) {
        println!("  {line}");
    }
    println!("\nstopping the gateways, the upstreams and the Redis it started");
    Ok(())
}
