//! The URL frontier, after Mercator (Heydon and Najork, 1999): what to
//! fetch next, never two requests at once to one host, and never a host
//! again before its delay has passed.
//!
//! ```text
//!  push(url, depth, priority)
//!    │ normalise ─ seen? (Bloom filter) ─ too deep? host full?
//!    ▼
//!  front queues, one per priority (0 first)
//!    │ refill: while fewer than `active_hosts` hosts have a back queue,
//!    │ the best front entry goes to its host's back queue
//!    ▼
//!  back queues, one per active host (FIFO)
//!    │ a heap of (next allowed time, host): the host whose turn comes first
//!    ▼
//!  next(now) ─▶ a lease on one URL; the host is busy until complete(...)
//!  complete(lease, now, outcome) ─▶ next allowed = now + its delay
//! ```
//!
//! Time is passed in (a `Duration` since any fixed start), so the rules are
//! tested without a clock. Entries for a host that already has a back queue
//! join it directly, so a busy host's URLs wait there rather than blocking
//! the front queues.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use fastbloom::BloomFilter;
use url::Url;

use crate::normalize::{Limits, Refused, normalize};

/// How the frontier is sized and what it refuses.
#[derive(Debug, Clone, PartialEq)]
pub struct FrontierConfig {
    /// URLs the seen-filter is sized for.
    pub expected_urls: usize,
    /// The seen-filter's false positive rate at that many URLs (a false
    /// positive skips a URL never seen).
    pub false_positive_rate: f64,
    /// Links deeper than this from a seed are not followed.
    pub max_depth: u32,
    /// URLs taken per host, at most (a trap cannot hold the crawl forever).
    pub max_pages_per_host: u32,
    /// Front queues: priorities 0 (first) to `priorities - 1`.
    pub priorities: usize,
    /// Hosts with a back queue at once (Mercator: about three per fetcher).
    pub active_hosts: usize,
    /// A host's delay between two requests unless told otherwise.
    pub default_delay: Duration,
    /// The first backoff of a host that answered 429 or 503 without
    /// `Retry-After`; each further one doubles, up to `max_wait`.
    pub first_backoff: Duration,
    /// The longest wait a server can ask for, and the backoff's cap.
    pub max_wait: Duration,
    /// URL limits.
    pub limits: Limits,
}

impl Default for FrontierConfig {
    /// Sized for a million URLs at 1 in 10,000 false positives; depth 16,
    /// 10,000 pages per host, 4 priorities, 300 active hosts, 1 s between
    /// requests to a host (StormCrawler's default), backoff from a minute
    /// to a day.
    fn default() -> Self {
        FrontierConfig {
            expected_urls: 1_000_000,
            false_positive_rate: 1e-4,
            max_depth: 16,
            max_pages_per_host: 10_000,
            priorities: 4,
            active_hosts: 300,
            default_delay: Duration::from_secs(1),
            first_backoff: FIRST_BACKOFF,
            max_wait: MAX_WAIT,
            limits: Limits::default(),
        }
    }
}

/// A configuration that cannot work.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "frontier configuration: {}", self.0)
    }
}

impl std::error::Error for ConfigError {}

/// A URL waiting in the frontier. The URL is kept as text (a parsed `Url`
/// is three times the size), since most entries wait far longer than they
/// are used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The normalised URL.
    pub url: Box<str>,
    /// Its politeness key: the host, or the address that several hosts
    /// share (shared between the entries of one key).
    pub key: Arc<str>,
    /// Links followed from a seed to reach it (seeds are 0).
    pub depth: u32,
    /// Redirects followed to reach it (a redirect is a new URL in the
    /// frontier, so that it waits for its host's turn like any other).
    pub hops: u32,
    /// Fetch attempts made so far (failed fetches, 429 and 503).
    pub attempts: u32,
    /// Its front queue (0 first).
    pub priority: usize,
}

impl Entry {
    /// An entry for `url` whose politeness key is its host.
    pub fn new(url: &Url, depth: u32, priority: usize) -> Entry {
        Entry {
            url: url.as_str().into(),
            key: host_of(url).into(),
            depth,
            hops: 0,
            attempts: 0,
            priority,
        }
    }

    /// The URL's host (the text between `://` and the next `/`, `:`, `?`
    /// or `#` of a normalised URL).
    pub fn host(&self) -> &str {
        host_part(&self.url)
    }
}

/// The host of a normalised URL's text.
fn host_part(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let end = rest.find(['/', ':', '?', '#']).unwrap_or(rest.len());
    &rest[..end]
}

/// What [`Frontier::push`] did with a URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pushed {
    /// Queued.
    Queued,
    /// Seen before (or a false positive of the seen-filter).
    Seen,
    /// Deeper than `max_depth`.
    TooDeep,
    /// Its host has had `max_pages_per_host` URLs already.
    HostFull,
    /// Not crawlable (see the reason).
    Refused(Refused),
}

/// One URL handed out: its host is busy until the lease is completed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The politeness key: the URL's host (or the address its hosts share).
    pub host: Arc<str>,
    /// The URL.
    pub entry: Entry,
}

/// How a fetch went, for the host's next turn.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Outcome {
    /// Fetched (any status but the two below): the host's delay applies.
    Done,
    /// Nothing was sent to the host (robots.txt disallowed the URL, say):
    /// its next turn stays when it was.
    Skipped,
    /// The server said when to come back (`Retry-After`), at most a day.
    RetryAfter(Duration),
    /// 429 or 503 without `Retry-After`, or the connection failed: back off,
    /// `first_backoff` (60 s by default) doubling up to `max_wait` (a day):
    /// StormCrawler's rule; `jitter` in [0, 1) spreads hosts that failed
    /// together.
    Backoff {
        /// A random fraction of the backoff added to it.
        jitter: f64,
    },
}

/// The default longest wait a server can ask for (StormCrawler's cap).
pub const MAX_WAIT: Duration = Duration::from_secs(24 * 3600);
/// The default first backoff of a failing host.
pub const FIRST_BACKOFF: Duration = Duration::from_secs(60);

/// Per-host state, kept while the host has URLs queued or leased.
#[derive(Debug, Default)]
struct Host {
    queue: VecDeque<Entry>,
    next_allowed: Duration,
    busy: bool,
    delay: Option<Duration>,
    backoff: Option<Duration>,
}

/// The frontier. See the module docs.
pub struct Frontier {
    config: FrontierConfig,
    seen: BloomFilter,
    /// URLs handed over by a distributed queue (made on first use), so
    /// that one handed over again is not counted twice against its host.
    claimed: Option<BloomFilter>,
    front: Vec<VecDeque<Entry>>,
    /// Hosts with a back queue (queued or leased URLs).
    active: HashMap<Arc<str>, Host>,
    /// URLs taken per host name, ever (for `max_pages_per_host`).
    taken: HashMap<Box<str>, u32>,
    /// Delays set for politeness keys (robots.txt), kept when they go
    /// inactive.
    delays: HashMap<String, Duration>,
    /// When an inactive host may be asked again, and its backoff: a host
    /// that leaves the back queues keeps its turn (its URLs may still be
    /// waiting in the front queues).
    resting: HashMap<Arc<str>, (Duration, Option<Duration>)>,
    /// (next allowed, order, host) of every active host that is not busy
    /// and has URLs.
    ready: BinaryHeap<Reverse<(Duration, u64, Arc<str>)>>,
    order: u64,
    queued: usize,
}

impl std::fmt::Debug for Frontier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Frontier")
            .field("queued", &self.queued)
            .field("active_hosts", &self.active.len())
            .finish_non_exhaustive()
    }
}

/// When a host may be asked again after a fetch that ended at `now`.
fn next_turn(
    (default, first, cap): (Duration, Duration, Duration),
    state: &mut Host,
    now: Duration,
    outcome: Outcome,
) -> Duration {
    match outcome {
        Outcome::Done => {
            state.backoff = None;
            now.saturating_add(state.delay.unwrap_or(default))
        }
        Outcome::Skipped => state.next_allowed,
        Outcome::RetryAfter(d) => now.saturating_add(d.min(cap)),
        Outcome::Backoff { jitter } => {
            let base = state.backoff.map_or(first, |b| (b * 2).min(cap));
            state.backoff = Some(base);
            let extra = base.mul_f64(jitter.clamp(0.0, 1.0));
            now.saturating_add((base + extra).min(cap))
        }
    }
}

/// The politeness key of a URL: its host, lowercased by normalisation.
pub fn host_of(url: &Url) -> String {
    url.host_str().unwrap_or("").to_owned()
}

impl Frontier {
    /// An empty frontier.
    ///
    /// # Errors
    /// No priority, no active host, no expected URL, or a false positive
    /// rate outside (0, 1).
    pub fn new(config: FrontierConfig) -> Result<Frontier, ConfigError> {
        if config.first_backoff.is_zero() || config.max_wait < config.first_backoff {
            return Err(ConfigError(format!(
                "first_backoff ({:?}) must be above zero and at most max_wait ({:?})",
                config.first_backoff, config.max_wait
            )));
        }
        if config.priorities == 0 || config.active_hosts == 0 || config.expected_urls == 0 {
            return Err(ConfigError(
                "priorities, active_hosts and expected_urls must be at least 1".into(),
            ));
        }
        if !(config.false_positive_rate > 0.0 && config.false_positive_rate < 1.0) {
            return Err(ConfigError(format!(
                "false_positive_rate {} must be between 0 and 1",
                config.false_positive_rate
            )));
        }
        let seen = BloomFilter::with_false_pos(config.false_positive_rate)
            .expected_items(config.expected_urls);
        let front = (0..config.priorities).map(|_| VecDeque::new()).collect();
        Ok(Frontier {
            config,
            seen,
            claimed: None,
            front,
            active: HashMap::new(),
            taken: HashMap::new(),
            delays: HashMap::new(),
            resting: HashMap::new(),
            ready: BinaryHeap::new(),
            order: 0,
            queued: 0,
        })
    }

    /// URLs queued (front and back queues), not counting leased ones.
    pub fn len(&self) -> usize {
        self.queued
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.queued == 0
    }

    /// Hosts with URLs queued or leased.
    pub fn active_hosts(&self) -> usize {
        self.active.len()
    }

    /// Offers a URL (text, normalised here) at `depth` with `priority`
    /// (clamped to the last front queue).
    pub fn push(&mut self, url: &str, depth: u32, priority: usize) -> Pushed {
        match normalize(url, &self.config.limits) {
            Ok(url) => self.push_url(url, depth, priority),
            Err(refused) => Pushed::Refused(refused),
        }
    }

    /// [`push`](Self::push) for a URL normalised already; its politeness
    /// key is its host.
    pub fn push_url(&mut self, url: Url, depth: u32, priority: usize) -> Pushed {
        self.push_entry(Entry::new(&url, depth, priority))
    }

    /// Offers an entry whose politeness key the caller chose (the address
    /// its host resolves to, so that hosts sharing an address share a
    /// turn): [`admit`](Self::admit), then [`enqueue`](Self::enqueue).
    pub fn push_entry(&mut self, entry: Entry) -> Pushed {
        match self.admit(&entry.url, entry.depth) {
            Pushed::Queued => self.enqueue(entry),
            other => other,
        }
    }

    /// Whether the seen-filter holds `url` (a false positive now and then,
    /// at the configured rate), changing nothing.
    pub fn has_seen(&self, url: &str) -> bool {
        self.seen.contains(url)
    }

    /// The first half of a push: refuses a URL deeper than `max_depth` or
    /// seen before, and marks it seen. Returns [`Pushed::Queued`] when the
    /// URL is new (a distributed crawler then sends it to the worker that
    /// owns its host, whose frontier [`enqueue`](Self::enqueue)s it).
    pub fn admit(&mut self, url: &str, depth: u32) -> Pushed {
        if depth > self.config.max_depth {
            return Pushed::TooDeep;
        }
        if self.seen.contains(url) {
            return Pushed::Seen;
        }
        self.seen.insert(url);
        Pushed::Queued
    }

    /// Queues a URL handed over by a distributed queue (its task claimed
    /// by this worker), without asking the seen-filter, unless its host has
    /// had `max_pages_per_host` URLs. A URL handed over again (its lease
    /// came back to this worker) queues again but does not count again.
    pub fn enqueue_claimed(&mut self, entry: Entry) -> Pushed {
        let (expected, rate) = (self.config.expected_urls, self.config.false_positive_rate);
        let claimed = self
            .claimed
            .get_or_insert_with(|| BloomFilter::with_false_pos(rate).expected_items(expected));
        if claimed.contains(&*entry.url) {
            self.queue(entry);
            return Pushed::Queued;
        }
        claimed.insert(&*entry.url);
        self.enqueue(entry)
    }

    /// The second half of a push: queues an entry without asking the
    /// seen-filter, unless its host has had `max_pages_per_host` URLs.
    pub fn enqueue(&mut self, entry: Entry) -> Pushed {
        let host = entry.host();
        match self.taken.get_mut(host) {
            Some(n) if *n >= self.config.max_pages_per_host => return Pushed::HostFull,
            Some(n) => *n += 1,
            None => {
                self.taken.insert(host.into(), 1);
            }
        }
        self.queue(entry);
        Pushed::Queued
    }

    fn queue(&mut self, entry: Entry) {
        let priority = entry.priority.min(self.config.priorities - 1);
        let entry = Entry { priority, ..entry };
        self.queued += 1;
        // A host with a back queue takes the entry there; else it waits in
        // its front queue.
        if let Err(entry) = self.join_back_queue(entry) {
            self.front[priority].push_back(entry);
        }
    }

    /// Sets a politeness key's delay between requests (a robots.txt
    /// crawl-delay, capped by the caller); `None` goes back to the default.
    pub fn set_delay(&mut self, host: &str, delay: Option<Duration>) {
        match delay {
            Some(d) => self.delays.insert(host.to_owned(), d),
            None => self.delays.remove(host),
        };
        if let Some(state) = self.active.get_mut(host) {
            state.delay = delay;
        }
    }

    /// The next URL whose host's turn has come by `now`, if any.
    pub fn next(&mut self, now: Duration) -> Option<Lease> {
        self.refill();
        loop {
            let Reverse((at, _, _)) = self.ready.peek()?;
            if *at > now {
                return None;
            }
            let Reverse((_, _, host)) = self.ready.pop()?;
            let Some(state) = self.active.get_mut(&host) else { continue };
            if state.busy {
                continue;
            }
            let Some(entry) = state.queue.pop_front() else { continue };
            state.busy = true;
            self.queued -= 1;
            return Some(Lease { host, entry });
        }
    }

    /// When the next host's turn comes (`None`: nothing is queued that a
    /// free host could take).
    pub fn next_ready_at(&mut self) -> Option<Duration> {
        self.refill();
        self.ready.peek().map(|Reverse((at, _, _))| *at)
    }

    /// The delay between two requests to a politeness key.
    pub fn delay_of(&self, host: &str) -> Duration {
        self.delays.get(host).copied().unwrap_or(self.config.default_delay)
    }

    /// Ends a lease at `now`: the host is free again after its delay (or
    /// the wait the outcome asks for). Returns that wait.
    pub fn complete(&mut self, lease: &Lease, now: Duration, outcome: Outcome) -> Duration {
        let config = (self.config.default_delay, self.config.first_backoff, self.config.max_wait);
        let Some(state) = self.active.get_mut(&lease.host) else { return Duration::ZERO };
        state.busy = false;
        state.next_allowed = next_turn(config, state, now, outcome);
        let wait = state.next_allowed.saturating_sub(now);
        if state.queue.is_empty() {
            // Nothing more queued for this host: its back queue goes to
            // another; its turn and backoff are remembered.
            let rest = (state.next_allowed, state.backoff);
            self.active.remove(&lease.host);
            self.resting.insert(lease.host.clone(), rest);
        } else {
            let at = state.next_allowed;
            self.schedule(lease.host.clone(), at);
        }
        wait
    }

    /// Ends a lease whose URL must be fetched again (a 429, a 503, a failed
    /// connection): the host waits as [`complete`](Self::complete) says,
    /// and the URL, its attempts counted, is first in the host's queue.
    /// Returns the wait.
    pub fn retry(&mut self, mut lease: Lease, now: Duration, outcome: Outcome) -> Duration {
        let config = (self.config.default_delay, self.config.first_backoff, self.config.max_wait);
        let Some(state) = self.active.get_mut(&lease.host) else { return Duration::ZERO };
        let at = next_turn(config, state, now, outcome);
        lease.entry.attempts += 1;
        self.requeue(lease, at);
        at.saturating_sub(now)
    }

    /// Gives the URL of a lease back untouched (the fetcher stopped before
    /// fetching it): it is first in its host's queue again.
    pub fn release(&mut self, lease: Lease) {
        let at = self.active.get(&lease.host).map(|s| s.next_allowed);
        if let Some(at) = at {
            self.requeue(lease, at);
        }
    }

    /// Gives the URL of a lease back, first in its host's queue, and makes
    /// the host wait until `now + wait`: another crawler took the host's
    /// turn (the shared limiter said so), or the request sent was for the
    /// host's robots.txt rather than this URL.
    pub fn defer(&mut self, lease: Lease, now: Duration, wait: Duration) {
        let cap = self.config.max_wait;
        self.requeue(lease, now.saturating_add(wait.min(cap)));
    }

    fn requeue(&mut self, lease: Lease, at: Duration) {
        let Some(state) = self.active.get_mut(&lease.host) else { return };
        state.busy = false;
        state.next_allowed = at;
        state.queue.push_front(lease.entry);
        self.queued += 1;
        self.schedule(lease.host, at);
    }

    /// Appends `entry` to its host's back queue if the host has one
    /// (scheduling the host if it was idle); gives the entry back if not.
    fn join_back_queue(&mut self, entry: Entry) -> Result<(), Entry> {
        let Some(state) = self.active.get_mut(&entry.key) else { return Err(entry) };
        let was_empty = state.queue.is_empty();
        let host = Arc::clone(&entry.key);
        state.queue.push_back(entry);
        if was_empty && !state.busy {
            let at = state.next_allowed;
            self.schedule(host, at);
        }
        Ok(())
    }

    fn schedule(&mut self, host: Arc<str>, at: Duration) {
        self.order += 1;
        self.ready.push(Reverse((at, self.order, host)));
    }

    /// Moves front entries to back queues while hosts may become active.
    fn refill(&mut self) {
        while self.active.len() < self.config.active_hosts {
            let Some(entry) = self.front.iter_mut().find_map(VecDeque::pop_front) else {
                return;
            };
            match self.join_back_queue(entry) {
                Ok(()) => {}
                Err(entry) => {
                    let host = Arc::clone(&entry.key);
                    let delay = self.delays.get(&*host).copied();
                    let (next_allowed, backoff) = self.resting.remove(&host).unwrap_or_default();
                    let state = Host {
                        queue: VecDeque::from([entry]),
                        delay,
                        next_allowed,
                        backoff,
                        busy: false,
                    };
                    self.active.insert(host.clone(), state);
                    self.schedule(host, next_allowed);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frontier(active_hosts: usize) -> Frontier {
        Frontier::new(FrontierConfig {
            expected_urls: 10_000,
            active_hosts,
            max_pages_per_host: 5,
            max_depth: 3,
            ..FrontierConfig::default()
        })
        .unwrap()
    }

    #[test]
    fn one_request_per_host_and_its_delay_between() {
        let mut f = frontier(10);
        for u in ["http://a.test/1", "http://a.test/2", "http://b.test/1"] {
            assert_eq!(f.push(u, 0, 0), Pushed::Queued);
        }
        let t0 = Duration::ZERO;
        let first = f.next(t0).unwrap();
        let second = f.next(t0).unwrap();
        assert_ne!(first.host, second.host, "two hosts, one lease each");
        assert_eq!(f.next(t0), None, "a.test is busy, b.test has nothing more");
        let a = if &*first.host == "a.test" { first } else { second };
        f.complete(&a, t0, Outcome::Done);
        assert_eq!(f.next(t0 + Duration::from_millis(999)), None, "a.test's delay is 1 s");
        assert_eq!(f.next_ready_at(), Some(Duration::from_secs(1)));
        let again = f.next(Duration::from_secs(1)).unwrap();
        assert_eq!(&*again.entry.url, "http://a.test/2");
    }

    #[test]
    fn seen_deep_full_and_bad_urls_are_refused() {
        let mut f = frontier(10);
        assert_eq!(f.push("http://a.test/x#frag", 0, 0), Pushed::Queued);
        assert_eq!(f.push("HTTP://A.TEST/x", 1, 0), Pushed::Seen, "the same URL normalised");
        assert_eq!(f.push("http://a.test/deep", 4, 0), Pushed::TooDeep);
        for i in 0..4 {
            assert_eq!(f.push(&format!("http://a.test/{i}"), 1, 0), Pushed::Queued);
        }
        assert_eq!(f.push("http://a.test/sixth", 1, 0), Pushed::HostFull);
        assert!(matches!(f.push("mailto:x@a.test", 0, 0), Pushed::Refused(_)));
        assert_eq!(f.len(), 5);
    }

    #[test]
    fn backoff_doubles_from_a_minute_to_a_day_and_retry_after_is_capped() {
        let config = FrontierConfig { expected_urls: 1000, ..FrontierConfig::default() };
        let mut f = Frontier::new(config).unwrap();
        for i in 0..30 {
            f.push(&format!("http://a.test/{i}"), 0, 0);
        }
        let mut now = Duration::ZERO;
        let mut waits = Vec::new();
        for _ in 0..13 {
            let lease = f.next(now).unwrap();
            f.complete(&lease, now, Outcome::Backoff { jitter: 0.0 });
            let at = f.next_ready_at().unwrap();
            waits.push((at - now).as_secs());
            now = at;
        }
        assert_eq!(&waits[..4], &[60, 120, 240, 480]);
        assert_eq!(*waits.last().unwrap(), 86_400, "capped at a day");
        let lease = f.next(now).unwrap();
        f.complete(&lease, now, Outcome::Done);
        assert_eq!(f.next_ready_at().unwrap() - now, Duration::from_secs(1), "success resets it");
        let now = f.next_ready_at().unwrap();
        let lease = f.next(now).unwrap();
        let at = f.next_ready_at();
        assert_eq!(at, None, "the host is busy");
        f.complete(&lease, now, Outcome::RetryAfter(Duration::from_secs(1_000_000)));
        assert_eq!(f.next_ready_at().unwrap() - now, MAX_WAIT);
    }

    #[test]
    fn robots_delay_applies_and_priority_orders_the_front() {
        let mut f = frontier(1);
        f.set_delay("slow.test", Some(Duration::from_secs(10)));
        f.push("http://low.test/", 0, 3);
        f.push("http://slow.test/1", 0, 0);
        f.push("http://slow.test/2", 0, 0);
        // One active host at a time: the highest priority goes first.
        let lease = f.next(Duration::ZERO).unwrap();
        assert_eq!(&*lease.host, "slow.test");
        f.complete(&lease, Duration::ZERO, Outcome::Done);
        assert_eq!(f.next_ready_at(), Some(Duration::from_secs(10)));
        let lease = f.next(Duration::from_secs(10)).unwrap();
        assert_eq!(&*lease.entry.url, "http://slow.test/2");
        f.release(lease);
        assert_eq!(f.len(), 2, "a released URL is queued again");
        assert!(
            Frontier::new(FrontierConfig { priorities: 0, ..FrontierConfig::default() }).is_err()
        );
        let bad = FrontierConfig { false_positive_rate: 1.5, ..FrontierConfig::default() };
        assert!(Frontier::new(bad).is_err());
    }

    #[test]
    fn defer_retry_and_skip_keep_the_url_and_the_turn_rules() {
        let mut f = frontier(10);
        f.push("http://a.test/1", 0, 0);
        f.push("http://a.test/2", 0, 0);
        let t = Duration::from_secs(100);
        let lease = f.next(t).unwrap();
        f.defer(lease, t, Duration::from_secs(5));
        assert_eq!(f.next(t + Duration::from_secs(4)), None, "deferred 5 s");
        let lease = f.next(t + Duration::from_secs(5)).unwrap();
        assert_eq!(&*lease.entry.url, "http://a.test/1", "first again");
        let t = t + Duration::from_secs(5);
        let wait = f.retry(lease, t, Outcome::Backoff { jitter: 0.0 });
        assert_eq!(wait, FIRST_BACKOFF);
        let lease = f.next(t + wait).unwrap();
        assert_eq!((&*lease.entry.url, lease.entry.attempts), ("http://a.test/1", 1));
        let t = t + wait;
        assert_eq!(f.complete(&lease, t, Outcome::Skipped), Duration::ZERO, "no request: no wait");
        let lease = f.next(t).unwrap();
        assert_eq!(&*lease.entry.url, "http://a.test/2");
    }

    #[test]
    fn a_url_handed_over_again_counts_once_against_its_host() {
        let mut f = frontier(10);
        let url = Url::parse("http://a.test/x").unwrap();
        for _ in 0..10 {
            assert_eq!(f.enqueue_claimed(Entry::new(&url, 0, 0)), Pushed::Queued);
        }
        for i in 0..4 {
            let other = Url::parse(&format!("http://a.test/{i}")).unwrap();
            assert_eq!(f.enqueue_claimed(Entry::new(&other, 0, 0)), Pushed::Queued);
        }
        let sixth = Url::parse("http://a.test/sixth").unwrap();
        assert_eq!(f.enqueue_claimed(Entry::new(&sixth, 0, 0)), Pushed::HostFull, "5 per host");
    }
}
