//! `sysblocks-gateway`: an HTTP API gateway whose limits (shared by every
//! instance through Redis), cache, routing and counters come from the
//! sysblocks building blocks. The README is the guide: the request path as
//! a picture, which block does what, the numbers against nginx.
//!
//! * [`config`]: the configuration file (routes by host and path prefix,
//!   upstream groups, per-route limits as descriptors in the spirit of
//!   Envoy's: a key from a header, the client IP or the path, an algorithm,
//!   a rate and a burst, shadow mode, fail-open or fail-closed), refused at
//!   load with the file, the line and the reason.
//! * [`proxy`]: the request path: routes, `RateLimitLayer` over a
//!   `RedisLimiter` shared by every instance (in process without Redis),
//!   the byte-bounded single-flight cache, the [`proxy::Balancer`]
//!   (consistent hash with bounded loads, retries, passive health), header
//!   and body limits, reloads, and the threads that serve.
//! * [`framing`]: the request smuggling guard (a request with both
//!   `Content-Length` and `Transfer-Encoding` is refused).
//! * [`upstream`]: kept-alive connections to the upstream servers, per
//!   thread.
//! * [`metrics`]: counts per route and status class, limiter decisions,
//!   cache hits, latencies; `GET /metrics` in Prometheus's text format.
//! * [`upstream_sim`]: a test upstream; [`demo`]: `gateway-demo`.
//!
//! ```
//! use sysblocks_gateway::config::Config;
//!
//! let config = Config::parse("gateway.toml", r#"
//! listen = "127.0.0.1:8080"
//!
//! [[upstream]]
//! name = "api"
//! servers = ["127.0.0.1:9001", "127.0.0.1:9002"]
//!
//! [[route]]
//! prefix = "/pricing"
//! upstream = "api"
//! limit = { key = "header:x-api-key", algorithm = "sliding_window_log", rate = "1000/min" }
//! "#)?;
//! let route = config.route_for(Some("example.com"), "/pricing/eu").expect("a route");
//! assert_eq!(route.upstream, "api");
//! assert!(config.route_for(None, "/other").is_none());
//! # Ok::<(), sysblocks_gateway::config::ConfigError>(())
//! ```

pub mod config;
pub mod demo;
pub mod framing;
pub mod metrics;
pub mod proxy;
pub mod upstream;
pub mod upstream_sim;
