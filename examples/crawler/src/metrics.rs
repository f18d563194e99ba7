//! `GET /metrics`: a crawl's counters in Prometheus's text format, served
//! by `crawl --metrics ADDR` while it runs.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::watch;

use crate::crawl::Stats;

/// The counters as Prometheus text.
pub fn render(stats: &Stats) -> String {
    let s = stats.summary(Duration::ZERO);
    let mut out = String::new();
    let mut family = |name: &str, kind: &str, help: &str, value: u64| {
        let _ = writeln!(
            out,
            "# HELP crawler_{name} {help}\n# TYPE crawler_{name} {kind}\ncrawler_{name} {value}"
        );
    };
    family("requests_total", "counter", "Requests sent (pages and robots.txt).", s.requests);
    family("pages_total", "counter", "HTML pages fetched with a 2xx.", s.pages);
    family("bytes_total", "counter", "Body bytes read.", s.bytes);
    family("no_response_total", "counter", "Fetches without a response.", s.errors);
    family("http_errors_total", "counter", "Responses 4xx or 5xx.", s.http_errors);
    family("retries_total", "counter", "Fetches to be tried again.", s.retries);
    family("given_up_total", "counter", "URLs given up after their last attempt.", s.gave_up);
    family("redirects_total", "counter", "Redirects followed as new URLs.", s.redirects);
    family("robots_denied_total", "counter", "URLs robots.txt disallowed.", s.robots_denied);
    family("refused_total", "counter", "Links and seeds refused.", s.refused);
    family("dropped_total", "counter", "URLs seen before, too deep, or of a full host.", s.dropped);
    family("deferred_total", "counter", "Turns the shared limiter put off.", s.deferred);
    family("lost_leases_total", "counter", "URLs whose lease this worker lost.", s.lost);
    family(
        "frontier_urls",
        "gauge",
        "URLs in the frontier.",
        stats.frontier.load(Ordering::Relaxed),
    );
    family(
        "active_hosts",
        "gauge",
        "Politeness keys with URLs queued or leased.",
        stats.active_hosts.load(Ordering::Relaxed),
    );
    out
}

/// Serves `/metrics` on `address` until `stop` turns true.
///
/// # Errors
/// The address cannot be bound.
pub async fn serve(
    address: SocketAddr,
    stats: Arc<Stats>,
    mut stop: watch::Receiver<bool>,
) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(address).await?;
    let bound = listener.local_addr()?;
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let stats = Arc::clone(&stats);
            async move { ([("content-type", "text/plain; version=0.0.4")], render(&stats)) }
        }),
    );
    tokio::spawn(async move {
        let shutdown = async move {
            while !*stop.borrow() {
                if stop.changed().await.is_err() {
                    return;
                }
            }
        };
        let _ = axum::serve(listener, app).with_graceful_shutdown(shutdown).await;
    });
    Ok(bound)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_family_has_help_type_and_a_value() {
        let stats = Stats::default();
        stats.pages.add(3);
        let text = render(&stats);
        assert!(
            text.contains("# TYPE crawler_pages_total counter\ncrawler_pages_total 3\n"),
            "{text}"
        );
        let families = text.lines().filter(|l| l.starts_with("# TYPE")).count();
        let samples = text.lines().filter(|l| !l.starts_with('#')).count();
        assert_eq!(families, samples);
    }
}
