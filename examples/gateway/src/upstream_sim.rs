//! `upstream-sim`: a test upstream. Every answer says which server gave it
//! and what it was asked; a request may ask for a delay, a status, a body
//! size and cache headers, and the server counts what it served.
//!
//! | query parameter | effect |
//! |---|---|
//! | `latency_ms=N` | answer after N ms |
//! | `status=N` | answer with status N |
//! | `bytes=N` | a body of N bytes |
//! | `cache=TEXT` | `Cache-Control: TEXT` |
//! | `headers=1` | the body lists the request's header names |

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{Request, StatusCode, header};
use axum::response::Response;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// A running upstream; stops when dropped.
#[derive(Debug)]
pub struct UpstreamSim {
    address: SocketAddr,
    served: Arc<AtomicU64>,
    stop: watch::Sender<bool>,
}

struct Sim {
    name: String,
    served: Arc<AtomicU64>,
}

impl UpstreamSim {
    /// Starts an upstream named `name` on `address` (port 0: any free one).
    ///
    /// # Errors
    /// The address cannot be bound.
    pub async fn start(name: &str, address: SocketAddr) -> std::io::Result<UpstreamSim> {
        let listener = TcpListener::bind(address).await?;
        let address = listener.local_addr()?;
        let served = Arc::new(AtomicU64::new(0));
        let sim = Arc::new(Sim { name: name.to_owned(), served: Arc::clone(&served) });
        let app = axum::Router::new().fallback(answer).with_state(sim);
        let (stop, mut stopped) = watch::channel(false);
        tokio::spawn(async move {
            let shutdown = async move {
                let _ = stopped.changed().await;
            };
            let _ = axum::serve(listener, app).with_graceful_shutdown(shutdown).await;
        });
        Ok(UpstreamSim { address, served, stop })
    }

    /// Where it listens.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Requests answered so far.
    pub fn served(&self) -> u64 {
        self.served.load(Ordering::Relaxed)
    }
}

impl Drop for UpstreamSim {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

async fn answer(State(sim): State<Arc<Sim>>, request: Request<Body>) -> Response {
    sim.served.fetch_add(1, Ordering::Relaxed);
    let uri = request.uri();
    let query = uri.query().unwrap_or("");
    let param = |name: &str| {
        query.split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=')?;
            (k == name).then(|| v.to_owned())
        })
    };
    if let Some(ms) = param("latency_ms").and_then(|v| v.parse::<u64>().ok()) {
        tokio::time::sleep(Duration::from_millis(ms.min(60_000))).await;
    }
    let status = param("status")
        .and_then(|v| v.parse::<u16>().ok())
        .and_then(|s| StatusCode::from_u16(s).ok())
        .unwrap_or(StatusCode::OK);
    let mut body = format!("{} {} {}\n", sim.name, request.method(), uri);
    if let Some(n) = param("bytes").and_then(|v| v.parse::<usize>().ok()) {
        body = "x".repeat(n.min(64 << 20));
    }
    if param("headers").is_some() {
        for name in request.headers().keys() {
            body.push_str(name.as_str());
            body.push('\n');
        }
    }
    let mut response = Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/plain")
        .header("x-upstream", &sim.name);
    if let Some(cache) = param("cache") {
        response =
            response.header(header::CACHE_CONTROL, cache.replace("%3D", "=").replace("%20", " "));
    }
    response.body(Body::from(body)).unwrap_or_default()
}
