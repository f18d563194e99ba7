//! What the gateway counts, and `GET /metrics` in Prometheus's text
//! format. Counts are `StripedCounter`s (sysblocks-sharded-counter), so
//! that requests on every core count without contending; with Redis they
//! are also added, batched, into `KeyedBatchedCounter`s, so that the
//! `_all_instances` family adds up every gateway instance's requests.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use sysblocks_sharded_counter::{KeyedBatchedCounter, StripedCounter};

/// Upper bounds of the latency histogram, in seconds.
const BUCKETS: [f64; 10] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0];

/// One route's counts.
#[derive(Debug, Default)]
struct RouteCounts {
    /// By status class: 1xx .. 5xx.
    classes: [StripedCounter; 5],
    admitted: StripedCounter,
    limited: StripedCounter,
    shadow_refused: StripedCounter,
    cache_hits: StripedCounter,
    cache_misses: StripedCounter,
    latency: [StripedCounter; BUCKETS.len() + 1],
    latency_micros: StripedCounter,
}

/// The gateway's counters.
#[derive(Debug)]
pub struct Metrics {
    /// Per route name, made on a route's first request (routes come and
    /// go with reloads; their counts stay).
    routes: std::sync::RwLock<BTreeMap<String, Arc<RouteCounts>>>,
    unrouted: StripedCounter,
    shared: Option<KeyedBatchedCounter>,
}

/// One route's counters, from [`Metrics::route`].
#[derive(Debug, Clone)]
pub struct RouteMetrics {
    name: Arc<str>,
    counts: Arc<RouteCounts>,
}

/// How one request went, for the counters.
#[derive(Debug, Clone, Copy)]
pub struct Outcome {
    /// The status sent.
    pub status: u16,
    /// Whether the route's limit was asked and said yes (`Some(true)`),
    /// no (`Some(false)`), or the route has none (`None`).
    pub admitted: Option<bool>,
    /// A shadow limit would have refused it.
    pub shadow_refused: bool,
    /// A cache hit (`Some(true)`) or miss (`Some(false)`).
    pub cache_hit: Option<bool>,
    /// Time from the request to the response head.
    pub latency: Duration,
}

/// A label value with its quotes and backslashes escaped.
fn label(text: &str) -> String {
    text.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

impl Metrics {
    /// Counters; `shared` also adds them up in Redis.
    pub fn new(shared: Option<KeyedBatchedCounter>) -> Metrics {
        Metrics { routes: std::sync::RwLock::default(), unrouted: StripedCounter::new(), shared }
    }

    fn counts(&self, route: &str) -> Arc<RouteCounts> {
        let read = self.routes.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(counts) = read.get(route) {
            return Arc::clone(counts);
        }
        drop(read);
        let mut write = self.routes.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        Arc::clone(write.entry(route.to_owned()).or_default())
    }

    /// Counts a request that matched no route.
    pub fn unrouted(&self) {
        self.unrouted.add(1);
    }

    /// Counts one request of `route`.
    ///
    /// This looks the route up on every call; a caller on the request
    /// path takes [`route`](Self::route) once and calls
    /// [`record_for`](Self::record_for), as the gateway does.
    pub fn record(&self, route: &str, outcome: Outcome) {
        self.record_for(&self.route(route), outcome);
    }

    /// A route's counters, to count its requests without looking the
    /// route up each time.
    pub fn route(&self, route: &str) -> RouteMetrics {
        RouteMetrics { name: route.into(), counts: self.counts(route) }
    }

    /// Counts one request of the route of `route`.
    pub fn record_for(&self, route: &RouteMetrics, outcome: Outcome) {
        let counts = &route.counts;
        let route = &*route.name;
        let class = usize::from(outcome.status / 100).clamp(1, 5) - 1;
        counts.classes[class].add(1);
        match outcome.admitted {
            Some(true) => counts.admitted.add(1),
            Some(false) => counts.limited.add(1),
            None => {}
        }
        if outcome.shadow_refused {
            counts.shadow_refused.add(1);
        }
        match outcome.cache_hit {
            Some(true) => counts.cache_hits.add(1),
            Some(false) => counts.cache_misses.add(1),
            None => {}
        }
        let seconds = outcome.latency.as_secs_f64();
        let bucket = BUCKETS.iter().position(|b| seconds <= *b).unwrap_or(BUCKETS.len());
        counts.latency[bucket].add(1);
        counts.latency_micros.add(i64::try_from(outcome.latency.as_micros()).unwrap_or(i64::MAX));
        if let Some(shared) = &self.shared {
            let _ = shared.add(&format!("{route}:{}xx", class + 1), 1);
        }
    }

    /// The Prometheus text of the counts; with Redis, also the totals of
    /// every instance (read now).
    pub async fn render(&self) -> String {
        let mut out = String::new();
        let n = |c: &StripedCounter| c.sum();
        let _ = writeln!(
            out,
            "# HELP gateway_requests_total Requests by route and status class (this instance)."
        );
        let _ = writeln!(out, "# TYPE gateway_requests_total counter");
        let snapshot: Vec<(String, Arc<RouteCounts>)> = {
            let read = self.routes.read().unwrap_or_else(std::sync::PoisonError::into_inner);
            read.iter().map(|(r, c)| (r.clone(), Arc::clone(c))).collect()
        };
        let routes: Vec<(String, &RouteCounts)> =
            snapshot.iter().map(|(r, c)| (label(r), &**c)).collect();
        for (route, c) in &routes {
            for (i, class) in c.classes.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "gateway_requests_total{{route=\"{route}\",class=\"{}xx\"}} {}",
                    i + 1,
                    n(class)
                );
            }
        }
        let _ = writeln!(
            out,
            "gateway_requests_total{{route=\"\",class=\"unrouted\"}} {}",
            n(&self.unrouted)
        );
        let _ = writeln!(out, "# HELP gateway_limit_decisions_total Limiter decisions by route.");
        let _ = writeln!(out, "# TYPE gateway_limit_decisions_total counter");
        for (route, c) in &routes {
            for (decision, counter) in [
                ("admitted", &c.admitted),
                ("limited", &c.limited),
                ("shadow_refused", &c.shadow_refused),
            ] {
                let _ = writeln!(
                    out,
                    "gateway_limit_decisions_total{{route=\"{route}\",decision=\"{decision}\"}} {}",
                    n(counter)
                );
            }
        }
        let _ = writeln!(out, "# HELP gateway_cache_total Cache lookups by route.");
        let _ = writeln!(out, "# TYPE gateway_cache_total counter");
        for (route, c) in &routes {
            let _ = writeln!(
                out,
                "gateway_cache_total{{route=\"{route}\",result=\"hit\"}} {}",
                n(&c.cache_hits)
            );
            let _ = writeln!(
                out,
                "gateway_cache_total{{route=\"{route}\",result=\"miss\"}} {}",
                n(&c.cache_misses)
            );
        }
        let _ =
            writeln!(out, "# HELP gateway_latency_seconds Time to the response head, by route.");
        let _ = writeln!(out, "# TYPE gateway_latency_seconds histogram");
        for (route, c) in &routes {
            let mut cumulative = 0;
            for (i, bound) in BUCKETS.iter().enumerate() {
                cumulative += n(&c.latency[i]);
                let _ = writeln!(
                    out,
                    "gateway_latency_seconds_bucket{{route=\"{route}\",le=\"{bound}\"}} {cumulative}"
                );
            }
            cumulative += n(&c.latency[BUCKETS.len()]);
            let _ = writeln!(
                out,
                "gateway_latency_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {cumulative}"
            );
            let _ = writeln!(
                out,
                "gateway_latency_seconds_sum{{route=\"{route}\"}} {}",
                n(&c.latency_micros) as f64 / 1e6
            );
            let _ =
                writeln!(out, "gateway_latency_seconds_count{{route=\"{route}\"}} {cumulative}");
        }
        if let Some(shared) = &self.shared {
            let _ = writeln!(
                out,
                "# HELP gateway_requests_all_instances_total Requests by route and status class, every instance (Redis)."
            );
            let _ = writeln!(out, "# TYPE gateway_requests_all_instances_total counter");
            for ((name, _), (route, _)) in snapshot.iter().zip(&routes) {
                for class in 1..=5 {
                    let total = shared.get(&format!("{name}:{class}xx")).await.unwrap_or(0);
                    let _ = writeln!(
                        out,
                        "gateway_requests_all_instances_total{{route=\"{route}\",class=\"{class}xx\"}} {total}"
                    );
                }
            }
        }
        out
    }
}
