//! One worker in process against sim-web, judged by sim-web's log: every
//! page reachable within the limits fetched once, nothing disallowed
//! asked for, no two requests to one address closer than its delay, and
//! the traps, errors and junk bounded.

use std::sync::Arc;
use std::time::Duration;

use sysblocks_crawler::crawl::{CrawlConfig, Crawler};
use sysblocks_crawler::fetch::Resolver;
use sysblocks_crawler::normalize::normalize;
use sysblocks_crawler::politeness::Shared;
use sysblocks_crawler::sim_web::{SimConfig, SimWeb};

const CRAWL_DELAY: Duration = Duration::from_millis(60);
const TOLERANCE: Duration = Duration::from_millis(2);

fn config() -> CrawlConfig {
    let mut config = CrawlConfig::default();
    config.frontier.default_delay = Duration::from_millis(20);
    config.frontier.first_backoff = Duration::from_millis(100);
    config.frontier.max_pages_per_host = 60;
    config.fetch.total_timeout = Duration::from_millis(800);
    config.fetch.read_timeout = Duration::from_millis(800);
    config.max_attempts = 3;
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_worker_crawls_sim_web_politely_and_completely() {
    let sim = SimConfig { crawl_delay: Some(CRAWL_DELAY), ..SimConfig::default() };
    let web = SimWeb::start(sim).await.unwrap();
    let resolver = Arc::new(Resolver::from_hosts(&web.hosts_file()).unwrap());
    let config = config();
    let crawler = Crawler::new(config.clone(), resolver, Shared::Local).unwrap();
    let seed = normalize(&web.seed(), &config.frontier.limits).unwrap();
    let (_stop, stopped) = tokio::sync::watch::channel(false);
    let summary =
        tokio::time::timeout(Duration::from_secs(120), crawler.run_local(&[seed], stopped))
            .await
            .expect("the crawl ends")
            .unwrap();
    println!("{summary}");
    let log = web.log();
    let missing = web.unfetched();
    assert!(missing.is_empty(), "not fetched: {missing:?}");
    let forbidden = web.forbidden_asked();
    assert!(forbidden.is_empty(), "disallowed or nofollow fetched: {forbidden:?}");
    let report = web.report(|_| Duration::from_millis(20), TOLERANCE);
    let impolite = report.impolite();
    assert!(impolite.is_empty(), "{}", impolite.join("\n"));
    assert!(report.repeats.is_empty(), "fetched more than once: {:?}", report.repeats);
    let count = |host: &str, prefix: &str| {
        log.iter().filter(|l| l.host == host && l.path.starts_with(prefix)).count()
    };
    assert!(count("trap.sim", "/") <= 61, "the calendar trap is bounded by the host's page limit");
    assert!(count("redirect.sim", "/endless/") <= 6, "an endless redirect chain stops at 5 hops");
    assert_eq!(count("never.sim", "/"), 0, "a host that never answers: its robots.txt times out");
    assert!(summary.truncated >= 1 && summary.not_html >= 1, "{summary:?}");
}
