//! Whole-crawl measurements (not criterion: each is one run of seconds).
//!
//! ```text
//! cargo bench -p sysblocks-crawler --bench crawl [-- efficiency|speed|memory]
//! ```
//!
//! * **efficiency**: sim-web with 200 hosts x 50 pages, one address each, a
//!   100 ms delay per host: the crawl's time over the politeness lower
//!   bound (the slowest host's pages x its delay).
//! * **speed**: the same web with delays off: pages per second of one
//!   worker (sim-web in the same process, on the same two cores).
//! * **memory**: 1,000,000 URLs pushed into a frontier (10,000 hosts):
//!   bytes allocated per URL (queues plus dedupe), and the Bloom filter's
//!   measured false-positive rate on 1,000,000 URLs never pushed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use peak_alloc::PeakAlloc;

use sysblocks_crawler::crawl::{CrawlConfig, Crawler, Summary};
use sysblocks_crawler::fetch::Resolver;
use sysblocks_crawler::frontier::{Frontier, FrontierConfig, Pushed};
use sysblocks_crawler::normalize::normalize;
use sysblocks_crawler::politeness::Shared;
use sysblocks_crawler::sim_web::{SimConfig, SimWeb};

/// Counts the bytes live on the heap.
#[global_allocator]
static HEAP: PeakAlloc = PeakAlloc;

fn live() -> isize {
    HEAP.current_usage() as isize
}

fn web_config(delay: bool) -> SimConfig {
    SimConfig {
        hosts: 200,
        pages: 50,
        hosts_per_ip: 1,
        crawl_delay: None,
        specials: false,
        seed: if delay { 7 } else { 8 },
        ..SimConfig::default()
    }
}

async fn crawl(web: &SimWeb, delay: Duration) -> Summary {
    let mut config = CrawlConfig::default();
    config.frontier.default_delay = delay;
    config.frontier.active_hosts = 1000;
    config.concurrency = 256;
    let resolver = Arc::new(Resolver::from_hosts(&web.hosts_file()).expect("sim-web's hosts file"));
    let crawler =
        Crawler::new(config.clone(), resolver, Shared::Local).expect("a valid configuration");
    let seed = normalize(&web.seed(), &config.frontier.limits).expect("the seed");
    let (_stop, stopped) = tokio::sync::watch::channel(false);
    crawler.run_local(&[seed], stopped).await.expect("the crawl")
}

async fn efficiency() {
    let delay = Duration::from_millis(100);
    let mut ratios = Vec::new();
    for run in 0..3 {
        let web = SimWeb::start(web_config(true)).await.expect("sim-web");
        let start = Instant::now();
        let summary = crawl(&web, delay).await;
        let took = start.elapsed();
        let pages = web_config(true).pages as u32;
        let bound = delay * pages;
        // With its robots.txt, each host is asked pages + 1 times.
        let bound_robots = delay * pages;
        let ratio = took.as_secs_f64() / bound.as_secs_f64();
        println!(
            "efficiency run {run}: {} pages, {} requests in {:.3} s; bound {:.1} s (pages x delay; {:.1} s counting robots.txt \
             as the first request): ratio {ratio:.3}",
            summary.pages,
            summary.requests,
            took.as_secs_f64(),
            bound.as_secs_f64(),
            bound_robots.as_secs_f64() + delay.as_secs_f64(),
        );
        ratios.push(ratio);
    }
    ratios.sort_by(f64::total_cmp);
    println!(
        "efficiency: crawl time / politeness bound, median {:.3} (min {:.3}, max {:.3})",
        ratios[1], ratios[0], ratios[2]
    );
}

async fn speed() {
    let mut rates = Vec::new();
    for run in 0..3 {
        let web = SimWeb::start(web_config(false)).await.expect("sim-web");
        let start = Instant::now();
        let summary = crawl(&web, Duration::ZERO).await;
        let took = start.elapsed().as_secs_f64();
        let rate = summary.pages as f64 / took;
        println!("speed run {run}: {} pages in {took:.3} s: {rate:.0} pages/s", summary.pages);
        rates.push(rate);
    }
    rates.sort_by(f64::total_cmp);
    println!(
        "speed: pages/s of one worker, delays off, median {:.0} (min {:.0}, max {:.0})",
        rates[1], rates[0], rates[2]
    );
}

fn memory() {
    let n = 1_000_000usize;
    let hosts = 10_000usize;
    let config =
        FrontierConfig { expected_urls: n, false_positive_rate: 1e-4, ..FrontierConfig::default() };
    let before = live();
    let mut frontier = Frontier::new(config.clone()).expect("a valid configuration");
    let empty = live();
    let mut refused = 0usize;
    for i in 0..n {
        let url =
            format!("http://host{}.example.com/section/{}/page-{i}.html", i % hosts, i / hosts);
        let url = normalize(&url, &config.limits).expect("a URL");
        if frontier.push_url(url, 1, i % 4) != Pushed::Queued {
            refused += 1;
        }
    }
    let full = live();
    let per_url = (full - before) as f64 / (n - refused) as f64;
    println!(
        "memory: {} URLs queued ({refused} refused as seen: Bloom false positives) over {hosts} hosts: \
         {:.1} MB, {per_url:.0} bytes per URL (the empty frontier, mostly its Bloom filter: {:.1} MB)",
        frontier.len(),
        (full - before) as f64 / 1e6,
        (empty - before) as f64 / 1e6,
    );
    let mut false_positives = 0usize;
    for i in 0..n {
        let url = format!("http://other{}.example.org/never/{i}", i % hosts);
        if frontier.admit(&url, 0) == Pushed::Seen {
            false_positives += 1;
        }
    }
    println!(
        "memory: Bloom filter false positives on {n} URLs never pushed: {false_positives} ({:.2e}; configured {:.0e})",
        false_positives as f64 / n as f64,
        config.false_positive_rate
    );
}

fn main() {
    let which: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let wants = |name: &str| which.is_empty() || which.iter().any(|w| w == name);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio");
    if wants("memory") {
        memory();
    }
    if wants("efficiency") {
        runtime.block_on(efficiency());
    }
    if wants("speed") {
        runtime.block_on(speed());
    }
}
