//! Counters for hot keys: a [`StripedCounter`] that scales with cores inside
//! one process, and (feature `redis`) a [`RedisShardedCounter`] that spreads
//! one logical counter over N Redis keys (and so over the nodes of a Redis
//! Cluster), with exact, cached and approximate reads, plus a
//! [`BatchedCounter`] that counts locally and flushes to Redis exactly once
//! per delta (a [`KeyedBatchedCounter`] when the names are only known as
//! they come: `add("/pricing", 1)`).
//!
//! Skip to [`StripedCounter`] for in-process counting, `RedisShardedCounter`
//! for a counter shared by many servers, `BatchedCounter` for millions of
//! increments per second, and the [`guide`] for hot keys, shard counts, read
//! strategies and cluster slots.
//!
//! ```
//! use sysblocks_sharded_counter::StripedCounter;
//!
//! let requests = StripedCounter::new();
//! std::thread::scope(|s| {
//!     for _ in 0..2 {
//!         s.spawn(|| for _ in 0..10_000 { requests.add(1) });
//!     }
//! });
//! assert_eq!(requests.sum(), 20_000);
//! assert_eq!(requests.take(), 20_000); // and back to 0
//! assert_eq!(requests.sum(), 0);
//! ```
//!
//! # Crate features
//!
//! * **redis** - `RedisShardedCounter`, `BatchedCounter`,
//!   `KeyedBatchedCounter` and
//!   `RedisConnection` (a standalone `ConnectionManager` or a cluster
//!   connection, the workspace's one connection type from `sysblocks-core`,
//!   which bounds every command: one second by default, set with
//!   `RedisConnection::with_timeout`); brings in tokio and redis.
//!
#![cfg_attr(not(feature = "redis"), doc = "[`RedisShardedCounter`]: crate#crate-features")]
#![cfg_attr(not(feature = "redis"), doc = "[`BatchedCounter`]: crate#crate-features")]
#![cfg_attr(not(feature = "redis"), doc = "[`KeyedBatchedCounter`]: crate#crate-features")]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![doc(test(attr(deny(warnings))))]

#[cfg(feature = "redis")]
mod batched;
mod error;
pub mod guide;
#[cfg(feature = "redis")]
mod keyed_batched;
#[cfg(feature = "redis")]
mod sharded;
mod striped;
mod sync;
mod thread_index;

#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use batched::{BatchedCounter, BatchedHandle};
pub use error::CounterError;
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use keyed_batched::{KeyedBatchConfig, KeyedBatchedCounter};
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use sharded::{
    AggregatorHandle, MAX_SHARDS, RedisShardedCounter, layout_key, shard_for_hint, shard_key,
    total_key,
};
pub use striped::StripedCounter;
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use sysblocks_core::RedisConnection;
/// For the loom models only: gives the calling thread's index back, as its
/// exit does outside loom.
#[cfg(sysblocks_loom)]
#[doc(hidden)]
pub use thread_index::give_back_this_threads_index;

/// The README's examples, compiled and run with the doc tests, so that the
/// page a new user reads first cannot drift from the code.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
