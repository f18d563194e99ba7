//! Rate limiting that users can reason about: a token bucket implemented as
//! GCRA on one atomic, lock-free, whose decisions are identical to
//! `governor`'s on every arrival sequence, with decisions that say how many
//! tokens remain, when the bucket is full again and how long to wait.
//!
//! This release has [`TokenBucket`] (GCRA), [`FixedWindow`],
//! [`SlidingWindowLog`] (exact) and [`SlidingWindowCounter`]
//! (approximate, constant memory), each a pure step over its state
//! ([`gcra_step`], [`fixed_window_step`], [`sliding_log_step`],
//! [`sliding_counter_step`]) applied by an in-process type. The leaky bucket,
//! keyed limits, the Redis backend and the HTTP layer build on the same
//! steps. The [`guide`] explains each algorithm and when to use which.
//!
//! ```
//! use sysblocks_ratelimit::{Rate, TokenBucket};
//!
//! let limiter = TokenBucket::new(100, "50/s".parse::<Rate>()?)?;
//! let decision = limiter.check();
//! assert!(decision.allowed);
//! assert_eq!(decision.remaining, 99);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Crate features
//!
//! None yet; `redis`, `async` and `tower` will gate the backends.

#![cfg_attr(docsrs, feature(doc_cfg))]
#![deny(missing_docs)]
#![doc(test(attr(deny(warnings))))]

mod clock;
mod config;
mod error;
pub mod guide;
#[cfg(feature = "tower")]
mod http_layer;
mod keyed;
mod leaky;
mod limiter;
mod rate;
#[cfg(feature = "redis")]
mod redis;
mod sync;
mod token_bucket;
#[cfg(feature = "async")]
mod wait;
mod window;

#[cfg(feature = "async")]
pub use clock::TokioClock;
pub use clock::{Clock, ManualClock, SystemClock};
pub use config::{Algorithm, AnyLimiter, Limit};
pub use error::LimitError;
#[cfg(feature = "tower")]
pub use http_layer::{KeyedDecision, RateLimitLayer, RateLimitService};
pub use keyed::Keyed;
pub use leaky::{LeakyBucket, leaky_step};
pub use limiter::{Limiter, check_all};
pub use rate::Rate;
#[cfg(feature = "redis")]
pub use redis::{FailurePolicy, RedisConnection, RedisLimiter};
pub use token_bucket::{Decision, TokenBucket, gcra_refund, gcra_step};
#[cfg(feature = "async")]
pub use wait::AsyncLimiter;
pub use window::{
    Counter, Fixed, FixedWindow, FixedWindowState, Log, SlidingCounterState, SlidingWindowCounter,
    SlidingWindowLog, WindowAlgorithm, WindowLimiter, fixed_window_step, sliding_counter_step,
    sliding_log_step,
};
