//! `sim-web`: a synthetic web on loopback, seeded and deterministic, that
//! logs every request it gets, so that tests judge a crawler by what the
//! web saw rather than by what the crawler says it did.
//!
//! ```text
//!  127.0.0.2:p1  h0.sim h1.sim h2.sim h3.sim      (several host names per
//!  127.0.0.3:p2  h4.sim h5.sim ...                 address: a per-IP limit
//!  ...                                             must group them)
//!  then one address each: trap.sim limited.sim busy.sim slow.sim
//!  redirect.sim junk.sim badrobots.sim, never.sim (answers nothing)
//! ```
//!
//! A host name is resolved by the crawler from the hosts file that
//! [`SimWeb::hosts_file`] writes (`name address:port` lines), the way
//! `curl --resolve` does; the request carries the name in `Host`.
//!
//! **Normal hosts** `h{i}.sim` serve `/` and `/p/1` .. `/p/{pages-1}`. Page
//! `i` links to pages `2i+1` and `2i+2` of its host (so every page is
//! within a few links of the root), to one other page at random, to
//! `/private/{i}` (disallowed by robots.txt), to `/nofollow/{i}` with
//! `rel="nofollow"`, to a page under a session-id URL (the same page under
//! another name), to a fragment, a `mailto:` and a relative link. A root
//! links to the roots of hosts `2h+1` and `2h+2`, so every host is a few
//! links from `h0.sim`, and `h0.sim` links to every special host. Every
//! fifth host's robots.txt has a `Crawl-delay`.
//!
//! **Special hosts** (with [`SimConfig::specials`]): a calendar spider
//! trap, a host answering 429 with `Retry-After` the first time each page
//! is asked for, one answering 503 without it, a slow one with a page that
//! never answers, redirects (a chain, a loop, an endless chain), oversized
//! and endless bodies, a non-HTML file, malformed HTML, a huge garbage
//! robots.txt, and an address that accepts connections and never answers.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::convert::Infallible;
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, Request, StatusCode, header};
use axum::response::Response;
use bytes::Bytes;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio::net::TcpListener;
use tokio::sync::watch;

/// The header a crawler may send to say which worker it is (logged).
pub const WORKER_HEADER: &str = "x-crawler-worker";

/// The shape of the synthetic web.
#[derive(Debug, Clone, PartialEq)]
pub struct SimConfig {
    /// Seed of every random choice (links, session ids).
    pub seed: u64,
    /// Normal hosts `h0.sim` ...
    pub hosts: usize,
    /// Pages per normal host (the root counts).
    pub pages: usize,
    /// Host names that share one address.
    pub hosts_per_ip: usize,
    /// The `Crawl-delay` in every fifth host's robots.txt (`None`: no
    /// host sets one).
    pub crawl_delay: Option<Duration>,
    /// How long every response waits before it is sent.
    pub latency: Duration,
    /// Whether the special hosts (traps, errors, redirects, junk) exist.
    pub specials: bool,
    /// What `limited.sim` asks for in `Retry-After`, in whole seconds.
    pub retry_after_secs: u64,
}

impl Default for SimConfig {
    /// 20 hosts of 20 pages, 4 names per address, a 200 ms crawl-delay on
    /// every fifth host, no latency, the special hosts, Retry-After 1 s.
    fn default() -> Self {
        SimConfig {
            seed: 1,
            hosts: 20,
            pages: 20,
            hosts_per_ip: 4,
            crawl_delay: Some(Duration::from_millis(200)),
            latency: Duration::ZERO,
            specials: true,
            retry_after_secs: 1,
        }
    }
}

/// The special hosts, in the order they get addresses.
pub const SPECIAL_HOSTS: [&str; 7] = [
    "trap.sim",
    "limited.sim",
    "busy.sim",
    "slow.sim",
    "redirect.sim",
    "junk.sim",
    "badrobots.sim",
];

/// A host that accepts connections and never answers.
pub const SILENT_HOST: &str = "never.sim";

/// One request as the web saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Logged {
    /// The `Host` header.
    pub host: String,
    /// Path and query.
    pub path: String,
    /// When it arrived, since the web started.
    pub at: Duration,
    /// The status answered (0: none, the request hangs).
    pub status: u16,
    /// When the answer's head was sent (`None`: never).
    pub done: Option<Duration>,
    /// The worker header, if sent.
    pub worker: Option<String>,
}

/// A web running on loopback; stops when dropped.
#[derive(Debug)]
pub struct SimWeb {
    web: Arc<Web>,
    addresses: Vec<(String, SocketAddr)>,
    stop: watch::Sender<bool>,
}

#[derive(Debug)]
struct Web {
    config: SimConfig,
    start: Instant,
    log: Mutex<Vec<Logged>>,
    /// Paths of `limited.sim` and `busy.sim` asked for once already.
    refused_once: Mutex<HashSet<(String, String)>>,
}

impl SimWeb {
    /// Starts the web: one listener per address (`127.0.0.2` upwards, a
    /// free port each).
    ///
    /// # Errors
    /// A configuration without hosts or pages, or a listener that cannot
    /// be bound.
    pub async fn start(config: SimConfig) -> std::io::Result<SimWeb> {
        if config.hosts == 0 || config.pages == 0 || config.hosts_per_ip == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "sim-web needs at least one host, one page and one host per address",
            ));
        }
        let web = Arc::new(Web {
            config: config.clone(),
            start: Instant::now(),
            log: Mutex::default(),
            refused_once: Mutex::default(),
        });
        let (stop, stopped) = watch::channel(false);
        let names: Vec<String> = (0..config.hosts).map(|h| format!("h{h}.sim")).collect();
        let groups = config.hosts.div_ceil(config.hosts_per_ip);
        let mut addresses = Vec::new();
        let router = axum::Router::new().fallback(serve).with_state(Arc::clone(&web));
        let bind = |index: usize| -> Ipv4Addr {
            let n = u32::try_from(index + 2).unwrap_or(u32::MAX);
            Ipv4Addr::from(u32::from(Ipv4Addr::new(127, 0, 0, 0)) + n)
        };
        let mut listen = Vec::new();
        for (group, names) in names.chunks(config.hosts_per_ip).enumerate() {
            let listener = TcpListener::bind((bind(group), 0)).await?;
            let address = listener.local_addr()?;
            for name in names {
                addresses.push((name.clone(), address));
            }
            listen.push(listener);
        }
        if config.specials {
            for (i, name) in SPECIAL_HOSTS.iter().enumerate() {
                let listener = TcpListener::bind((bind(groups + i), 0)).await?;
                addresses.push(((*name).to_owned(), listener.local_addr()?));
                listen.push(listener);
            }
            // never.sim: accepted, never read or answered.
            let silent = TcpListener::bind((bind(groups + SPECIAL_HOSTS.len()), 0)).await?;
            addresses.push((SILENT_HOST.to_owned(), silent.local_addr()?));
            let mut stopped = stopped.clone();
            tokio::spawn(async move {
                let mut held = Vec::new();
                loop {
                    tokio::select! {
                        accepted = silent.accept() => match accepted {
                            Ok((socket, _)) => held.push(socket),
                            Err(_) => break,
                        },
                        _ = stopped.changed() => break,
                    }
                }
            });
        }
        for listener in listen {
            let router = router.clone();
            let mut stopped = stopped.clone();
            tokio::spawn(async move {
                let shutdown = async move {
                    let _ = stopped.changed().await;
                };
                let _ = axum::serve(listener, router).with_graceful_shutdown(shutdown).await;
            });
        }
        Ok(SimWeb { web, addresses, stop })
    }

    /// Every host name and the address it resolves to.
    pub fn addresses(&self) -> &[(String, SocketAddr)] {
        &self.addresses
    }

    /// The address of one host name.
    pub fn address_of(&self, host: &str) -> Option<SocketAddr> {
        self.addresses.iter().find(|(name, _)| name == host).map(|(_, a)| *a)
    }

    /// The seed URL of the web: `http://h0.sim/`.
    pub fn seed(&self) -> String {
        "http://h0.sim/".to_owned()
    }

    /// Writes the hosts file the crawler resolves names from.
    ///
    /// # Errors
    /// The file cannot be written.
    pub fn write_hosts_file(&self, path: &Path) -> std::io::Result<()> {
        std::fs::write(path, self.hosts_file())
    }

    /// The hosts file's text: one `name address:port` line a host.
    pub fn hosts_file(&self) -> String {
        let mut text = String::new();
        for (name, address) in &self.addresses {
            let _ = writeln!(text, "{name} {address}");
        }
        text
    }

    /// Every request so far, in order of arrival.
    pub fn log(&self) -> Vec<Logged> {
        self.web.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// How many requests so far.
    pub fn requests(&self) -> usize {
        self.web.log.lock().map(|l| l.len()).unwrap_or_default()
    }

    /// The configuration.
    pub fn config(&self) -> &SimConfig {
        &self.web.config
    }

    /// Every `(host, path)` a polite crawler with a depth limit of at
    /// least 16 and a redirect limit of at least 3 must fetch: each host's
    /// robots.txt and every page of the normal hosts, and the pages of the
    /// special hosts that are not traps, errors or junk.
    pub fn expected(&self) -> BTreeSet<(String, String)> {
        let config = &self.web.config;
        let mut expected = BTreeSet::new();
        for h in 0..config.hosts {
            let host = format!("h{h}.sim");
            expected.insert((host.clone(), "/robots.txt".to_owned()));
            for page in 0..config.pages {
                expected.insert((host.clone(), page_path(page)));
            }
        }
        if config.specials {
            for host in SPECIAL_HOSTS {
                expected.insert((host.to_owned(), "/robots.txt".to_owned()));
            }
            for (host, path) in [
                ("limited.sim", "/"),
                ("limited.sim", "/a"),
                ("limited.sim", "/b"),
                ("busy.sim", "/"),
                ("busy.sim", "/a"),
                ("slow.sim", "/"),
                ("slow.sim", "/a"),
                ("redirect.sim", "/"),
                ("redirect.sim", "/r/1"),
                ("redirect.sim", "/r/2"),
                ("redirect.sim", "/r/3"),
                ("redirect.sim", "/loop/a"),
                ("redirect.sim", "/loop/b"),
                ("junk.sim", "/"),
                ("junk.sim", "/bad.html"),
                ("junk.sim", "/after-bad"),
                ("trap.sim", "/"),
                ("badrobots.sim", "/"),
            ] {
                expected.insert((host.to_owned(), path.to_owned()));
            }
        }
        expected
    }

    /// The expected `(host, path)`s no request asked for.
    pub fn unfetched(&self) -> Vec<(String, String)> {
        let fetched: BTreeSet<(String, String)> =
            self.log().into_iter().map(|l| (l.host, l.path)).collect();
        self.expected().difference(&fetched).cloned().collect()
    }

    /// The `(host, path)`s asked for that a polite crawler never asks for
    /// (see [`forbidden`](Self::forbidden)).
    pub fn forbidden_asked(&self) -> Vec<(String, String)> {
        let asked: BTreeSet<(String, String)> =
            self.log().into_iter().map(|l| (l.host, l.path)).collect();
        asked.into_iter().filter(|(_, path)| SimWeb::forbidden(path)).collect()
    }

    /// Whether a polite crawler must never ask for `path`: robots.txt
    /// disallows it (`/private/`, and all of `badrobots.sim`'s robots is
    /// garbage, so nothing there is disallowed) or it was only linked with
    /// `rel="nofollow"`.
    pub fn forbidden(path: &str) -> bool {
        path.starts_with("/private/") || path.starts_with("/nofollow/")
    }
}

impl Drop for SimWeb {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// The path of page `i` of a normal host.
pub fn page_path(i: usize) -> String {
    if i == 0 { "/".to_owned() } else { format!("/p/{i}") }
}

fn html(body: &str) -> String {
    format!("<!doctype html><html><head><title>sim</title></head><body>{body}</body></html>")
}

fn response(status: StatusCode, content_type: &str, body: impl Into<Body>) -> Response {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, content_type)
        .body(body.into())
        .unwrap_or_default()
}

fn redirect(status: StatusCode, to: &str) -> Response {
    Response::builder()
        .status(status)
        .header(header::LOCATION, to)
        .body(Body::empty())
        .unwrap_or_default()
}

async fn serve(State(web): State<Arc<Web>>, request: Request<Body>) -> Response {
    let at = web.start.elapsed();
    let headers = request.headers();
    let host = host_header(headers);
    let worker = headers.get(WORKER_HEADER).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let path = request.uri().path_and_query().map_or("/", |p| p.as_str()).to_owned();
    let index = web.log.lock().ok().map(|mut log| {
        log.push(Logged {
            host: host.clone(),
            path: path.clone(),
            at,
            status: 0,
            done: None,
            worker,
        });
        log.len() - 1
    });
    if !web.config.latency.is_zero() {
        tokio::time::sleep(web.config.latency).await;
    }
    let answer = web.answer(&host, &path).await;
    if let Some(index) = index
        && let Ok(mut log) = web.log.lock()
        && let Some(entry) = log.get_mut(index)
    {
        entry.status = answer.status().as_u16();
        entry.done = Some(web.start.elapsed());
    }
    answer
}

fn host_header(headers: &HeaderMap) -> String {
    let raw = headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("");
    raw.split(':').next().unwrap_or("").to_ascii_lowercase()
}

impl Web {
    async fn answer(&self, host: &str, path: &str) -> Response {
        if let Some(h) = host.strip_prefix('h').and_then(|r| r.strip_suffix(".sim")) {
            if let Ok(h) = h.parse::<usize>()
                && h < self.config.hosts
            {
                return self.normal(h, path);
            }
            return response(StatusCode::NOT_FOUND, "text/plain", "no such host");
        }
        if !self.config.specials {
            return response(StatusCode::NOT_FOUND, "text/plain", "no such host");
        }
        if path == "/robots.txt" {
            return if host == "badrobots.sim" {
                // 1 MiB of garbage with a disallow-everything line buried in
                // it that a parser must not trust past its size limit.
                let mut text = String::with_capacity(1 << 20);
                let mut rng = SmallRng::seed_from_u64(self.config.seed);
                while text.len() < (1 << 20) {
                    let c = char::from(rng.random_range(b' '..=b'~'));
                    text.push(c);
                    if rng.random_ratio(1, 60) {
                        text.push('\n');
                    }
                }
                text.push_str("\nUser-agent: *\nDisallow: /\n");
                response(StatusCode::OK, "text/plain", text)
            } else {
                response(StatusCode::OK, "text/plain", "User-agent: *\nDisallow: /private/\n")
            };
        }
        match host {
            "trap.sim" => self.trap(path),
            "limited.sim" | "busy.sim" => self.refusing(host, path),
            "slow.sim" => match path {
                "/hang" => std::future::pending::<Response>().await,
                "/drip" => {
                    // A body that trickles forever: the read timeout or the
                    // size cap ends it.
                    let chunks = futures_util::stream::unfold((), |()| async {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        Some((Ok::<_, Infallible>(Bytes::from_static(b"<p>drip</p>")), ()))
                    });
                    response(StatusCode::OK, "text/html", Body::from_stream(chunks))
                }
                _ => {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    let links = "<a href=/a>a</a> <a href=/hang>hang</a> <a href=/drip>drip</a>";
                    response(StatusCode::OK, "text/html", html(links))
                }
            },
            "redirect.sim" => match path {
                "/" => response(
                    StatusCode::OK,
                    "text/html",
                    html(
                        "<a href=/r/1>chain</a> <a href=/loop/a>loop</a> <a href=/endless/0>endless</a>",
                    ),
                ),
                "/r/1" => redirect(StatusCode::MOVED_PERMANENTLY, "/r/2"),
                "/r/2" => redirect(StatusCode::FOUND, "http://redirect.sim/r/3"),
                "/loop/a" => redirect(StatusCode::FOUND, "/loop/b"),
                "/loop/b" => redirect(StatusCode::FOUND, "/loop/a"),
                "/r/3" => response(StatusCode::OK, "text/html", html("the end of the chain")),
                _ => match path.strip_prefix("/endless/").and_then(|n| n.parse::<u64>().ok()) {
                    Some(n) => redirect(StatusCode::FOUND, &format!("/endless/{}", n + 1)),
                    None => response(StatusCode::NOT_FOUND, "text/plain", "not found"),
                },
            },
            "junk.sim" => match path {
                "/" => response(
                    StatusCode::OK,
                    "text/html",
                    html(
                        "<a href=/big>big</a> <a href=/endless>endless</a> \
                         <a href=/image.png>png</a> <a href=/bad.html>bad</a>",
                    ),
                ),
                "/big" => {
                    let mut body = html("").into_bytes();
                    body.resize(8 << 20, b' ');
                    body.extend_from_slice(b"<a href=/after-big>never seen</a>");
                    response(StatusCode::OK, "text/html", body)
                }
                "/endless" => {
                    let chunks = futures_util::stream::repeat_with(|| {
                        Ok::<_, Infallible>(Bytes::from_static(&[b'x'; 16 * 1024]))
                    });
                    response(StatusCode::OK, "text/html", Body::from_stream(chunks))
                }
                "/image.png" => {
                    response(StatusCode::OK, "image/png", "<a href=/never-parsed>x</a>")
                }
                "/bad.html" => {
                    let mut body = b"<html><body><a href='/after-bad'>ok</a><a href=\"".to_vec();
                    body.extend_from_slice(&[0xff, 0xfe, 0x00, b'<', b'<', b'>']);
                    body.extend_from_slice(b"<a href=\"http://[::1:bad/\">bad</a><a href=");
                    response(StatusCode::OK, "text/html", body)
                }
                "/after-bad" => response(StatusCode::OK, "text/html", html("recovered")),
                _ => response(StatusCode::NOT_FOUND, "text/plain", "not found"),
            },
            "badrobots.sim" => response(StatusCode::OK, "text/html", html("garbage robots")),
            _ => response(StatusCode::NOT_FOUND, "text/plain", "no such host"),
        }
    }

    fn normal(&self, h: usize, path: &str) -> Response {
        let config = &self.config;
        if path == "/robots.txt" {
            let mut robots = String::from("User-agent: *\nDisallow: /private/\n");
            if let Some(delay) = config.crawl_delay
                && h.is_multiple_of(5)
            {
                let _ = writeln!(robots, "Crawl-delay: {}", delay.as_secs_f64());
            }
            return response(StatusCode::OK, "text/plain", robots);
        }
        let page = if path == "/" {
            Some(0)
        } else {
            path.strip_prefix("/p/").and_then(|p| p.parse::<usize>().ok())
        };
        let Some(page) = page.filter(|p| *p < config.pages) else {
            return response(StatusCode::NOT_FOUND, "text/plain", "not found");
        };
        let mut rng = SmallRng::seed_from_u64(
            config.seed ^ (h as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ page as u64,
        );
        let mut body = String::new();
        for child in [2 * page + 1, 2 * page + 2, rng.random_range(0..config.pages)] {
            if child < config.pages {
                let _ = write!(body, "<a href=\"{}\">page</a> ", page_path(child));
            }
        }
        let other = rng.random_range(0..config.pages);
        let session: u32 = rng.random();
        let _ = write!(
            body,
            "<a href=\"/private/{page}\">private</a> \
             <a rel=\"nofollow\" href=\"/nofollow/{page}\">nofollow</a> \
             <a href=\"{}?sessionid={session:08x}\">session</a> \
             <a href=\"mailto:web@h{h}.sim\">mail</a> \
             <a href=\"//h{h}.sim{}\">protocol-relative</a> ",
            page_path(other),
            page_path(other),
        );
        if page == 0 {
            for child in [2 * h + 1, 2 * h + 2] {
                if child < config.hosts {
                    let _ = write!(body, "<a href=\"http://h{child}.sim/\">next host</a> ");
                }
            }
            if h == 0 && config.specials {
                for host in SPECIAL_HOSTS.iter().chain([&SILENT_HOST]) {
                    let _ = write!(body, "<a href=\"http://{host}/\">{host}</a> ");
                }
            }
        }
        if page % 3 == 1 && page + 1 < config.pages {
            // A base under which a bare number is a page of this host.
            body = format!(
                "<base href=\"http://h{h}.sim/p/\">{body}<a href=\"{}\">relative</a>",
                page + 1
            );
        } else {
            body.push_str("<a href=\"#top\">top</a>");
        }
        response(StatusCode::OK, "text/html; charset=utf-8", html(&body))
    }

    fn trap(&self, path: &str) -> Response {
        // /cal/{year}/{month} links to the next month, forever.
        let (year, month) = match path {
            "/" => (2026, 1),
            _ => {
                let mut parts = path.trim_start_matches("/cal/").split('/');
                let year = parts.next().and_then(|y| y.parse::<u32>().ok());
                let month = parts.next().and_then(|m| m.parse::<u32>().ok());
                match (year, month) {
                    (Some(y), Some(m)) => (y, m),
                    _ => return response(StatusCode::NOT_FOUND, "text/plain", "not found"),
                }
            }
        };
        let (ny, nm) = if month >= 12 { (year + 1, 1) } else { (year, month + 1) };
        response(
            StatusCode::OK,
            "text/html",
            html(&format!("<a href=\"/cal/{ny}/{nm}\">next month</a>")),
        )
    }

    fn refusing(&self, host: &str, path: &str) -> Response {
        let first = self
            .refused_once
            .lock()
            .map(|mut seen| seen.insert((host.to_owned(), path.to_owned())))
            .unwrap_or(false);
        if first {
            let mut builder = Response::builder();
            let status = if host == "limited.sim" {
                builder = builder.header(header::RETRY_AFTER, self.config.retry_after_secs);
                StatusCode::TOO_MANY_REQUESTS
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            return builder.status(status).body(Body::from("come back later")).unwrap_or_default();
        }
        let links = match path {
            "/" if host == "limited.sim" => "<a href=/a>a</a> <a href=/b>b</a>",
            "/" => "<a href=/a>a</a>",
            _ => "",
        };
        response(StatusCode::OK, "text/html", html(links))
    }
}

/// What a log says about politeness, per host name and per address.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct LogReport {
    /// `(host, path)` asked for more than once, not counting answers of
    /// 429 or 503 or requests never answered, with how many times.
    pub repeats: Vec<((String, String), usize)>,
    /// Two requests to one address closer than the address's delay: the
    /// two, and the delay.
    pub too_close: Vec<(Logged, Logged, Duration)>,
    /// A request to a host whose robots.txt asks for a crawl-delay (once
    /// that robots.txt was fetched), followed on its address sooner than
    /// the crawl-delay (hosts that share an address share the wait).
    pub crawl_delay_broken: Vec<(Logged, Logged)>,
    /// A 429 with `Retry-After` followed by a request to that host sooner.
    pub retry_after_broken: Vec<(Logged, Logged)>,
    /// Two requests to one address in flight at once.
    pub overlapping: usize,
}

impl LogReport {
    /// The politeness rules broken (spacing, crawl-delays, Retry-After,
    /// overlap), one line each; empty when the crawl was polite.
    pub fn impolite(&self) -> Vec<String> {
        let mut broken = Vec::new();
        for (a, b, want) in &self.too_close {
            broken.push(format!("closer than {want:?}: {a:?} then {b:?}"));
        }
        for (a, b) in &self.crawl_delay_broken {
            broken.push(format!("crawl-delay broken: {a:?} then {b:?}"));
        }
        for (a, b) in &self.retry_after_broken {
            broken.push(format!("Retry-After broken: {a:?} then {b:?}"));
        }
        if self.overlapping > 0 {
            broken.push(format!(
                "{} requests while another to the address was in flight",
                self.overlapping
            ));
        }
        broken
    }
}

impl SimWeb {
    /// Checks the log against politeness: requests to one address at least
    /// `delay(address)` apart (arrival to arrival, less `tolerance`), the
    /// crawl-delays the robots.txt files ask for, `Retry-After`, one
    /// request at a time per address, and every `(host, path)` fetched
    /// once.
    pub fn report(&self, delay: impl Fn(SocketAddr) -> Duration, tolerance: Duration) -> LogReport {
        let log = self.log();
        let mut report = self.spacing(&log, delay, tolerance);
        let config = &self.web.config;
        let retry_after = Duration::from_secs(config.retry_after_secs);
        let limited: Vec<&Logged> = log.iter().filter(|l| l.host == "limited.sim").collect();
        for pair in limited.windows(2) {
            if pair[0].status == 429 && pair[1].at - pair[0].at < retry_after {
                report.retry_after_broken.push((pair[0].clone(), pair[1].clone()));
            }
        }
        let Some(crawl_delay) = config.crawl_delay else { return report };
        for h in (0..config.hosts).step_by(5) {
            let host = format!("h{h}.sim");
            let ip = self.ip_of(&host);
            let on_ip: Vec<&Logged> = log.iter().filter(|l| self.ip_of(&l.host) == ip).collect();
            let Some(robots) = on_ip.iter().position(|l| l.host == host && l.path == "/robots.txt")
            else {
                continue;
            };
            for pair in on_ip[robots..].windows(2).filter(|pair| pair[0].host == host) {
                if pair[1].at - pair[0].at + tolerance < crawl_delay {
                    report.crawl_delay_broken.push((pair[0].clone(), pair[1].clone()));
                }
            }
        }
        report
    }

    fn spacing(
        &self,
        log: &[Logged],
        delay: impl Fn(SocketAddr) -> Duration,
        tolerance: Duration,
    ) -> LogReport {
        let address: HashMap<&str, SocketAddr> =
            self.addresses.iter().map(|(n, a)| (n.as_str(), *a)).collect();
        let mut report = LogReport::default();
        let mut last: HashMap<SocketAddr, &Logged> = HashMap::new();
        let mut busy_until: HashMap<SocketAddr, Duration> = HashMap::new();
        let mut counts: HashMap<(String, String), usize> = HashMap::new();
        for entry in log {
            if !matches!(entry.status, 0 | 429 | 503) {
                *counts.entry((entry.host.clone(), entry.path.clone())).or_default() += 1;
            }
            let Some(addr) = address.get(entry.host.as_str()).copied() else { continue };
            let end = entry.done.unwrap_or(Duration::MAX);
            // A request never answered (the crawler gave up on it) is left
            // out: when the crawler stopped waiting is not seen from here.
            if let Some(until) = busy_until.get(&addr)
                && *until > entry.at
            {
                report.overlapping += 1;
            }
            if entry.done.is_some() {
                busy_until.insert(addr, end);
            }
            if let Some(previous) = last.insert(addr, entry) {
                let gap = entry.at.saturating_sub(previous.at);
                let want = delay(addr);
                if gap + tolerance < want {
                    report.too_close.push((previous.clone(), entry.clone(), want));
                }
            }
        }
        report.repeats = counts.into_iter().filter(|(_, n)| *n > 1).collect();
        report.repeats.sort();
        report
    }

    /// The address a host name resolves to, as an IP.
    pub fn ip_of(&self, host: &str) -> Option<IpAddr> {
        self.address_of(host).map(|a| a.ip())
    }
}
