//! What the sysblocks crates share, kept small on purpose: [`Clock`], the
//! one shape of time (nanoseconds since the clock's origin) with the clocks
//! every crate uses, [`BackendError`],
//! the one way their errors keep a storage backend's own error as their
//! `source()`, and, with the `redis` feature, [`RedisConnection`], the one
//! connection type that every Redis-backed crate of the workspace takes
//! (the rate limiter, the sharded counters, the scheduler's queue).
//!
//! A `RedisConnection` is a standalone connection (`ConnectionManager` or
//! `MultiplexedConnection`) or a Redis Cluster connection, and it bounds the
//! time of every command it sends: when Redis is down, a node hangs or the
//! client is reconnecting, an operation fails after the bound (one second
//! by default) instead of waiting for the client's own retries and
//! timeouts, which can add up to many seconds.
//!
//! ```no_run
//! # #![allow(dead_code)]
//! # #[cfg(feature = "redis")]
//! # async fn demo() -> redis::RedisResult<()> {
//! use std::time::Duration;
//! use sysblocks_core::RedisConnection;
//!
//! let client = redis::Client::open("redis://127.0.0.1:6379/")?;
//! let connection = RedisConnection::from(client.get_connection_manager().await?)
//!     .with_timeout(Duration::from_millis(200));
//! let pong: String = connection.run(&redis::cmd("PING")).await?;
//! assert_eq!(pong, "PONG");
//! # Ok(()) }
//! ```
//!
//! # Crate features
//!
//! * **tokio** - `TokioClock`, on tokio's (pausable) time.
//! * **redis** - `RedisConnection` (brings in redis and tokio's timer).
//!
#![cfg_attr(not(feature = "redis"), doc = "[`RedisConnection`]: crate#crate-features")]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![doc(test(attr(deny(warnings))))]

mod clock;
#[cfg(feature = "redis")]
mod connection;
mod error;

#[cfg(feature = "tokio")]
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
pub use clock::TokioClock;
pub use clock::{Clock, ManualClock, MonotonicClock, WallClock, nanos};
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use connection::{DEFAULT_COMMAND_TIMEOUT, RedisConnection, is_timeout};
pub use error::BackendError;

/// The README's examples, compiled and run with the doc tests, so that the
/// page a new user reads first cannot drift from the code.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
