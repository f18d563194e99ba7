//! `sysblocks-crawler`: a polite distributed web crawler whose frontier,
//! politeness and recovery come from the sysblocks building blocks. The
//! README is the guide; the modules, in the order a URL meets them:
//!
//! * [`normalize`]: one spelling per URL, and what is refused.
//! * [`frontier`]: Mercator's frontier: priority front queues, one back
//!   queue per politeness key, a heap of next allowed times, a Bloom filter
//!   of URLs seen; one request at a time per key and its delay between two.
//! * [`robots`]: robots.txt, parsed, cached with a TTL, obeyed.
//! * [`politeness`]: one request per delay per key as a token bucket
//!   (sysblocks-ratelimit), in process or shared on Redis, and each key's
//!   turn across workers.
//! * [`fetch`]: one GET with every limit, and the links of a page.
//! * [`crawl`]: the loop that owns the frontier and runs fetch jobs.
//! * [`cluster`]: the distributed mode: URLs as scheduler tasks on Redis,
//!   partitions owned through a consistent-hash ring of the live workers.
//! * [`metrics`], [`app`]: `/metrics` and the `crawl` command.
//! * [`sim_web`]: the synthetic web the tests judge the crawler by.
//!
//! ```
//! use std::time::Duration;
//! use sysblocks_crawler::frontier::{Frontier, FrontierConfig, Outcome, Pushed};
//!
//! let mut frontier = Frontier::new(FrontierConfig::default())?;
//! assert_eq!(frontier.push("http://example.com/", 0, 0), Pushed::Queued);
//! assert_eq!(frontier.push("http://example.com/about", 1, 1), Pushed::Queued);
//! let now = Duration::ZERO;
//! let lease = frontier.next(now).expect("example.com's turn");
//! assert!(frontier.next(now).is_none()); // one request at a time per host
//! frontier.complete(&lease, now, Outcome::Done);
//! assert_eq!(frontier.next_ready_at(), Some(Duration::from_secs(1))); // its delay
//! # Ok::<(), sysblocks_crawler::frontier::ConfigError>(())
//! ```
//!
//! A whole crawl of a small synthetic web, in this process:
//!
//! ```
//! # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use std::time::Duration;
//! use sysblocks_crawler::crawl::{CrawlConfig, Crawler};
//! use sysblocks_crawler::{fetch::Resolver, normalize::normalize, politeness::Shared};
//! use sysblocks_crawler::sim_web::{SimConfig, SimWeb};
//!
//! let shape = SimConfig { hosts: 3, pages: 5, crawl_delay: None, specials: false, ..SimConfig::default() };
//! let web = SimWeb::start(shape).await?;
//! let mut config = CrawlConfig::default();
//! config.frontier.default_delay = Duration::from_millis(5);
//! let resolver = Arc::new(Resolver::from_hosts(&web.hosts_file())?);
//! let crawler = Crawler::new(config.clone(), resolver, Shared::Local)?;
//! let seed = normalize(&web.seed(), &config.frontier.limits)?;
//! let (_stop, stopped) = tokio::sync::watch::channel(false);
//! let summary = crawler.run_local(&[seed], stopped).await?;
//! assert_eq!(summary.pages, 15); // every page of every host, once
//! assert_eq!(web.requests(), 15 + 3); // and each host's robots.txt
//! # Ok(()) }
//! ```

pub mod app;
pub mod cluster;
pub mod crawl;
pub mod fetch;
pub mod frontier;
pub mod metrics;
pub mod normalize;
pub mod politeness;
pub mod robots;
pub mod sim_web;
