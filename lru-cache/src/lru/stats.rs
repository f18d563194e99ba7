//! What a cache reports: [`CacheStats`] and why an entry left
//! ([`RemovalCause`]).

/// Why an entry left the cache (or, for `Replaced`, lost its value).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RemovalCause {
    /// Evicted to make room: it was the least recently used.
    Capacity,
    /// Its time to live ran out.
    Expired,
    /// An `insert` for the same key replaced its value.
    Replaced,
    /// Removed by the caller (`remove`, `pop`, `pop_lru`, `clear`).
    Explicit,
}

/// Counters of a cache's activity since it was built.
///
/// Evictions and expirations are always counted. Hits and misses are counted
/// when the cache was built with [`LruBuilder::record_stats`](crate::LruBuilder::record_stats): a counter
/// updated on every lookup costs about 1.5 ns in a tight loop (each update
/// waits for the previous one to reach memory), so it is opt-in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// `get`/`get_mut` calls that found a live entry (with `record_stats`).
    pub hits: u64,
    /// `get`/`get_mut` calls that found nothing, or only an expired entry
    /// (with `record_stats`).
    pub misses: u64,
    /// Entries evicted for capacity.
    pub evictions: u64,
    /// Entries removed because their time to live ran out.
    pub expirations: u64,
    /// Lookups of a [`ConcurrentLruCache`](crate::ConcurrentLruCache) that
    /// missed but then waited for a load of the same key already in flight
    /// (single flight) instead of loading; they are not in `misses`, which
    /// for a concurrent cache counts the lookups that found nothing to wait
    /// for. Always 0 for an [`LruCache`](crate::LruCache).
    pub coalesced: u64,
}

impl CacheStats {
    /// Hits divided by lookups, coalesced ones included (0 when there were
    /// none).
    pub fn hit_ratio(&self) -> f64 {
        let lookups = self.hits + self.misses + self.coalesced;
        if lookups == 0 { 0.0 } else { self.hits as f64 / lookups as f64 }
    }
}
