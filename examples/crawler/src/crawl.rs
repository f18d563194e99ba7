//! The crawl loop: one task owns the frontier and hands each lease to a
//! fetch job; jobs run concurrently (robots.txt, the politeness limiter,
//! the GET, link extraction) and send back what happened; the loop turns
//! that into the host's next turn and new URLs.
//!
//! ```text
//!            ┌────────────── frontier (one owner: this loop) ◀─────────────┐
//!  next(now) │ lease                                            push links │
//!            ▼                                                             │
//!   job: robots.txt known? ──no──▶ GET /robots.txt, cache it ─▶ defer URL  │
//!        │ yes: allowed? ──no──▶ skip (the host's turn is not used)        │
//!        │ limiter admits the host's address? ──no──▶ defer by its wait    │
//!        ▼                                                                 │
//!       GET ─▶ 2xx HTML: links ─────────────────────────────────────────── ┤
//!            ─▶ 3xx: the target, one hop more ──────────────────────────── ┘
//!            ─▶ 429 / 503 / failure: retry after Retry-After or a backoff
//! ```
//!
//! In the distributed mode ([`Crawler::run_cluster`]) the frontier is fed
//! by the worker's claims of its partitions' tasks, and new links go to
//! Redis for their owners instead ([`crate::cluster`]).

use std::fmt;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use sysblocks_core::RedisConnection;
use sysblocks_sharded_counter::StripedCounter;
use tokio::sync::{mpsc, watch};
use url::Url;

use crate::cluster::{Cluster, Finish, Lost, now_ms};
use crate::fetch::{FetchConfig, FetchError, Fetcher, Links, Page, Resolver, extract_links};
use crate::frontier::{ConfigError, Entry, Frontier, FrontierConfig, Lease, Outcome, Pushed};
use crate::normalize::{normalize, resolve};
use crate::politeness::{Politeness, Shared as SharedIn};
use crate::robots::{RobotsCache, Rules, robots_url};

/// How long a stopping crawl waits for its fetches in flight.
pub const DRAIN_DEADLINE: Duration = Duration::from_secs(5);

/// How a crawl runs.
#[derive(Debug, Clone)]
pub struct CrawlConfig {
    /// The frontier's sizes, limits and delays.
    pub frontier: FrontierConfig,
    /// Each fetch's limits.
    pub fetch: FetchConfig,
    /// Fetches in flight at most (each to a different address).
    pub concurrency: usize,
    /// How long a host's robots.txt is trusted.
    pub robots_ttl: Duration,
    /// Fetch attempts of a URL at most (failures, 429 and 503 count).
    pub max_attempts: u32,
    /// Hosts that share an address share one politeness key (and turn).
    pub per_ip: bool,
    /// A file to append events to (URLs given up on, leases lost), one
    /// JSON object a line, written as they happen.
    pub events: Option<PathBuf>,
}

impl Default for CrawlConfig {
    /// The frontier's and fetcher's defaults, 256 fetches in flight,
    /// robots.txt trusted for an hour, 6 attempts, hosts grouped by
    /// address.
    fn default() -> Self {
        CrawlConfig {
            frontier: FrontierConfig::default(),
            fetch: FetchConfig::default(),
            concurrency: 256,
            robots_ttl: Duration::from_secs(3600),
            max_attempts: 6,
            per_ip: true,
            events: None,
        }
    }
}

/// A crawl that cannot start.
#[derive(Debug)]
#[non_exhaustive]
pub enum CrawlError {
    /// The frontier's configuration.
    Config(ConfigError),
    /// Another setting, with why.
    Invalid(String),
    /// The event file.
    Io(std::io::Error),
}

impl fmt::Display for CrawlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CrawlError::Config(e) => e.fmt(f),
            CrawlError::Invalid(why) => write!(f, "crawl configuration: {why}"),
            CrawlError::Io(e) => write!(f, "event file: {e}"),
        }
    }
}

impl std::error::Error for CrawlError {}

impl From<ConfigError> for CrawlError {
    fn from(e: ConfigError) -> Self {
        CrawlError::Config(e)
    }
}

/// What a crawl has done, counted as it goes (striped counters, so that
/// fetch jobs on every core count without contending).
#[derive(Debug, Default)]
pub struct Stats {
    /// Requests sent (pages and robots.txt).
    pub requests: StripedCounter,
    /// HTML pages fetched with a 2xx.
    pub pages: StripedCounter,
    /// Body bytes read.
    pub bytes: StripedCounter,
    /// Fetches without a response (timeouts, refused connections).
    pub errors: StripedCounter,
    /// Responses 4xx or 5xx.
    pub http_errors: StripedCounter,
    /// Fetches to be tried again (429, 503, failures).
    pub retries: StripedCounter,
    /// URLs given up on after their last attempt.
    pub gave_up: StripedCounter,
    /// Redirects followed (as new URLs).
    pub redirects: StripedCounter,
    /// Redirects not followed: past the hop limit.
    pub redirect_limit: StripedCounter,
    /// URLs robots.txt disallowed (never asked for).
    pub robots_denied: StripedCounter,
    /// Links not followed for `nofollow`.
    pub nofollow: StripedCounter,
    /// Links and seeds refused (not a URL, another scheme, too long).
    pub refused: StripedCounter,
    /// URLs dropped: seen before, too deep, or their host full.
    pub dropped: StripedCounter,
    /// Responses that are not HTML (not parsed).
    pub not_html: StripedCounter,
    /// Bodies cut at the size cap.
    pub truncated: StripedCounter,
    /// Turns taken elsewhere: the shared limiter said wait.
    pub deferred: StripedCounter,
    /// URLs whose lease this worker lost (another may fetch them).
    pub lost: StripedCounter,
    /// URLs in the frontier, as of the last loop.
    pub frontier: AtomicU64,
    /// Hosts with URLs queued or leased, as of the last loop.
    pub active_hosts: AtomicU64,
}

/// A crawl's totals.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    /// Requests sent.
    pub requests: u64,
    /// HTML pages fetched.
    pub pages: u64,
    /// Body bytes read.
    pub bytes: u64,
    /// Fetches without a response.
    pub errors: u64,
    /// 4xx and 5xx responses.
    pub http_errors: u64,
    /// Retries.
    pub retries: u64,
    /// URLs given up on.
    pub gave_up: u64,
    /// Redirects followed.
    pub redirects: u64,
    /// Redirects past the hop limit.
    pub redirect_limit: u64,
    /// URLs disallowed by robots.txt.
    pub robots_denied: u64,
    /// nofollow links.
    pub nofollow: u64,
    /// Refused links and seeds.
    pub refused: u64,
    /// Dropped URLs (seen, too deep, host full).
    pub dropped: u64,
    /// Non-HTML responses.
    pub not_html: u64,
    /// Truncated bodies.
    pub truncated: u64,
    /// Deferred turns.
    pub deferred: u64,
    /// Lost leases.
    pub lost: u64,
    /// How long the crawl took, in milliseconds.
    pub elapsed_ms: u64,
}

impl Stats {
    /// The totals now.
    pub fn summary(&self, elapsed: Duration) -> Summary {
        let n = |c: &StripedCounter| u64::try_from(c.sum()).unwrap_or(0);
        Summary {
            requests: n(&self.requests),
            pages: n(&self.pages),
            bytes: n(&self.bytes),
            errors: n(&self.errors),
            http_errors: n(&self.http_errors),
            retries: n(&self.retries),
            gave_up: n(&self.gave_up),
            redirects: n(&self.redirects),
            redirect_limit: n(&self.redirect_limit),
            robots_denied: n(&self.robots_denied),
            nofollow: n(&self.nofollow),
            refused: n(&self.refused),
            dropped: n(&self.dropped),
            not_html: n(&self.not_html),
            truncated: n(&self.truncated),
            deferred: n(&self.deferred),
            lost: n(&self.lost),
            elapsed_ms: u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
        }
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.elapsed_ms as f64 / 1000.0;
        writeln!(
            f,
            "{} pages ({} requests, {:.1} MB) in {secs:.2} s: {:.0} pages/s",
            self.pages,
            self.requests,
            self.bytes as f64 / 1e6,
            self.pages as f64 / secs.max(1e-9)
        )?;
        writeln!(
            f,
            "  http errors {}, no response {}, retries {}, given up {}",
            self.http_errors, self.errors, self.retries, self.gave_up
        )?;
        writeln!(
            f,
            "  redirects {} (over the hop limit {}), not HTML {}, cut at the size cap {}",
            self.redirects, self.redirect_limit, self.not_html, self.truncated
        )?;
        write!(
            f,
            "  skipped: robots.txt {}, nofollow {}, refused URLs {}, seen/too deep/host full {}",
            self.robots_denied, self.nofollow, self.refused, self.dropped
        )
    }
}

/// Seeds from a list: one URL a line; blank lines and `#` comments are
/// skipped; a line that is not a crawlable URL is returned with why.
pub fn parse_seeds(text: &str, config: &FrontierConfig) -> (Vec<Url>, Vec<(usize, String)>) {
    let mut seeds = Vec::new();
    let mut junk = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match normalize(line, &config.limits) {
            Ok(url) => seeds.push(url),
            Err(why) => junk.push((n + 1, format!("{why}"))),
        }
    }
    (seeds, junk)
}

/// What a fetch job found.
enum Done {
    /// The host's robots.txt became known: fetched now (`wait` is `None`:
    /// the URL waits for the host's next turn), or read from the shared
    /// store (the URL waits `wait`, what is left of the delay after that
    /// fetch).
    Robots { lease: Lease, rules: Arc<Rules>, wait: Option<Duration> },
    /// robots.txt disallows the URL.
    Disallowed { lease: Lease },
    /// robots.txt could not be had (no answer, 5xx, 429), and this was
    /// not the URL's last attempt: the host backs off, then asks again.
    RobotsUnavailable { lease: Lease, why: String },
    /// The shared limiter says the host's turn is not yet.
    Wait { lease: Lease, wait: Duration },
    /// A response.
    Fetched { lease: Lease, url: Box<Url>, page: Box<Page>, links: Option<Links> },
    /// No response.
    Failed { lease: Lease, error: FetchError },
    /// Nothing can be done with the URL (it does not parse, the host does
    /// not resolve).
    Unusable { lease: Lease, why: String },
}

impl Done {
    fn lease(&self) -> &Lease {
        match self {
            Done::Robots { lease, .. }
            | Done::Disallowed { lease }
            | Done::RobotsUnavailable { lease, .. }
            | Done::Wait { lease, .. }
            | Done::Fetched { lease, .. }
            | Done::Failed { lease, .. }
            | Done::Unusable { lease, .. } => lease,
        }
    }
}

struct Shared {
    config: CrawlConfig,
    /// What the workers of a distributed crawl share besides the limits,
    /// under the crawl's prefix: robots.txt files (`robots:{origin}`: the
    /// status, when it was fetched, the body), so that a worker taking a
    /// host over does not fetch its robots.txt again.
    shared_redis: Option<(RedisConnection, String)>,
    fetcher: Fetcher,
    resolver: Arc<Resolver>,
    robots: RobotsCache,
    politeness: Politeness,
    stats: Arc<Stats>,
}

/// A crawler: configure it, then run it once, alone or as one worker of a
/// distributed crawl.
pub struct Crawler {
    shared: Arc<Shared>,
    events: Option<Mutex<std::fs::File>>,
}

impl fmt::Debug for Crawler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Crawler").field("config", &self.shared.config).finish_non_exhaustive()
    }
}

impl Crawler {
    /// A crawler with `config`, resolving names with `resolver` and asking
    /// `politeness` before each request.
    ///
    /// # Errors
    /// A bad configuration, or an event file that cannot be opened.
    pub fn new(
        config: CrawlConfig,
        resolver: Arc<Resolver>,
        shared: SharedIn,
    ) -> Result<Crawler, CrawlError> {
        if config.concurrency == 0 || config.max_attempts == 0 {
            return Err(CrawlError::Invalid(format!(
                "concurrency ({}) and max_attempts ({}) must be at least 1",
                config.concurrency, config.max_attempts
            )));
        }
        if config.fetch.max_body == 0 {
            return Err(CrawlError::Invalid("max_body must be at least 1 byte".into()));
        }
        let robots = RobotsCache::new(100_000, config.robots_ttl).map_err(CrawlError::Invalid)?;
        let events = match &config.events {
            Some(path) => Some(Mutex::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(CrawlError::Io)?,
            )),
            None => None,
        };
        let shared_redis = match &shared {
            SharedIn::Local => None,
            SharedIn::Redis(connection, prefix) => Some((connection.clone(), prefix.clone())),
        };
        let shared = Shared {
            politeness: Politeness::new(shared),
            shared_redis,
            fetcher: Fetcher::new(config.fetch.clone()),
            config,
            resolver,
            robots,
            stats: Arc::default(),
        };
        Ok(Crawler { shared: Arc::new(shared), events })
    }

    /// The live counters (for a progress bar).
    pub fn stats(&self) -> Arc<Stats> {
        Arc::clone(&self.shared.stats)
    }

    /// Crawls from `seeds` in this process until nothing is left or `stop`
    /// turns true.
    ///
    /// # Errors
    /// A bad frontier configuration.
    pub async fn run_local(
        &self,
        seeds: &[Url],
        stop: watch::Receiver<bool>,
    ) -> Result<Summary, CrawlError> {
        let mut frontier = Frontier::new(self.shared.config.frontier.clone())?;
        let mut run = Run::new(self, None);
        for seed in seeds {
            let entry = run.entry(seed, 0, 0);
            run.offer(&mut frontier, entry);
        }
        run.go(&mut frontier, stop).await;
        Ok(self.shared.stats.summary(run.start.elapsed()))
    }

    /// Crawls as one worker of the distributed crawl that `cluster` joined:
    /// `seeds` are submitted (once per crawl, whoever submits them), then
    /// the worker fetches its partitions' URLs until the crawl is over or
    /// `stop` turns true (its leases are then given back).
    ///
    /// # Errors
    /// A bad frontier configuration.
    pub async fn run_cluster(
        &self,
        cluster: Cluster,
        seeds: &[Url],
        stop: watch::Receiver<bool>,
    ) -> Result<Summary, CrawlError> {
        let mut frontier = Frontier::new(self.shared.config.frontier.clone())?;
        let mut run = Run::new(self, Some(cluster));
        for seed in seeds {
            let entry = run.entry(seed, 0, 0);
            run.offer(&mut frontier, entry);
        }
        run.go(&mut frontier, stop).await;
        if let Some(cluster) = run.cluster.as_mut() {
            cluster.leave().await;
        }
        Ok(self.shared.stats.summary(run.start.elapsed()))
    }

    fn event(&self, kind: &str, url: &str) {
        if let Some(file) = &self.events
            && let Ok(mut file) = file.lock()
        {
            let line = serde_json::json!({ "event": kind, "url": url, "at_ms": now_ms() });
            let _ = writeln!(file, "{line}");
        }
    }
}

/// One run's state: the loop's own, not shared with the jobs.
struct Run<'a> {
    crawler: &'a Crawler,
    cluster: Option<Cluster>,
    start: Instant,
    rng: SmallRng,
    inflight: usize,
    tx: mpsc::UnboundedSender<Done>,
    rx: mpsc::UnboundedReceiver<Done>,
}

impl<'a> Run<'a> {
    fn new(crawler: &'a Crawler, cluster: Option<Cluster>) -> Run<'a> {
        let (tx, rx) = mpsc::unbounded_channel();
        let seed = now_ms() ^ u64::from(std::process::id());
        Run {
            crawler,
            cluster,
            start: Instant::now(),
            rng: SmallRng::seed_from_u64(seed),
            inflight: 0,
            tx,
            rx,
        }
    }

    fn shared(&self) -> &Shared {
        &self.crawler.shared
    }

    /// Ends this worker's turn of `key` in Redis (distributed only): no
    /// other worker asks it before `wait` has passed.
    fn end_turn(&self, key: &Arc<str>, wait: Duration) {
        if self.cluster.is_none() {
            return;
        }
        let (shared, key) = (Arc::clone(&self.crawler.shared), Arc::clone(key));
        tokio::spawn(async move { shared.politeness.end_turn(&key, wait).await });
    }

    fn now(&self) -> Duration {
        self.start.elapsed()
    }

    /// An entry for `url`, keyed by its host's address when hosts are
    /// grouped by address and the address is known.
    fn entry(&self, url: &Url, depth: u32, hops: u32) -> Entry {
        let mut entry = Entry::new(url, depth, 0);
        entry.hops = hops;
        if self.shared().config.per_ip
            && let Some(ip) = self.shared().resolver.known_ip(url)
        {
            entry.key = ip.to_string().into();
        }
        entry
    }

    /// A URL found: into this frontier, or (distributed) to its owner.
    fn offer(&mut self, frontier: &mut Frontier, entry: Entry) {
        let stats = &self.crawler.shared.stats;
        let pushed = match self.cluster.as_mut() {
            None => frontier.push_entry(entry),
            Some(cluster) => match frontier.admit(&entry.url, entry.depth) {
                Pushed::Queued => match cluster.submit(&entry) {
                    Ok(()) => Pushed::Queued,
                    Err(_) => Pushed::Refused(crate::normalize::Refused::TooLong(entry.url.len())),
                },
                other => other,
            },
        };
        match pushed {
            Pushed::Queued => {}
            Pushed::Refused(_) => stats.refused.add(1),
            Pushed::Seen | Pushed::TooDeep | Pushed::HostFull => stats.dropped.add(1),
        }
    }

    async fn go(&mut self, frontier: &mut Frontier, mut stop: watch::Receiver<bool>) {
        let concurrency = self.shared().config.concurrency;
        let mut lost = Lost::default();
        let mut next_sync = Instant::now();
        let mut next_end_check = Instant::now();
        loop {
            if *stop.borrow() {
                break;
            }
            // Hand out every turn that has come.
            while self.inflight < concurrency {
                let now = self.now();
                let Some(lease) = frontier.next(now) else { break };
                if let Some(cluster) = self.cluster.as_mut() {
                    if !cluster.holds(&lease.entry.url) {
                        // Its lease was lost or its partition given up.
                        frontier.complete(&lease, now, Outcome::Skipped);
                        continue;
                    }
                    cluster.started(&lease.entry.url);
                }
                let delay = frontier.delay_of(&lease.host);
                self.inflight += 1;
                let shared = Arc::clone(&self.crawler.shared);
                let tx = self.tx.clone();
                tokio::spawn(async move {
                    let done = job(&shared, lease, delay).await;
                    let _ = tx.send(done);
                });
            }
            let stats = &self.crawler.shared.stats;
            stats.frontier.store(frontier.len() as u64, Ordering::Relaxed);
            stats.active_hosts.store(frontier.active_hosts() as u64, Ordering::Relaxed);
            let idle = self.inflight == 0 && frontier.is_empty();
            match self.cluster.as_mut() {
                None if idle => break,
                None => {}
                Some(cluster) => {
                    if Instant::now() >= next_sync {
                        cluster.sync(frontier, &mut lost).await;
                        next_sync = Instant::now() + Duration::from_millis(50);
                        for url in lost.urls.drain(..) {
                            stats.lost.add(1);
                            self.crawler.event("lost", &url);
                        }
                    }
                    if idle && cluster.held() == 0 && Instant::now() >= next_end_check {
                        next_end_check = Instant::now() + Duration::from_millis(300);
                        if cluster.crawl_is_over().await.unwrap_or(false) {
                            break;
                        }
                    }
                }
            }
            let wake = match frontier.next_ready_at() {
                Some(at) if self.inflight < concurrency => self.start + at,
                _ => Instant::now() + Duration::from_secs(3600),
            };
            let wake = if self.cluster.is_some() { wake.min(next_sync) } else { wake };
            tokio::select! {
                done = self.rx.recv() => {
                    if let Some(done) = done {
                        self.handle(frontier, done);
                    }
                    while let Ok(done) = self.rx.try_recv() {
                        self.handle(frontier, done);
                    }
                }
                () = tokio::time::sleep_until(wake.into()) => {}
                _ = stop.changed() => {}
            }
        }
        // Stopped (or over): fetches in flight finish, within a deadline,
        // so that what they fetched is counted and acknowledged rather
        // than fetched again by another worker.
        let deadline = Instant::now() + DRAIN_DEADLINE;
        while self.inflight > 0 {
            match tokio::time::timeout_at(deadline.into(), self.rx.recv()).await {
                Ok(Some(done)) => self.handle(frontier, done),
                _ => break,
            }
        }
        if let Some(cluster) = self.cluster.as_mut() {
            cluster.flush(&mut lost).await;
        }
    }

    fn handle(&mut self, frontier: &mut Frontier, done: Done) {
        self.inflight -= 1;
        if let Some(cluster) = self.cluster.as_mut() {
            cluster.stopped(&done.lease().entry.url);
        }
        let now = self.now();
        let stats = Arc::clone(&self.crawler.shared.stats);
        let max_attempts = self.shared().config.max_attempts;
        match done {
            Done::Robots { lease, rules, wait } => {
                if let Some(delay) = rules.crawl_delay() {
                    let current = frontier.delay_of(&lease.host);
                    frontier.set_delay(&lease.host, Some(delay.max(current)));
                }
                let wait = match wait {
                    Some(wait) => wait,
                    None => {
                        let delay = frontier.delay_of(&lease.host);
                        self.end_turn(&lease.host, delay);
                        delay
                    }
                };
                frontier.defer(lease, now, wait);
            }
            Done::Disallowed { lease } => {
                stats.robots_denied.add(1);
                frontier.complete(&lease, now, Outcome::Skipped);
                self.finish(&lease, Finish::Done);
            }
            Done::Wait { lease, wait } => {
                stats.deferred.add(1);
                frontier.defer(lease, now, wait);
            }
            Done::Unusable { lease, why } => {
                stats.gave_up.add(1);
                frontier.complete(&lease, now, Outcome::Skipped);
                self.crawler.event("gave_up", &lease.entry.url);
                self.finish(&lease, Finish::GiveUp(why));
            }
            Done::RobotsUnavailable { lease, why } => {
                stats.errors.add(1);
                let jitter = self.rng.random::<f64>();
                self.again(frontier, lease, Outcome::Backoff { jitter }, max_attempts, why);
            }
            Done::Failed { lease, error } => {
                stats.errors.add(1);
                tracing::debug!(url = %lease.entry.url, %error, "no response");
                let jitter = self.rng.random::<f64>();
                let attempts = if error.is_retryable() { max_attempts } else { 0 };
                self.again(
                    frontier,
                    lease,
                    Outcome::Backoff { jitter },
                    attempts,
                    error.to_string(),
                );
            }
            Done::Fetched { lease, url, page, links } => {
                stats.bytes.add(page.body.len() as i64);
                if page.truncated {
                    stats.truncated.add(1);
                }
                let status = page.status;
                if status == 429 || status >= 500 {
                    stats.http_errors.add(1);
                    let outcome = match page.retry_after {
                        Some(wait) if status == 429 || status == 503 => Outcome::RetryAfter(wait),
                        _ => Outcome::Backoff { jitter: self.rng.random::<f64>() },
                    };
                    self.again(
                        frontier,
                        lease,
                        outcome,
                        max_attempts,
                        format!("answered {status}"),
                    );
                    return;
                }
                let wait = frontier.complete(&lease, now, Outcome::Done);
                self.end_turn(&lease.host, wait);
                if let Some(location) = page.redirect() {
                    self.redirect(frontier, &lease, &url, location);
                } else if (200..300).contains(&status) {
                    if page.is_html() {
                        stats.pages.add(1);
                    } else {
                        stats.not_html.add(1);
                    }
                } else if status >= 400 {
                    stats.http_errors.add(1);
                }
                if let Some(links) = links {
                    stats.nofollow.add(links.nofollow as i64);
                    stats.refused.add(links.refused.len() as i64);
                    let depth = lease.entry.depth + 1;
                    for link in &links.follow {
                        let entry = self.entry(link, depth, 0);
                        self.offer(frontier, entry);
                    }
                }
                self.finish(&lease, Finish::Done);
            }
        }
    }

    fn redirect(&mut self, frontier: &mut Frontier, lease: &Lease, from: &Url, location: &str) {
        let stats = Arc::clone(&self.crawler.shared.stats);
        let limits = self.shared().config.frontier.limits;
        let hops = lease.entry.hops + 1;
        if hops > self.shared().config.fetch.max_redirects {
            stats.redirect_limit.add(1);
            return;
        }
        match resolve(from, location, &limits) {
            Ok(target) => {
                stats.redirects.add(1);
                let entry = self.entry(&target, lease.entry.depth, hops);
                self.offer(frontier, entry);
            }
            Err(_) => stats.refused.add(1),
        }
    }

    /// A fetch to try again, unless that was its last attempt.
    fn again(
        &mut self,
        frontier: &mut Frontier,
        lease: Lease,
        outcome: Outcome,
        max_attempts: u32,
        why: String,
    ) {
        let now = self.now();
        let stats = Arc::clone(&self.crawler.shared.stats);
        let last = lease.entry.attempts + 1 >= max_attempts.max(1);
        let wait = match self.cluster.as_mut() {
            None if !last => frontier.retry(lease.clone(), now, outcome),
            _ => frontier.complete(&lease, now, outcome),
        };
        self.end_turn(&lease.host, wait);
        if last {
            stats.gave_up.add(1);
            self.crawler.event("gave_up", &lease.entry.url);
            self.finish(&lease, Finish::GiveUp(why));
            return;
        }
        stats.retries.add(1);
        if let Some(cluster) = self.cluster.as_mut() {
            // The URL goes back to Redis, due when the host's turn comes;
            // its owner (this worker, unless the ring changed) claims it
            // again then.
            let at = now_ms() + u64::try_from(wait.as_millis()).unwrap_or(u64::MAX);
            cluster.finish(&lease.entry.url, Finish::RetryAt(at));
        }
    }

    fn finish(&mut self, lease: &Lease, finish: Finish) {
        if let Some(cluster) = self.cluster.as_mut() {
            cluster.finish(&lease.entry.url, finish);
        }
    }
}

/// One lease's work, off the loop.
async fn job(shared: &Shared, lease: Lease, delay: Duration) -> Done {
    let Ok(url) = Url::parse(&lease.entry.url) else {
        return Done::Unusable { why: format!("{:?} does not parse", lease.entry.url), lease };
    };
    let address = match shared.resolver.resolve(&url).await {
        Ok(address) => address,
        Err(error) => return Done::Unusable { why: error.to_string(), lease },
    };
    let Some(rules) = shared.robots.get(&url) else {
        return robots(shared, lease, &url, address, delay).await;
    };
    if !rules.allows(&url) {
        return Done::Disallowed { lease };
    }
    if let Some(wait) = admit(shared, &lease, delay).await {
        return Done::Wait { lease, wait };
    }
    shared.stats.requests.add(1);
    match shared.fetcher.get(&url, address, false).await {
        Ok(page) => {
            let links = ((200..300).contains(&page.status) && page.is_html())
                .then(|| extract_links(&url, &page.body, &shared.config.frontier.limits));
            Done::Fetched { lease, url: Box::new(url), page: Box::new(page), links }
        }
        Err(error) => Done::Failed { lease, error },
    }
}

/// The robots.txt of the lease's host: from the crawl's shared store if
/// another worker fetched it, else fetched now, in the host's turn.
async fn robots(
    shared: &Shared,
    lease: Lease,
    url: &Url,
    address: SocketAddr,
    delay: Duration,
) -> Done {
    let agent = shared.config.fetch.user_agent.split('/').next().unwrap_or("*");
    let origin = crate::robots::origin_of(url);
    if let Some((connection, prefix)) = &shared.shared_redis {
        let get = redis::cmd("GET").arg(format!("{prefix}robots:{origin}")).clone();
        if let Ok(Some(stored)) = connection.run::<Option<Vec<u8>>>(&get).await
            && let Some((status, fetched_at, body)) = split_stored(&stored)
        {
            let rules = Rules::from_parts(agent, status, body);
            // The fetch of robots.txt was a request: the host's next one
            // waits the delay robots.txt asks for, counted from it.
            let delay = rules.crawl_delay().unwrap_or_default().max(delay);
            let next = fetched_at + u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
            let wait = Duration::from_millis(next.saturating_sub(now_ms()));
            let rules = shared.robots.insert(url, rules);
            return Done::Robots { rules, lease, wait: Some(wait) };
        }
    }
    if let Some(wait) = admit(shared, &lease, delay).await {
        return Done::Wait { lease, wait };
    }
    shared.stats.requests.add(1);
    let response = shared.fetcher.get(&robots_url(url), address, true).await;
    let (status, body) = match &response {
        Ok(page) => {
            (page.status, &page.body[..page.body.len().min(crate::robots::MAX_ROBOTS_BYTES)])
        }
        Err(_) => (0, &[][..]),
    };
    let rules = Rules::from_response(agent, response.as_ref());
    if let Rules::DisallowAll(why) = &rules {
        let host = url.host_str().unwrap_or("");
        if lease.entry.attempts + 1 < shared.config.max_attempts {
            // Maybe a passing failure: asked again after a backoff, and
            // nothing is remembered until the last attempt.
            tracing::info!(host, why, "robots.txt unavailable: asking again later");
            return Done::RobotsUnavailable { why: why.clone(), lease };
        }
        tracing::info!(host, why, "robots.txt unavailable: the host is skipped");
    }
    if let Some((connection, prefix)) = &shared.shared_redis {
        let mut stored = format!("{status} {}\n", now_ms()).into_bytes();
        stored.extend_from_slice(body);
        let ttl = u64::try_from(shared.config.robots_ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let set = redis::cmd("SET")
            .arg(format!("{prefix}robots:{origin}"))
            .arg(stored)
            .arg("PX")
            .arg(ttl)
            .clone();
        if let Err(error) = connection.run::<()>(&set).await {
            tracing::warn!(%error, "could not share a robots.txt");
        }
    }
    Done::Robots { rules: shared.robots.insert(url, rules), lease, wait: None }
}

/// A shared robots.txt: a line with its status and when it was fetched
/// (ms since the epoch), then its body.
fn split_stored(stored: &[u8]) -> Option<(u16, u64, &[u8])> {
    let newline = stored.iter().position(|b| *b == b'\n')?;
    let line = std::str::from_utf8(&stored[..newline]).ok()?;
    let (status, at) = line.split_once(' ')?;
    Some((status.parse().ok()?, at.parse().ok()?, &stored[newline + 1..]))
}

/// Asks the politeness limiter for the lease's key: `None` to go ahead.
async fn admit(shared: &Shared, lease: &Lease, delay: Duration) -> Option<Duration> {
    // The key's turn (across workers) for as long as a fetch may take,
    // then the limiter's say.
    let hold = shared.config.fetch.total_timeout + delay;
    if let Some(wait) = shared.politeness.take_turn(&lease.host, hold).await {
        return Some(wait);
    }
    match shared.politeness.check(&lease.host, delay).await {
        Ok(None) => None,
        Ok(Some(wait)) => {
            shared.politeness.end_turn(&lease.host, wait).await;
            Some(wait)
        }
        Err(error) => {
            tracing::warn!(%error, "politeness limiter failed; the frontier's spacing holds");
            None
        }
    }
}
