//! Rate limiting that users can reason about: five algorithms, each a pure
//! step over a small state, applied in process (lock-free for the token
//! bucket) or atomically in Redis, so many servers share one limit.
//!
//! * [`TokenBucket`]: GCRA on one atomic; decision-for-decision identical
//!   to `governor`, and as fast.
//! * [`LeakyBucket`]: a shaper: requests leave evenly spaced from a bounded
//!   queue (`acquire().await` with the `async` feature).
//! * [`FixedWindow`], [`SlidingWindowLog`] (exact), [`SlidingWindowCounter`]
//!   (constant memory).
//!
//! Every check returns a [`Decision`]: allowed, limit, remaining, when the
//! limit is full again and, for a denial, how long to wait. Costs, peeking
//! without taking, refunds, all-or-nothing over several limits
//! ([`check_all`]) and changing a limit in use (`set_limit`) work for all
//! of them through the [`Limiter`] trait. [`Keyed`] holds one limiter per
//! key with memory bounded against endless new keys. [`Limit`] describes a
//! limit as data (`"100/s"`, burst 20) and loads from config files.
//! [`RedisLimiter`] runs the same algorithms on Redis or Redis Cluster, and
//! [`KeyedLimiter`] is the one async keyed interface that it, [`Keyed`]
//! and [`Unkeyed`] share (so a user of limits, such as the scheduler's
//! workers, takes either);
//! [`RateLimitLayer`] puts a limit in front of a tower / axum service with
//! the IETF `RateLimit` headers. The [`guide`] explains each algorithm and
//! when to use which.
//!
//! ```
//! use std::time::Duration;
//! use sysblocks_ratelimit::{Algorithm, Keyed, Limit, ManualClock, Rate, TokenBucket};
//!
//! // A bucket of 10 refilling 2 per second: 10 pass at once, the 11th waits 0.5 s.
//! let clock = ManualClock::new();
//! let bucket = TokenBucket::with_clock(10, Rate::per_second(2)?, clock.clone())?;
//! assert_eq!((0..10).filter(|_| bucket.check().allowed).count(), 10);
//! let denied = bucket.check();
//! assert!(!denied.allowed);
//! assert_eq!(denied.retry_after, Some(Duration::from_millis(500)));
//!
//! // The same limit from configuration, one limiter per API key.
//! let limit = Limit::new(Algorithm::TokenBucket, "2/s".parse()?).with_burst(10);
//! let per_key = Keyed::new(100_000, move || limit.build_with_clock(clock.clone()))?;
//! assert_eq!(per_key.check(&"key-1")?.remaining, 9);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Crate features
//!
//! * `async`: [`AsyncLimiter`] (`until_ready`, fair and cancel-safe, with
//!   optional jitter), `LeakyBucket::acquire`, [`TokioClock`].
//! * `redis`: [`RedisLimiter`], on a [`RedisConnection`] (from a
//!   `ConnectionManager` or a `ClusterConnection`), every decision bounded
//!   in time.
//! * `tower`: [`RateLimitLayer`], an HTTP layer over any [`KeyedLimiter`]
//!   (in process or Redis), keyed by a closure or by [`ClientIp`] (the
//!   peer, or a trusted proxy header), with a choice for keyless requests
//!   and a hook for the 429.
//! * `serde`: [`Limit`], [`Algorithm`] and [`Rate`] (de)serialise.
//!
#![cfg_attr(not(feature = "redis"), doc = "[`RedisLimiter`]: crate#crate-features")]
#![cfg_attr(not(feature = "redis"), doc = "[`RedisConnection`]: crate#crate-features")]
#![cfg_attr(not(feature = "tower"), doc = "[`RateLimitLayer`]: crate#crate-features")]
#![cfg_attr(not(feature = "tower"), doc = "[`ClientIp`]: crate#crate-features")]
#![cfg_attr(not(feature = "async"), doc = "[`AsyncLimiter`]: crate#crate-features")]
#![cfg_attr(not(feature = "async"), doc = "[`TokioClock`]: crate#crate-features")]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![doc(test(attr(deny(warnings))))]

#[cfg(feature = "tower")]
mod client_ip;
mod clock;
mod config;
mod decision;
mod error;
pub mod guide;
#[cfg(feature = "tower")]
mod http_layer;
mod keyed;
mod keyed_limiter;
mod leaky;
mod limiter;
mod rate;
#[cfg(feature = "redis")]
mod redis;
mod sync;
mod token_bucket;
#[cfg(feature = "async")]
mod wait;
pub mod window;

#[cfg(feature = "tower")]
pub use client_ip::{ClientIp, ProxyHeader};
#[cfg(feature = "async")]
pub use clock::TokioClock;
pub use clock::{Clock, ManualClock, SystemClock};
pub use config::{Algorithm, AnyLimiter, Limit};
pub use decision::Decision;
pub use error::{BackendError, ErrorKind, LimitError};
#[cfg(feature = "tower")]
pub use http_layer::{
    KeyExtractor, OrShared, RateLimitLayer, RateLimitService, Refused, problem_response,
};
pub use keyed::Keyed;
pub use keyed_limiter::{AnyKeyedLimiter, KeyedLimiter, Unkeyed};
pub use leaky::{LeakyBucket, leaky_step};
pub use limiter::{Limiter, check_all};
pub use rate::Rate;
#[cfg(feature = "redis")]
pub use redis::{DEFAULT_TIMEOUT, FailurePolicy, RedisConnection, RedisLimiter};
pub use token_bucket::{MAX_REFILL_NANOS, TokenBucket, gcra_refund, gcra_step, gcra_tau};
#[cfg(feature = "async")]
pub use wait::AsyncLimiter;
pub use window::{
    FixedWindow, FixedWindowState, SlidingCounterState, SlidingLogState, SlidingWindowCounter,
    SlidingWindowLog, WindowAlgorithm, WindowLimiter, fixed_window_step, sliding_counter_step,
    sliding_log_step,
};

/// The README's examples, compiled and run with the doc tests, so that the
/// page a new user reads first cannot drift from the code.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
