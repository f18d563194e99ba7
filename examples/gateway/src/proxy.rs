//! The gateway's request path:
//!
//! ```text
//!  client ──▶ HTTP/1.1 server (header size and time limits, body limit)
//!         ──▶ route: host, then the longest path prefix        (404: none)
//!         ──▶ RateLimitLayer over the route's limiter          (429 + headers)
//!               RedisLimiter (Redis or Cluster: every instance shares it),
//!               or Keyed limiters in process
//!         ──▶ cache (GET/HEAD): single flight, Cache-Control TTLs
//!         ──▶ upstream: consistent hash of the route key, bounded loads
//!                                                              (502: none answers)
//!               hop-by-hop headers stripped both ways, X-Forwarded-For added
//! ```

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use sysblocks_consistent_hash::{HashRing, hash_key};
use sysblocks_core::RedisConnection;
use sysblocks_ratelimit::{
    AnyKeyedLimiter, FailurePolicy, Keyed, LimitError, RateLimitLayer, RedisLimiter,
};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower_layer::Layer;
use tower_service::Service;

use crate::config::{Config, KeySource, OnFailure, Route, RouteLimit};
use crate::framing::Watched;
use crate::metrics::{Metrics, Outcome as MetricsOutcome, RouteMetrics};
use sysblocks_sharded_counter::{KeyedBatchConfig, KeyedBatchedCounter};

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;
type Handler = Arc<dyn Fn(Request<Body>) -> BoxFuture<Response<Body>> + Send + Sync>;

/// The hop-by-hop headers (RFC 9110, 7.6.1), never forwarded.
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

const X_CACHE: HeaderName = HeaderName::from_static("x-cache");
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");
const RATELIMIT_SHADOW: HeaderName = HeaderName::from_static("ratelimit-shadow");

/// The next connection on `listener` (with `TCP_NODELAY`), or `None` once
/// `stop` turns true; a failed accept is skipped.
async fn next_connection(
    listener: &TcpListener,
    stop: &mut watch::Receiver<bool>,
) -> Option<(tokio::net::TcpStream, SocketAddr)> {
    loop {
        tokio::select! {
            accepted = listener.accept() => if let Ok((stream, peer)) = accepted {
                let _ = stream.set_nodelay(true);
                return Some((stream, peer));
            },
            _ = stop.changed() => return None,
        }
    }
}

/// Accepts connections and hands each to the server thread with the
/// fewest open, until `stop` turns true.
async fn hand_out(
    listener: TcpListener,
    handoffs: Vec<tokio::sync::mpsc::UnboundedSender<(std::net::TcpStream, SocketAddr)>>,
    open: Arc<Vec<AtomicU64>>,
    mut stop: watch::Receiver<bool>,
) {
    while let Some((stream, peer)) = next_connection(&listener, &mut stop).await {
        let Ok(stream) = stream.into_std() else { continue };
        let Some(least) = (0..open.len()).min_by_key(|i| open[*i].load(Ordering::Relaxed)) else {
            continue;
        };
        open[least].fetch_add(1, Ordering::Relaxed);
        if handoffs[least].send((stream, peer)).is_err() {
            open[least].fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// The client's address, put in each request's extensions.
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub SocketAddr);

/// How much body a request may bring and by when: the route's `[server]`
/// limits, counted from when the body is read, unless the request's
/// extensions carry other ones.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimits {
    /// At most this many bytes (beyond: 413).
    pub max_bytes: u64,
    /// All of it by then (beyond: 408).
    pub deadline: tokio::time::Instant,
}

/// Reads a request body whole, within `limits` (none: 1 MiB, 10 s). The
/// gateway reads a body before it picks an upstream, as nginx does by
/// default: a client that sends slowly holds no upstream connection, a
/// body too large is refused before any upstream sees it, and a request
/// with a body can be sent again to another server.
///
/// # Errors
/// The answer to give the client: 413 past the byte limit, 408 past the
/// deadline, 400 for a body that breaks off or is malformed.
pub async fn read_body(
    body: Body,
    limits: Option<BodyLimits>,
) -> Result<bytes::Bytes, Response<Body>> {
    use http_body_util::BodyExt;
    let limits = limits.unwrap_or(BodyLimits {
        max_bytes: 1 << 20,
        deadline: tokio::time::Instant::now() + Duration::from_secs(10),
    });
    let max = usize::try_from(limits.max_bytes).unwrap_or(usize::MAX);
    let limited = http_body_util::Limited::new(body, max);
    match tokio::time::timeout_at(limits.deadline, limited.collect()).await {
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
            Err(plain(StatusCode::PAYLOAD_TOO_LARGE, "the request body is over the limit"))
        }
        Ok(Err(_)) => Err(plain(StatusCode::BAD_REQUEST, "the request body broke off")),
        Err(_) => {
            Err(plain(StatusCode::REQUEST_TIMEOUT, "the request body did not arrive in time"))
        }
    }
}

/// A gateway built from a [`Config`].
pub struct Gateway {
    /// The configuration and routes in force; a reload swaps them whole,
    /// and a request keeps the ones it started with.
    current: std::sync::RwLock<Arc<Routes>>,
    metrics: Metrics,
    redis: Option<RedisConnection>,
}

/// One configuration's routes, ready to serve.
struct Routes {
    config: Config,
    handlers: Vec<Handler>,
    /// Each route's counters, in the order of `config.routes`.
    counters: Vec<RouteMetrics>,
    balancers: HashMap<String, Arc<Balancer>>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("listen", &self.current().config.listen)
            .finish_non_exhaustive()
    }
}

/// Why a gateway cannot start.
#[derive(Debug)]
#[non_exhaustive]
pub enum GatewayError {
    /// A limit that cannot be built.
    Limit(String, LimitError),
    /// The listening address.
    Io(std::io::Error),
    /// The shared counters.
    Counters(String),
}

impl std::fmt::Display for GatewayError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GatewayError::Limit(route, e) => write!(f, "route {route:?}: {e}"),
            GatewayError::Io(e) => write!(f, "cannot listen: {e}"),
            GatewayError::Counters(e) => write!(f, "counters: {e}"),
        }
    }
}

impl std::error::Error for GatewayError {}

impl Gateway {
    /// Builds the routes of `config`; their limits live on `redis` when
    /// given (shared by every gateway instance), in process otherwise.
    ///
    /// # Errors
    /// A limit that cannot be built.
    pub fn new(config: Config, redis: Option<RedisConnection>) -> Result<Gateway, GatewayError> {
        let shared = match &redis {
            Some(connection) => Some(
                KeyedBatchedCounter::start(
                    connection.clone(),
                    "gw:totals:",
                    KeyedBatchConfig::default(),
                )
                .map_err(|e| GatewayError::Counters(e.to_string()))?,
            ),
            None => None,
        };
        let metrics = Metrics::new(shared);
        let routes = build(config, redis.as_ref(), None, &metrics)?;
        Ok(Gateway { current: std::sync::RwLock::new(Arc::new(routes)), metrics, redis })
    }

    fn current(&self) -> Arc<Routes> {
        Arc::clone(&self.current.read().unwrap_or_else(std::sync::PoisonError::into_inner))
    }

    /// Swaps in `config`'s routes; requests in flight finish with the
    /// old ones, and no connection is dropped. The listening address and
    /// the client limits stay those the gateway started with.
    ///
    /// # Errors
    /// A limit that cannot be built: the old configuration stays.
    pub fn reload(&self, config: Config) -> Result<(), GatewayError> {
        let routes = build(config, self.redis.as_ref(), Some(&self.current()), &self.metrics)?;
        *self.current.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(routes);
        Ok(())
    }
}

/// Builds the handlers of `config`'s routes.
fn build(
    config: Config,
    redis: Option<&RedisConnection>,
    previous: Option<&Routes>,
    metrics: &Metrics,
) -> Result<Routes, GatewayError> {
    {
        // One balancer per upstream group, shared by the routes to it (the
        // in-flight counts and the health are the group's), and kept
        // across a reload that leaves the group as it was.
        let mut balancers: HashMap<String, Arc<Balancer>> = HashMap::new();
        for upstream in &config.upstreams {
            let spec = (upstream.servers.clone(), upstream.balance_factor, upstream.eject_after);
            let kept = previous
                .and_then(|p| p.balancers.get(&upstream.name))
                .filter(|b| b.spec == spec)
                .cloned();
            let balancer =
                kept.unwrap_or_else(|| Arc::new(Balancer::with_ejection(&spec.0, spec.1, spec.2)));
            balancers.insert(upstream.name.clone(), balancer);
        }
        let mut routes = Vec::new();
        for route in &config.routes {
            let upstream = config.upstream(&route.upstream);
            let balancer = match balancers.get(&route.upstream) {
                Some(balancer) => Arc::clone(balancer),
                None => Arc::new(Balancer::new(&[], 1.25)),
            };
            let proxy = Proxy {
                balancer,
                body_limits: (config.server.max_body_bytes, config.server.body_timeout()),
                retries: route.retries,
                hash_key: upstream.map_or(KeySource::Path, |u| u.hash_key.clone()),
                cache: route.cache.and_then(|c| cache(c.max_bytes)),
            };
            let handler: Handler = match &route.limit {
                None => Arc::new(move |request| {
                    let mut proxy = proxy.clone();
                    Box::pin(async move { proxy.forward(request).await })
                }),
                Some(limit) => limited(route, limit, proxy, redis.cloned())?,
            };
            routes.push(handler);
        }
        let counters = config.routes.iter().map(|r| metrics.route(&r.name)).collect();
        Ok(Routes { config, handlers: routes, counters, balancers })
    }
}

impl Gateway {
    /// Serves on the configured address, on the runtime it is called
    /// on, until `stop` turns true; returns the address bound.
    ///
    /// # Errors
    /// The address cannot be bound.
    pub async fn serve(
        self: Arc<Self>,
        stop: watch::Receiver<bool>,
    ) -> Result<SocketAddr, GatewayError> {
        let listener =
            TcpListener::bind(self.current().config.listen).await.map_err(GatewayError::Io)?;
        let bound = listener.local_addr().map_err(GatewayError::Io)?;
        tokio::spawn(self.accept(listener, stop));
        Ok(bound)
    }

    /// Serves on `threads` threads, each with a single-threaded runtime of
    /// its own and upstream connections of its own, as nginx's workers
    /// do: a request never leaves the thread that took its connection.
    /// The first thread also accepts, and hands each new connection to the
    /// thread with the fewest open (so that 64 clients make 32 and 32 on
    /// two threads, where `SO_REUSEPORT`'s hashing may make 40 and 24).
    /// Returns the address bound and the threads, which end when `stop`
    /// turns true.
    ///
    /// # Errors
    /// The address cannot be bound, or a thread cannot start.
    pub fn serve_threads(
        self: Arc<Self>,
        threads: usize,
        stop: watch::Receiver<bool>,
    ) -> Result<(SocketAddr, Vec<std::thread::JoinHandle<()>>), GatewayError> {
        let listener =
            std::net::TcpListener::bind(self.current().config.listen).map_err(GatewayError::Io)?;
        listener.set_nonblocking(true).map_err(GatewayError::Io)?;
        let bound = listener.local_addr().map_err(GatewayError::Io)?;
        let threads = threads.max(1);
        let open: Arc<Vec<AtomicU64>> = Arc::new((0..threads).map(|_| AtomicU64::new(0)).collect());
        let mut handoffs = Vec::new();
        let mut inboxes = Vec::new();
        for _ in 0..threads {
            let (handoff, inbox) = tokio::sync::mpsc::unbounded_channel();
            handoffs.push(handoff);
            inboxes.push(inbox);
        }
        let mut listener = Some(listener);
        let mut handoffs = Some(handoffs);
        let mut handles = Vec::new();
        for (i, mut inbox) in inboxes.into_iter().enumerate() {
            let gateway = Arc::clone(&self);
            let mut stop = stop.clone();
            let open = Arc::clone(&open);
            let acceptor = listener.take().zip(handoffs.take());
            let handle = std::thread::Builder::new()
                .name(format!("gateway-{i}"))
                .spawn(move || {
                    let runtime =
                        match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                            Ok(runtime) => runtime,
                            Err(error) => {
                                tracing::error!(%error, "a server thread cannot start");
                                return;
                            }
                        };
                    runtime.block_on(async move {
                        if let Some((listener, handoffs)) = acceptor {
                            match TcpListener::from_std(listener) {
                                Ok(listener) => {
                                    tokio::spawn(hand_out(
                                        listener,
                                        handoffs,
                                        Arc::clone(&open),
                                        stop.clone(),
                                    ));
                                }
                                Err(error) => tracing::error!(%error, "cannot listen"),
                            }
                        }
                        loop {
                            let (stream, peer) = tokio::select! {
                                next = inbox.recv() => match next {
                                    Some(next) => next,
                                    None => break,
                                },
                                _ = stop.changed() => break,
                            };
                            let Ok(stream) = tokio::net::TcpStream::from_std(stream) else {
                                open[i].fetch_sub(1, Ordering::Relaxed);
                                continue;
                            };
                            let gateway = Arc::clone(&gateway);
                            let open = Arc::clone(&open);
                            tokio::spawn(async move {
                                gateway.connection(stream, peer).await;
                                open[i].fetch_sub(1, Ordering::Relaxed);
                            });
                        }
                    });
                })
                .map_err(GatewayError::Io)?;
            handles.push(handle);
        }
        Ok((bound, handles))
    }

    /// Accepts connections until `stop` turns true.
    async fn accept(self: Arc<Self>, listener: TcpListener, mut stop: watch::Receiver<bool>) {
        let gateway = self;
        while let Some((stream, peer)) = next_connection(&listener, &mut stop).await {
            let gateway = Arc::clone(&gateway);
            tokio::spawn(gateway.connection(stream, peer));
        }
    }

    /// Serves one client connection.
    async fn connection(self: Arc<Self>, stream: tokio::net::TcpStream, peer: SocketAddr) {
        let limits = self.current().config.server;
        let gateway = self;
        let stream = Watched::new(stream);
        let conflicts = stream.conflicts();
        let requests = AtomicU64::new(0);
        let service = hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| {
            let gateway = Arc::clone(&gateway);
            // hyper answers one request of a connection at
            // a time, so this counts along with the watcher.
            let index = requests.fetch_add(1, Ordering::Relaxed);
            let smuggling = conflicts.is_conflicting(index);
            async move {
                if smuggling {
                    gateway.metrics.unrouted();
                    let mut refused = plain(
                        StatusCode::BAD_REQUEST,
                        "Content-Length and Transfer-Encoding together are refused",
                    );
                    refused
                        .headers_mut()
                        .insert(header::CONNECTION, HeaderValue::from_static("close"));
                    return Ok::<_, Infallible>(refused);
                }
                let mut request = request.map(Body::new);
                request.extensions_mut().insert(Peer(peer));
                Ok::<_, Infallible>(gateway.handle(request).await)
            }
        });
        let _ = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_timeout())
            .max_buf_size(limits.max_header_bytes.max(8192))
            .serve_connection(TokioIo::new(stream), service)
            .await;
    }

    /// Answers one request.
    pub async fn handle(&self, request: Request<Body>) -> Response<Body> {
        let current = self.current();
        let config = &current.config;
        if let Some(length) = request.headers().get(header::CONTENT_LENGTH)
            && length
                .to_str()
                .ok()
                .and_then(|l| l.parse::<u64>().ok())
                .is_some_and(|l| l > config.server.max_body_bytes)
        {
            return plain(StatusCode::PAYLOAD_TOO_LARGE, "the request body is over the limit");
        }
        let path = request.uri().path();
        if path == "/metrics" && request.method() == http::Method::GET {
            let mut response = Response::new(Body::from(self.metrics.render().await));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4"),
            );
            return response;
        }
        let host = request.headers().get(header::HOST).and_then(|h| h.to_str().ok());
        let Some(index) = config
            .route_for(host, path)
            .and_then(|r| config.routes.iter().position(|x| std::ptr::eq(x, r)))
        else {
            self.metrics.unrouted();
            return plain(StatusCode::NOT_FOUND, "no route for this host and path");
        };
        let started = std::time::Instant::now();
        let response = (current.handlers[index])(request).await;
        let route = &config.routes[index];
        let headers = response.headers();
        let limited =
            response.status() == StatusCode::TOO_MANY_REQUESTS && headers.contains_key(RATELIMIT);
        let outcome = MetricsOutcome {
            status: response.status().as_u16(),
            admitted: route.limit.as_ref().map(|_| !limited),
            shadow_refused: headers.contains_key(RATELIMIT_SHADOW),
            cache_hit: headers.get(X_CACHE).map(|v| v.as_bytes() == b"HIT"),
            latency: started.elapsed(),
        };
        self.metrics.record_for(&current.counters[index], outcome);
        response
    }
}

fn plain(status: StatusCode, text: &str) -> Response<Body> {
    let mut response = Response::new(Body::from(format!("{text}\n")));
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    response
}

/// The key of a request, as a limit's descriptor says.
fn key_of(source: &KeySource, request: &Request<Body>) -> Option<String> {
    match source {
        KeySource::ClientIp => request.extensions().get::<Peer>().map(|p| p.0.ip().to_string()),
        KeySource::Path => Some(request.uri().path().to_owned()),
        // A value that is not text (invalid UTF-8) is no key: it shares
        // the keyless budget.
        KeySource::Header(name) => {
            request.headers().get(name.as_str()).and_then(|v| v.to_str().ok()).map(str::to_owned)
        }
    }
}

/// A route behind its limit: `RateLimitLayer` over the route's limiter.
fn limited(
    route: &Route,
    limit: &RouteLimit,
    proxy: Proxy,
    redis: Option<RedisConnection>,
) -> Result<Handler, GatewayError> {
    let fail = |e| GatewayError::Limit(route.name.clone(), e);
    let limiter: AnyKeyedLimiter<String> = match redis {
        Some(connection) => {
            let policy = match limit.on_failure {
                OnFailure::Open => FailurePolicy::Open,
                OnFailure::Closed => FailurePolicy::Error,
            };
            let prefix = format!("gw:{}:", route.name.replace(['{', '}'], "_"));
            AnyKeyedLimiter::new(
                RedisLimiter::new(connection, limit.limit, &prefix)
                    .map_err(fail)?
                    .with_policy(policy),
            )
        }
        None => {
            let l = limit.limit;
            let keyed: Keyed<String, _> = Keyed::new(100_000, move || l.build()).map_err(fail)?;
            AnyKeyedLimiter::new(keyed)
        }
    };
    let source = limit.key.clone();
    let key = move |request: &Request<Body>| key_of(&source, request);
    let mut layer = RateLimitLayer::new(limiter, key).with_policy_name(&route.name);
    if limit.shadow {
        layer = layer.shadow();
    }
    let service = layer.share_missing_key("-".to_owned()).layer(proxy);
    Ok(Arc::new(move |request| {
        let mut service = service.clone();
        Box::pin(async move {
            let ready = std::future::poll_fn(|cx| service.poll_ready(cx)).await;
            match ready {
                Ok(()) => service.call(request).await.unwrap_or_else(|never| match never {}),
                Err(never) => match never {},
            }
        })
    }))
}

/// A copy of `headers` that shares no buffer with them.
fn owned_headers(headers: &HeaderMap) -> HeaderMap {
    let mut owned = HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        if let Ok(value) = HeaderValue::from_bytes(value.as_bytes()) {
            owned.append(name.clone(), value);
        }
    }
    owned
}

/// A response kept by a route's cache.
struct Cached {
    status: StatusCode,
    headers: HeaderMap,
    body: bytes::Bytes,
}

/// The most of a body read into memory to be shared or cached.
const MAX_SHARED_BODY: usize = 64 << 20;

type Cache = sysblocks_lru_cache::ConcurrentLruCache<String, Arc<Cached>>;

/// A route's cache: responses weighed by their bytes (the bound is never
/// exceeded), kept as long as the upstream's `Cache-Control` allows, and
/// single flight: concurrent misses for one key make one upstream request.
fn cache(max_bytes: u64) -> Option<Arc<Cache>> {
    let cache = Cache::builder()
        .max_weight(max_bytes)
        .weigher(|key: &String, value: &Arc<Cached>| {
            let headers: usize =
                value.headers.iter().map(|(n, v)| n.as_str().len() + v.len() + 4).sum();
            (key.len() + headers + value.body.len() + 64) as u64
        })
        .build()
        .ok()?;
    Some(Arc::new(cache))
}

/// How long a response may be kept, from its status and `Cache-Control`
/// (`None`: not at all: not a 200, `no-store`, `private`, `no-cache`, or
/// no `max-age`).
pub fn ttl_of(status: StatusCode, headers: &HeaderMap) -> Option<Duration> {
    if status != StatusCode::OK {
        return None;
    }
    let mut ttl = None;
    for directive in headers
        .get_all(header::CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
    {
        let directive = directive.trim().to_ascii_lowercase();
        match directive.split_once('=') {
            None if matches!(directive.as_str(), "no-store" | "private" | "no-cache") => {
                return None;
            }
            Some(("s-maxage", secs)) => {
                ttl = secs.trim().parse().ok().map(Duration::from_secs);
            }
            Some(("max-age", secs)) if ttl.is_none() => {
                ttl = secs.trim().parse().ok().map(Duration::from_secs);
            }
            _ => {}
        }
    }
    ttl.filter(|t| !t.is_zero())
}

/// Picks an upstream server by consistent hashing of a route key with
/// bounded loads over the requests in flight (sysblocks-consistent-hash):
/// a key keeps its server across restarts and gateway instances (the ring
/// depends only on the servers' addresses), removing a server moves only
/// its keys, and no server has more than `c` x the mean in flight (plus
/// one).
#[derive(Debug)]
pub struct Balancer {
    ring: HashRing<String>,
    servers: Vec<SocketAddr>,
    /// The servers as URI authorities, made once.
    authorities: Vec<http::uri::Authority>,
    in_flight: Vec<AtomicU64>,
    factor: f64,
    /// Passive health: consecutive failures, and until when (ms since
    /// `epoch`) a server is left out.
    failures: Vec<AtomicU32>,
    ejected_until: Vec<AtomicU64>,
    eject_after: u32,
    epoch: std::time::Instant,
    /// What it was built from (the servers as given, the factor, the
    /// ejection count), to keep it across reloads that do not change it.
    spec: (Vec<SocketAddr>, f64, u32),
}

/// How long a server that failed `eject_after` times in a row is left
/// out; then one request probes it (one more failure leaves it out again).
pub const EJECT_FOR: Duration = Duration::from_secs(5);

impl Balancer {
    /// A balancer over `servers` with balance factor `factor` (above 1),
    /// leaving a server out after 5 failures in a row.
    pub fn new(servers: &[SocketAddr], factor: f64) -> Balancer {
        Balancer::with_ejection(servers, factor, 5)
    }

    /// As [`new`](Self::new), leaving a server out after `eject_after`
    /// failures in a row (for [`EJECT_FOR`]).
    pub fn with_ejection(servers: &[SocketAddr], factor: f64, eject_after: u32) -> Balancer {
        let servers_given = servers.to_vec();
        let mut ring: HashRing<String> = HashRing::new();
        for server in servers {
            let _ = ring.add(server.to_string());
        }
        let servers: Vec<SocketAddr> = ring.nodes().filter_map(|n| n.parse().ok()).collect();
        let zeros = |n: usize| (0..n).map(|_| AtomicU64::new(0)).collect::<Vec<_>>();
        let authorities = servers
            .iter()
            .filter_map(|s| http::uri::Authority::try_from(s.to_string()).ok())
            .collect();
        Balancer {
            ring,
            authorities,
            in_flight: zeros(servers.len()),
            ejected_until: zeros(servers.len()),
            failures: (0..servers.len()).map(|_| AtomicU32::new(0)).collect(),
            servers,
            factor: factor.max(1.0 + 1e-9),
            eject_after: eject_after.max(1),
            epoch: std::time::Instant::now(),
            spec: (servers_given, factor, eject_after),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn usable(&self, index: usize, avoid: &[usize]) -> bool {
        !avoid.contains(&index)
            && self.ejected_until[index].load(Ordering::Relaxed) <= self.now_ms()
    }

    /// Records how a request to the server of `guard` went: a success
    /// clears its failures; `eject_after` failures in a row leave it out
    /// for [`EJECT_FOR`].
    pub fn report(&self, guard: &InFlight<'_>, ok: bool) {
        let i = guard.index;
        if ok {
            self.failures[i].store(0, Ordering::Relaxed);
            return;
        }
        if self.failures[i].fetch_add(1, Ordering::Relaxed) + 1 >= self.eject_after {
            let until = self.now_ms() + u64::try_from(EJECT_FOR.as_millis()).unwrap_or(u64::MAX);
            self.ejected_until[i].store(until, Ordering::Relaxed);
            // After the pause, one failure is enough to leave it out again.
            self.failures[i].store(self.eject_after - 1, Ordering::Relaxed);
            tracing::warn!(server = %self.servers[i], "upstream left out after failures in a row");
        }
    }

    /// Whether a server is left out now.
    pub fn is_ejected(&self, server: SocketAddr) -> bool {
        self.servers.iter().position(|s| *s == server).is_some_and(|i| !self.usable(i, &[]))
    }

    /// The server a key goes to when nothing is in flight.
    pub fn server_for(&self, key: &[u8]) -> Option<SocketAddr> {
        self.ring.node_for(key).and_then(|n| n.parse().ok())
    }

    /// Picks the server for `key` now and counts a request in flight on
    /// it until the returned guard is dropped.
    pub fn pick(&self, key: &[u8]) -> Option<InFlight<'_>> {
        self.pick_avoiding(key, &[])
    }

    /// As [`pick`](Self::pick), but not the servers at `avoid` (tried
    /// already) nor those left out, unless no other is left: the bounded
    /// choice first, then the next distinct servers clockwise (the key's
    /// replicas).
    pub fn pick_avoiding(&self, key: &[u8], avoid: &[usize]) -> Option<InFlight<'_>> {
        self.pick_hashed(hash_key(key), avoid)
    }

    /// As [`pick_avoiding`](Self::pick_avoiding), for a key already hashed
    /// with `sysblocks_consistent_hash::hash_key`.
    pub fn pick_hashed(&self, hash: u64, avoid: &[usize]) -> Option<InFlight<'_>> {
        let mut index = if self.servers.len() == 1 {
            0
        } else {
            let loads: Vec<u64> =
                self.in_flight.iter().map(|l| l.load(Ordering::Relaxed)).collect();
            self.ring.bounded_index(hash, &loads, self.factor).ok()?
        };
        if !self.usable(index, avoid) {
            let next = self
                .ring
                .replicas_for_hash(hash, self.servers.len())
                .filter_map(|node| node.parse::<SocketAddr>().ok())
                .filter_map(|server| self.servers.iter().position(|s| *s == server))
                .find(|i| self.usable(*i, avoid));
            match next {
                Some(i) => index = i,
                // Everything tried or left out: a new server for a retry
                // if there is one, else the bounded choice.
                None => {
                    index = (0..self.servers.len()).find(|i| !avoid.contains(i)).unwrap_or(index);
                }
            }
        }
        self.in_flight[index].fetch_add(1, Ordering::Relaxed);
        Some(InFlight { balancer: self, index })
    }

    /// Requests in flight per server.
    pub fn loads(&self) -> Vec<u64> {
        self.in_flight.iter().map(|l| l.load(Ordering::Relaxed)).collect()
    }
}

/// A request in flight on one server.
#[derive(Debug)]
pub struct InFlight<'a> {
    balancer: &'a Balancer,
    index: usize,
}

impl InFlight<'_> {
    /// The server.
    pub fn server(&self) -> SocketAddr {
        self.balancer.servers[self.index]
    }

    /// The server as a URI authority.
    pub fn authority(&self) -> &http::uri::Authority {
        &self.balancer.authorities[self.index]
    }

    /// The server's index (to avoid it on a retry).
    pub fn index(&self) -> usize {
        self.index
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.balancer.in_flight[self.index].fetch_sub(1, Ordering::Relaxed);
    }
}

/// Forwards requests to a server of one upstream group (by consistent
/// hashing of the route key, with bounded loads), through the route's
/// cache if it has one.
#[derive(Clone)]
struct Proxy {
    balancer: Arc<Balancer>,
    /// The body's byte limit and time limit, from `[server]`.
    body_limits: (u64, Duration),
    hash_key: KeySource,
    cache: Option<Arc<Cache>>,
    retries: u32,
}

impl Proxy {
    async fn forward(&mut self, request: Request<Body>) -> Response<Body> {
        let cacheable = matches!(*request.method(), http::Method::GET | http::Method::HEAD)
            && !request.headers().contains_key(header::AUTHORIZATION);
        match &self.cache {
            Some(cache) if cacheable => {
                let cache = Arc::clone(cache);
                let host =
                    request.headers().get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("");
                let target = request.uri().path_and_query().map_or("/", |p| p.as_str());
                let key = format!("{} {host}{target}", request.method());
                // Boxed: the plain path's future stays small (it is moved
                // on every request).
                Box::pin(self.cached(&cache, key, request)).await
            }
            _ => self.send(request).await,
        }
    }

    async fn cached(
        &mut self,
        cache: &Cache,
        key: String,
        request: Request<Body>,
    ) -> Response<Body> {
        use http_body_util::BodyExt;
        let led = std::sync::atomic::AtomicBool::new(false);
        let mut proxy = self.clone();
        let load = async {
            led.store(true, Ordering::Relaxed);
            let response = proxy.send(request).await;
            let (parts, body) = response.into_parts();
            let body = http_body_util::Limited::new(body, MAX_SHARED_BODY)
                .collect()
                .await
                .map_err(|e| e.to_string())?
                .to_bytes();
            let ttl = ttl_of(parts.status, &parts.headers);
            // What hyper parsed (the body's chunks, the header values) are
            // slices of its read buffers: kept as they are, a 200-byte
            // entry would hold kilobytes of buffer alive, and the cache's
            // byte bound would bound nothing. A kept response is copied
            // into allocations of its own size.
            let body = if ttl.is_some() { bytes::Bytes::copy_from_slice(&body) } else { body };
            let headers = if ttl.is_some() { owned_headers(&parts.headers) } else { parts.headers };
            Ok::<_, String>((Arc::new(Cached { status: parts.status, headers, body }), ttl))
        };
        match cache.try_get_with_ttl_async(key, load).await {
            Ok(cached) => {
                let mut response = Response::new(Body::from(cached.body.clone()));
                *response.status_mut() = cached.status;
                *response.headers_mut() = cached.headers.clone();
                let state = if led.load(Ordering::Relaxed) { "MISS" } else { "HIT" };
                response.headers_mut().insert(X_CACHE, HeaderValue::from_static(state));
                response
            }
            Err(error) => {
                tracing::warn!(%error, "upstream body could not be read");
                plain(StatusCode::BAD_GATEWAY, "the upstream's answer could not be read")
            }
        }
    }

    async fn send(&mut self, request: Request<Body>) -> Response<Body> {
        let balancer = Arc::clone(&self.balancer);
        let hash = match &self.hash_key {
            KeySource::Path => hash_key(request.uri().path().as_bytes()),
            source => hash_key(key_of(source, &request).unwrap_or_default().as_bytes()),
        };
        let peer = request.extensions().get::<Peer>().map(|p| p.0.ip());
        let (mut parts, body) = request.into_parts();
        strip_hop_by_hop(&mut parts.headers);
        if let Some(ip) = peer {
            use std::fmt::Write as _;
            let mut forwarded = String::with_capacity(48);
            if let Some(earlier) = parts.headers.get(X_FORWARDED_FOR).and_then(|v| v.to_str().ok())
            {
                forwarded.push_str(earlier);
                forwarded.push_str(", ");
            }
            let _ = write!(forwarded, "{ip}");
            if let Ok(value) = HeaderValue::try_from(forwarded) {
                parts.headers.insert(X_FORWARDED_FOR, value);
            }
        }
        // The body is read whole first (see `read_body`), so it can be
        // sent again; only an idempotent method is.
        let body = if hyper::body::Body::is_end_stream(&body) {
            bytes::Bytes::new()
        } else {
            let (max_bytes, timeout) = self.body_limits;
            let limits = parts.extensions.get::<BodyLimits>().copied().unwrap_or(BodyLimits {
                max_bytes,
                deadline: tokio::time::Instant::now() + timeout,
            });
            match Box::pin(read_body(body, Some(limits))).await {
                Ok(body) => body,
                Err(refused) => return refused,
            }
        };
        // (Transfer-Encoding went with the hop-by-hop headers; the body is
        // here whole, so there is nothing left to wait for a 100 for.)
        parts.headers.remove(header::EXPECT);
        if !body.is_empty() || parts.headers.contains_key(header::CONTENT_LENGTH) {
            parts.headers.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
        }
        let idempotent = matches!(
            parts.method,
            http::Method::GET
                | http::Method::HEAD
                | http::Method::OPTIONS
                | http::Method::DELETE
                | http::Method::PUT
        );
        let retries = if idempotent { self.retries } else { 0 };
        let target = parts.uri.path_and_query().cloned();
        let mut headers = Some(parts.headers);
        let mut tried = Vec::new();
        for attempt in 0..=retries {
            let Some(in_flight) = balancer.pick_hashed(hash, &tried) else {
                return plain(StatusCode::BAD_GATEWAY, "the route's upstream has no server");
            };
            let mut request = Request::new(http_body_util::Full::new(body.clone()));
            *request.method_mut() = parts.method.clone();
            if let Some(target) = &target {
                *request.uri_mut() = http::Uri::from(target.clone());
            }
            // The headers are moved into the last attempt, copied before.
            *request.headers_mut() = if attempt == retries {
                headers.take().unwrap_or_default()
            } else {
                headers.clone().unwrap_or_default()
            };
            if !request.headers().contains_key(header::HOST)
                && let Ok(host) = HeaderValue::from_str(in_flight.authority().as_str())
            {
                request.headers_mut().insert(header::HOST, host);
            }
            match crate::upstream::send(in_flight.server(), request).await {
                Ok(response) => {
                    balancer.report(&in_flight, true);
                    let (mut parts, body) = response.into_parts();
                    strip_hop_by_hop(&mut parts.headers);
                    return Response::from_parts(parts, Body::new(body));
                }
                Err(error) => {
                    balancer.report(&in_flight, false);
                    tracing::warn!(server = %in_flight.server(), %error, "upstream failed");
                    tried.push(in_flight.index());
                }
            }
        }
        plain(StatusCode::BAD_GATEWAY, "the upstream did not answer")
    }
}

impl Service<Request<Body>> for Proxy {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Response<Body>, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let mut proxy = self.clone();
        Box::pin(async move { Ok(proxy.forward(request).await) })
    }
}

/// Removes the hop-by-hop headers, and those the `Connection` header names.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Most messages have none: one pass over the names finds out.
    if !headers.keys().any(|name| HOP_BY_HOP.contains(name)) {
        return;
    }
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::try_from(n.trim()).ok())
        .collect();
    for name in named.into_iter().chain(HOP_BY_HOP) {
        headers.remove(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(servers: &str) -> Config {
        let text = format!(
            r#"
listen = "127.0.0.1:0"
[[upstream]]
name = "api"
servers = [{servers}]
[[upstream]]
name = "static"
servers = ["127.0.0.1:9100"]
[[route]]
prefix = "/a"
upstream = "api"
[[route]]
prefix = "/b"
upstream = "api"
"#
        );
        Config::parse("test.toml", &text).unwrap()
    }

    #[tokio::test]
    async fn routes_to_one_upstream_share_its_balancer_across_reloads() {
        let gateway = Gateway::new(config(r#""127.0.0.1:9001", "127.0.0.1:9002""#), None).unwrap();
        let before = gateway.current();
        let api = Arc::clone(&before.balancers["api"]);
        // Loads and health are the group's: a request in flight through one
        // route counts for the other.
        let held = api.pick(b"k").unwrap();
        assert_eq!(api.loads().iter().sum::<u64>(), 1);

        gateway.reload(config(r#""127.0.0.1:9001", "127.0.0.1:9002""#)).unwrap();
        let same = gateway.current();
        assert!(Arc::ptr_eq(&api, &same.balancers["api"]), "an unchanged group is kept");
        assert_eq!(same.balancers["api"].loads().iter().sum::<u64>(), 1);
        drop(held);

        gateway.reload(config(r#""127.0.0.1:9001", "127.0.0.1:9003""#)).unwrap();
        let changed = gateway.current();
        assert!(!Arc::ptr_eq(&api, &changed.balancers["api"]), "a changed group is new");
        assert!(Arc::ptr_eq(&before.balancers["static"], &changed.balancers["static"]));
    }
}
