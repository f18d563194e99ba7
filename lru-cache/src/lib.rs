//! Least-recently-used caches without `unsafe`: an exact [`LruCache`] with
//! O(1) operations, bounded by entry count or by total weight (never
//! exceeded), with per-cache and per-entry time to live, an eviction listener
//! and hit/miss statistics; and a [`ConcurrentLruCache`] shared between
//! threads, sharded by key hash, whose `get_with` loads a missing
//! value once however many callers ask for it (single flight, sync and
//! async).
//!
//! Skip to [`LruCache`] for the single-threaded cache, [`ConcurrentLruCache`]
//! for the shared one, and the [`guide`] for how an LRU works, why this one
//! links entries by index, and when LFU, TinyLFU or S3-FIFO do better.
//!
//! ```
//! use sysblocks_lru_cache::{LruCache, RemovalCause};
//! use std::sync::{Arc, Mutex};
//!
//! let evicted = Arc::new(Mutex::new(Vec::new()));
//! let log = evicted.clone();
//! let mut cache = LruCache::builder()
//!     .capacity(2)
//!     .record_stats()
//!     .eviction_listener(move |k: &&str, _v: &u32, cause| log.lock().unwrap().push((*k, cause)))
//!     .build()?;
//! cache.insert("a", 1);
//! cache.insert("b", 2);
//! cache.get(&"a");          // "b" is now least recently used
//! cache.insert("c", 3);     // evicts "b"
//! assert_eq!(cache.peek(&"b"), None);
//! assert_eq!(*evicted.lock().unwrap(), [("b", RemovalCause::Capacity)]);
//! assert_eq!(cache.stats().hits, 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Crate features
//!
//! This crate has no optional features. Its async single-flight methods work
//! with any executor (they need no runtime of their own).

#![cfg_attr(docsrs, feature(doc_cfg))]
#![doc(test(attr(deny(warnings))))]

mod clock;
mod concurrent;
mod error;
pub mod guide;
mod lru;
mod sync;

pub use clock::{Clock, ManualClock, MonotonicClock};
pub use concurrent::{ConcurrentLruCache, MAX_SHARDS};
pub use error::CacheError;
pub use lru::{CacheStats, Iter, LruBuilder, LruCache, RemovalCause};

/// The README's examples, compiled and run with the doc tests, so that the
/// page a new user reads first cannot drift from the code.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
