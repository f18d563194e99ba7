//! [`LruBuilder`]: an [`LruCache`] with a weight bound, a time to live, a
//! clock, a listener or a hasher.

use std::collections::BinaryHeap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use hashbrown::{DefaultHashBuilder, HashTable};

use super::slab::{Slots, sentinel_links};
use super::{
    Bound, COUNT_STATS, CacheStats, Listener, LruCache, MAX_ENTRIES, RemovalCause, Weigher,
};
use crate::clock::{Clock, MonotonicClock};
use crate::error::CacheError;

/// Builds an [`LruCache`] with a weight bound, a time to live, a clock, a
/// listener or a hasher.
///
/// ```
/// use std::time::Duration;
/// use sysblocks_lru_cache::LruCache;
///
/// // At most 1 KiB of values, each entry lives 60 s.
/// let mut cache = LruCache::builder()
///     .max_weight(1024)
///     .weigher(|_key: &u32, value: &String| value.len() as u64)
///     .time_to_live(Duration::from_secs(60))
///     .build()?;
/// cache.insert(1, "x".repeat(600));
/// cache.insert(2, "y".repeat(600)); // 1200 > 1024: entry 1 is evicted
/// assert!(!cache.contains(&1));
/// assert_eq!(cache.weight(), 600);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct LruBuilder<K, V, S = DefaultHashBuilder> {
    pub(super) bound: Option<Bound>,
    pub(super) weigher: Option<Weigher<K, V>>,
    pub(super) ttl: Option<Duration>,
    pub(super) clock: Option<Arc<dyn Clock>>,
    pub(super) listener: Option<Listener<K, V>>,
    pub(super) record_stats: bool,
    /// The most entries `build` makes room for up front.
    pub(super) reserve_at_most: usize,
    pub(super) hasher: S,
}

impl<K, V, S: fmt::Debug> fmt::Debug for LruBuilder<K, V, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LruBuilder").field("bound", &self.bound).field("ttl", &self.ttl).finish()
    }
}

impl<K, V, S> LruBuilder<K, V, S> {
    /// Bound the cache to `entries` entries.
    pub fn capacity(mut self, entries: usize) -> Self {
        self.bound = Some(Bound::Count(entries));
        self
    }

    /// Bound the cache to a total weight (with [`weigher`](Self::weigher)).
    pub fn max_weight(mut self, max: u64) -> Self {
        self.bound = Some(Bound::Weight(max));
        self
    }

    /// How much an entry weighs (bytes, cost, ...). Without a weigher every
    /// entry weighs 1.
    pub fn weigher(mut self, weigher: impl Fn(&K, &V) -> u64 + Send + Sync + 'static) -> Self {
        self.weigher = Some(Box::new(weigher));
        self
    }

    /// Every entry expires this long after it was inserted (unless inserted with its
    /// own time to live). A time to live past what the clock can represent
    /// (`Duration::MAX`, say) means "never expires".
    pub fn time_to_live(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// The clock for time to live (a [`ManualClock`](crate::ManualClock) in tests).
    pub fn clock(mut self, clock: impl Clock + 'static) -> Self {
        self.clock = Some(Arc::new(clock));
        self
    }

    /// Called with every entry that leaves the cache or loses its value,
    /// before it is dropped or returned.
    pub fn eviction_listener(
        mut self,
        listener: impl FnMut(&K, &V, RemovalCause) + Send + 'static,
    ) -> Self {
        self.listener = Some(Box::new(listener));
        self
    }

    /// Count hits and misses (see [`CacheStats`]); off by default.
    pub fn record_stats(mut self) -> Self {
        self.record_stats = true;
        self
    }

    /// Use another hasher for the key index.
    pub fn hasher<S2>(self, hasher: S2) -> LruBuilder<K, V, S2> {
        LruBuilder {
            bound: self.bound,
            weigher: self.weigher,
            ttl: self.ttl,
            clock: self.clock,
            listener: self.listener,
            record_stats: self.record_stats,
            reserve_at_most: self.reserve_at_most,
            hasher,
        }
    }

    /// Makes room for at most `entries` up front (the default is 65,536); a
    /// cache grows past it as it fills. A sharded cache splits the default
    /// over its shards, so that many shards of a huge cache do not each
    /// allocate it.
    pub(crate) fn reserve_at_most(mut self, entries: usize) -> Self {
        self.reserve_at_most = entries;
        self
    }

    /// Builds the cache.
    ///
    /// # Errors
    /// [`CacheError::ZeroCapacity`] for a zero bound or none at all,
    /// [`CacheError::CapacityTooLarge`] beyond `u32::MAX - 1` entries,
    /// [`CacheError::WeigherWithoutMaxWeight`] for a weigher with a count bound.
    pub fn build(self) -> Result<LruCache<K, V, S>, CacheError> {
        let bound = self.bound.ok_or(CacheError::ZeroCapacity)?;
        check_bound(bound)?;
        if self.weigher.is_some() && matches!(bound, Bound::Count(_)) {
            return Err(CacheError::WeigherWithoutMaxWeight);
        }
        // A count-bounded cache will fill up: size the index once. (Capped so
        // that a huge bound does not allocate up front.)
        let reserve = match bound {
            Bound::Count(n) => n.min(self.reserve_at_most),
            Bound::Weight(_) => 0,
        };
        Ok(LruCache {
            table: HashTable::with_capacity(reserve),
            slots: Slots::new(reserve, self.weigher.is_some()),
            links: sentinel_links(reserve),
            free: Vec::new(),
            len: 0,
            bound,
            total_weight: 0,
            weigher: self.weigher,
            ttl: self.ttl,
            clock: self.clock.unwrap_or_else(|| Arc::new(MonotonicClock::new())),
            expiry: BinaryHeap::new(),
            listener: self.listener,
            stats: CacheStats::default(),
            opt_in: if self.record_stats { COUNT_STATS } else { 0 },
            next_fresh: 1,
            hasher: self.hasher,
        })
    }
}

pub(super) fn check_bound(bound: Bound) -> Result<(), CacheError> {
    match bound {
        Bound::Count(0) | Bound::Weight(0) => Err(CacheError::ZeroCapacity),
        Bound::Count(n) if n > MAX_ENTRIES => Err(CacheError::CapacityTooLarge { requested: n }),
        _ => Ok(()),
    }
}
