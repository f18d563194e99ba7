//! Whole-crawl measurements (not criterion: each is one run of seconds).
//!
//! ```text
//! cargo bench -p sysblocks-crawler --bench crawl [-- efficiency|speed]
//! ```
//!
//! * **efficiency**: sim-web with 200 hosts x 50 pages, one address each, a
//!   100 ms delay per host: the crawl's time over the politeness lower
//!   bound (the slowest host's pages x its delay).
//! * **speed**: the same web with delays off: pages per second of one
//!   worker (sim-web in the same process, on the same two cores).
//!
//! The frontier's memory per URL is `benches/frontier_memory.rs` (a
//! counting allocator would slow this one down).

use std::sync::Arc;
use std::time::{Duration, Instant};

use sysblocks_crawler::crawl::{CrawlConfig, Crawler, Summary};
use sysblocks_crawler::fetch::Resolver;
use sysblocks_crawler::normalize::normalize;
use sysblocks_crawler::politeness::Shared;
use sysblocks_crawler::sim_web::{SimConfig, SimWeb};

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

/// Crawls `web` from its seed, or from every host's root with `all_roots`.
async fn crawl(web: &SimWeb, delay: Duration, all_roots: bool) -> Summary {
    let mut config = CrawlConfig::default();
    config.frontier.default_delay = delay;
    config.frontier.active_hosts = 1000;
    config.concurrency = 256;
    let resolver = Arc::new(Resolver::from_hosts(&web.hosts_file()).expect("sim-web's hosts file"));
    let crawler =
        Crawler::new(config.clone(), resolver, Shared::Local).expect("a valid configuration");
    let seeds: Vec<String> = if all_roots {
        (0..web.config().hosts).map(|h| format!("http://h{h}.sim/")).collect()
    } else {
        vec![web.seed()]
    };
    let seeds: Vec<_> =
        seeds.iter().map(|s| normalize(s, &config.frontier.limits).expect("a seed")).collect();
    let (_stop, stopped) = tokio::sync::watch::channel(false);
    crawler.run_local(&seeds, stopped).await.expect("the crawl")
}

async fn efficiency() {
    let delay = Duration::from_millis(100);
    let pages = web_config(true).pages as u32;
    let bound = delay * pages;
    for (all_roots, what) in
        [(true, "seeded with every host's root"), (false, "seeded with h0.sim/ only")]
    {
        let mut ratios = Vec::new();
        for run in 0..3 {
            let web = SimWeb::start(web_config(true)).await.expect("sim-web");
            let start = Instant::now();
            let summary = crawl(&web, delay, all_roots).await;
            let took = start.elapsed();
            let ratio = took.as_secs_f64() / bound.as_secs_f64();
            println!(
                "efficiency ({what}) run {run}: {} pages, {} requests in {:.3} s: ratio {ratio:.3}",
                summary.pages,
                summary.requests,
                took.as_secs_f64(),
            );
            ratios.push(ratio);
        }
        ratios.sort_by(f64::total_cmp);
        println!(
            "efficiency ({what}): crawl time / (pages x delay = {:.1} s), median {:.3} (min {:.3}, max {:.3})",
            bound.as_secs_f64(),
            ratios[1],
            ratios[0],
            ratios[2]
        );
    }
}

async fn speed() {
    let mut rates = Vec::new();
    for run in 0..3 {
        let web = SimWeb::start(web_config(false)).await.expect("sim-web");
        let start = Instant::now();
        let summary = crawl(&web, Duration::ZERO, false).await;
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

fn main() {
    let which: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let wants = |name: &str| which.is_empty() || which.iter().any(|w| w == name);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio");
    if wants("efficiency") {
        runtime.block_on(efficiency());
    }
    if wants("speed") {
        runtime.block_on(speed());
    }
}
