//! `sysblocks-crawler`: a polite distributed web crawler whose frontier,
//! politeness and recovery come from the sysblocks building blocks.
//!
//! Being built in steps; what is here so far:
//!
//! * [`normalize`]: one spelling per URL (the `url` crate's parsing, plus
//!   no fragment, no session ids, sorted query parameters), and what is
//!   refused (other schemes, credentials, over-long URLs).
//! * [`frontier`]: Mercator's frontier: priority front queues, one back
//!   queue per active host, a heap of the hosts' next allowed times, a
//!   Bloom filter of URLs seen; one request at a time per host, its delay
//!   (or a server's `Retry-After`, or a doubling backoff) between two.
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

pub mod app;
pub mod cluster;
pub mod crawl;
pub mod fetch;
pub mod frontier;
pub mod normalize;
pub mod politeness;
pub mod robots;
pub mod sim_web;
