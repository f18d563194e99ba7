//! [`ConcurrentLruCache`]: sharded LRU shared between threads, with
//! single-flight loading.

use std::any::Any;
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::hash::{BuildHasher, Hash};
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use hashbrown::DefaultHashBuilder;

use std::borrow::Borrow;
use std::time::Duration;

use crate::clock::Clock;
use crate::error::CacheError;
use crate::lru::{CacheStats, LruCache, RemovalCause};
use crate::sync::{Arc, Condvar, Mutex, MutexGuard};

type AnyError = std::sync::Arc<dyn Any + Send + Sync>;

/// How a load ended, as its waiters see it.
enum Outcome<V> {
    Ready(V),
    /// The loader returned an error (type-erased; each waiter downcasts).
    Failed(AnyError),
    /// The loader panicked or its future was dropped: waiters try again.
    Abandoned,
}

impl<V: Clone> Clone for Outcome<V> {
    fn clone(&self) -> Self {
        match self {
            Outcome::Ready(v) => Outcome::Ready(v.clone()),
            Outcome::Failed(e) => Outcome::Failed(e.clone()),
            Outcome::Abandoned => Outcome::Abandoned,
        }
    }
}

struct FlightState<V> {
    outcome: Option<Outcome<V>>,
    wakers: Vec<Waker>,
}

/// One load in progress; waiters block on `done` (threads) or register a
/// waker (tasks).
struct Flight<V> {
    state: Mutex<FlightState<V>>,
    done: Condvar,
    /// The thread that started the load, so that a loader asking for its
    /// own key does not wait for itself (a certain deadlock).
    leader: std::thread::ThreadId,
}

impl<V: Clone> Flight<V> {
    fn new() -> Self {
        Flight {
            state: Mutex::new(FlightState { outcome: None, wakers: Vec::new() }),
            done: Condvar::new(),
            leader: std::thread::current().id(),
        }
    }

    /// Whether waiting on this flight from the current thread would wait
    /// for a loader that is further up this very thread's stack. (Under
    /// loom every model thread shares one OS thread, so it cannot tell.)
    fn led_by_this_thread(&self) -> bool {
        !cfg!(sysblocks_loom) && self.leader == std::thread::current().id()
    }

    fn finish(&self, outcome: Outcome<V>) {
        let wakers = {
            let mut state = lock(&self.state);
            state.outcome = Some(outcome);
            std::mem::take(&mut state.wakers)
        };
        self.done.notify_all();
        for w in wakers {
            w.wake();
        }
    }

    fn wait(&self) -> Outcome<V> {
        let mut state = lock(&self.state);
        loop {
            if let Some(outcome) = &state.outcome {
                return outcome.clone();
            }
            state = self.done.wait(state).unwrap_or_else(|p| p.into_inner());
        }
    }

    fn poll_outcome(&self, cx: &mut Context<'_>) -> Poll<Outcome<V>> {
        let mut state = lock(&self.state);
        if let Some(outcome) = &state.outcome {
            return Poll::Ready(outcome.clone());
        }
        if !state.wakers.iter().any(|w| w.will_wake(cx.waker())) {
            state.wakers.push(cx.waker().clone());
        }
        Poll::Pending
    }
}

/// Locks, ignoring poison: every critical section here leaves its data
/// consistent before anything that can panic (user code runs unlocked).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A shard on cache lines of its own: two threads working on neighbouring
/// shards would otherwise take turns owning the line the two share (the
/// end of one shard, the lock of the next), as if they shared a lock.
#[repr(align(128))]
struct Padded<T>(T);

impl<T> std::ops::Deref for Padded<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

/// One shard behind its lock, on lines of its own.
type ShardLock<K, V> = Padded<Mutex<Shard<K, V>>>;

struct Shard<K, V> {
    cache: LruCache<K, V>,
    loading: HashMap<K, Arc<Flight<V>>>,
    /// Lookups that missed and joined a load in flight (counted by the
    /// shard's cache as misses too).
    coalesced: u64,
}

impl<K: Hash + Eq, V> Shard<K, V> {
    /// Drops the load of `key` in flight, if any: its result is no longer
    /// stored (a write came after it). Most writes find no load at all,
    /// and then the key is not even hashed.
    fn forget_load<Q>(&mut self, key: &Q)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        if !self.loading.is_empty() {
            self.loading.remove(key);
        }
    }
}

/// A thread-safe LRU cache: keys are spread over shards by hash, each shard
/// an exact [`LruCache`] behind its own lock, so threads working on different
/// shards never wait for each other.
///
/// [`get`](Self::get) returns a clone of the value (store an `Arc<T>` for
/// large values). [`get_with`](Self::get_with) and its
/// fallible and async variants load a missing value **once** however many
/// callers ask for it at the same time (single flight): the first caller runs
/// the loader, the others wait for its result. A loader's error goes to every
/// waiter and is not cached; a loader that panics or is cancelled wakes its
/// waiters, and one of them loads instead, so a key never stays wedged.
///
/// Recency is exact within a shard, approximate across shards (as in every
/// sharded cache). The total capacity is split exactly over the shards, so
/// the cache never holds more than `capacity` entries.
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use sysblocks_lru_cache::ConcurrentLruCache;
///
/// let cache = ConcurrentLruCache::new(1000)?;
/// let loads = AtomicUsize::new(0);
/// std::thread::scope(|s| {
///     for _ in 0..8 {
///         s.spawn(|| {
///             let v = cache.get_with("config", || {
///                 loads.fetch_add(1, Ordering::SeqCst);
///                 "loaded".to_string()
///             });
///             assert_eq!(v, "loaded");
///         });
///     }
/// });
/// assert_eq!(loads.load(Ordering::SeqCst), 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct ConcurrentLruCache<K, V, S = DefaultHashBuilder> {
    shards: Box<[ShardLock<K, V>]>,
    /// Picks a key's shard. Every shard's cache hashes with a clone of it,
    /// so one hash of a key serves both (see `lock_hashed`).
    hasher: S,
}

impl<K, V, S> fmt::Debug for ConcurrentLruCache<K, V, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConcurrentLruCache").field("shards", &self.shards.len()).finish()
    }
}

/// The most shards a [`ConcurrentLruCache`] may have (each is a lock and an
/// `LruCache`, allocated up front).
pub const MAX_SHARDS: usize = 1 << 16;

/// Entries a shard holds at least, when the shard count is the default: a
/// shard of a few entries would be an LRU too small to keep its hot keys.
const MIN_DEFAULT_SHARD_ENTRIES: u64 = 64;

/// The default shard count. A cache bounded by count gets `64 × cores`
/// shards (a power of two, at most [`MAX_SHARDS`]), halved while a shard
/// would hold fewer than [`MIN_DEFAULT_SHARD_ENTRIES`]. With two threads on
/// a Zipf workload, 128 shards took 1.02 and 1.06 of quick_cache's
/// throughput where 32 took 0.82 and 0.93, and 8 about 0.77
/// (BENCHMARKS.md): fewer accesses find their shard's lock taken, and more
/// hot keys are each the most recent entry of their own shard, where a hit
/// writes nothing. A hit costs the same otherwise (one shard is locked
/// either way). A cache bounded by weight keeps `4 × cores`: each shard's
/// share of the weight is the heaviest entry it can hold, so more shards
/// would turn away entries that fit before.
fn default_shards(bound: Bound) -> usize {
    let cores = std::thread::available_parallelism().map_or(4, |n| n.get());
    let per_core = if matches!(bound, Bound::Count(_)) { 64 } else { 4 };
    let mut shards = cores.saturating_mul(per_core).min(MAX_SHARDS).next_power_of_two();
    if let Bound::Count(entries) = bound {
        while shards > 1 && (entries as u64) < shards as u64 * MIN_DEFAULT_SHARD_ENTRIES {
            shards /= 2;
        }
    }
    shards
}

impl<K, V> ConcurrentLruCache<K, V>
where
    K: Hash + Eq + Clone + 'static,
    V: Clone + 'static,
{
    /// A cache of at most `capacity` entries over `64 × cores` shards (fewer
    /// for a small cache: each shard holds at least 64 entries, or there is
    /// one shard).
    ///
    /// # Errors
    /// [`CacheError::ZeroCapacity`] when `capacity` is 0.
    pub fn new(capacity: usize) -> Result<Self, CacheError> {
        Self::builder().capacity(capacity).build()
    }

    /// A cache of at most `capacity` entries over `shards` shards (at most
    /// `capacity` of them, and at most [`MAX_SHARDS`]).
    ///
    /// # Errors
    /// [`CacheError::ZeroCapacity`], [`CacheError::ZeroShards`],
    /// [`CacheError::TooManyShards`], or [`CacheError::CapacityTooLarge`]
    /// when one shard would hold more than an [`LruCache`] can.
    pub fn with_shards(capacity: usize, shards: usize) -> Result<Self, CacheError> {
        Self::builder().capacity(capacity).shards(shards).build()
    }

    /// A builder for everything an [`LruCache`] can have (a weight bound, a
    /// time to live, a clock, an eviction listener) plus the shard count.
    pub fn builder() -> ConcurrentBuilder<K, V> {
        ConcurrentBuilder {
            bound: None,
            shards: None,
            weigher: None,
            ttl: None,
            clock: None,
            listener: None,
        }
    }
}

/// Builds a [`ConcurrentLruCache`]: what [`LruBuilder`](crate::LruBuilder)
/// offers, for every shard, and the number of shards. Statistics are
/// always kept (counters under the shard lock already taken).
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use std::sync::Arc;
/// use std::time::Duration;
/// use sysblocks_lru_cache::{ConcurrentLruCache, ManualClock, RemovalCause};
///
/// let clock = ManualClock::new();
/// let expired = Arc::new(AtomicUsize::new(0));
/// let seen = expired.clone();
/// let cache = ConcurrentLruCache::builder()
///     .max_weight(1 << 20) // 1 MiB of values over all shards
///     .weigher(|_key: &String, value: &Arc<Vec<u8>>| value.len() as u64)
///     .time_to_live(Duration::from_secs(60))
///     .clock(clock.clone())
///     .eviction_listener(move |_key, _value, cause| {
///         if cause == RemovalCause::Expired {
///             seen.fetch_add(1, Ordering::Relaxed);
///         }
///     })
///     .shards(8)
///     .build()?;
/// cache.insert("page".to_string(), Arc::new(vec![0; 1000]));
/// assert!(cache.get("page").is_some()); // lookups take a &str for a String key
/// clock.advance(Duration::from_secs(61));
/// assert!(cache.get("page").is_none()); // expired: never returned
/// cache.purge_expired(); // reclaimed (or by the next write to its shard)
/// assert_eq!(expired.load(Ordering::Relaxed), 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct ConcurrentBuilder<K, V> {
    bound: Option<Bound>,
    shards: Option<usize>,
    weigher: Option<std::sync::Arc<SharedWeigher<K, V>>>,
    ttl: Option<Duration>,
    clock: Option<std::sync::Arc<dyn Clock>>,
    listener: Option<std::sync::Arc<SharedListener<K, V>>>,
}

type SharedWeigher<K, V> = dyn Fn(&K, &V) -> u64 + Send + Sync;
type SharedListener<K, V> = dyn Fn(&K, &V, RemovalCause) + Send + Sync;

#[derive(Debug, Clone, Copy)]
enum Bound {
    Count(usize),
    Weight(u64),
}

impl<K, V> fmt::Debug for ConcurrentBuilder<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConcurrentBuilder")
            .field("bound", &self.bound)
            .field("shards", &self.shards)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl<K, V> ConcurrentBuilder<K, V>
where
    K: Hash + Eq + Clone + 'static,
    V: Clone + 'static,
{
    /// At most `entries` entries in all.
    pub fn capacity(mut self, entries: usize) -> Self {
        self.bound = Some(Bound::Count(entries));
        self
    }

    /// At most this much total weight (with [`weigher`](Self::weigher)),
    /// split evenly over the shards.
    pub fn max_weight(mut self, max: u64) -> Self {
        self.bound = Some(Bound::Weight(max));
        self
    }

    /// How much an entry weighs; without one, every entry weighs 1.
    pub fn weigher(mut self, weigher: impl Fn(&K, &V) -> u64 + Send + Sync + 'static) -> Self {
        self.weigher = Some(std::sync::Arc::new(weigher));
        self
    }

    /// Every entry expires this long after it was inserted (unless inserted
    /// with its own time to live).
    pub fn time_to_live(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// The clock for time to live (a [`ManualClock`](crate::ManualClock)
    /// in tests).
    pub fn clock(mut self, clock: impl Clock + 'static) -> Self {
        self.clock = Some(std::sync::Arc::new(clock));
        self
    }

    /// Called with every entry that leaves the cache or loses its value.
    /// It runs under its shard's lock, from whichever thread caused the
    /// removal: keep it short, and do not call the cache from it (that
    /// would wait for the lock it holds).
    pub fn eviction_listener(
        mut self,
        listener: impl Fn(&K, &V, RemovalCause) + Send + Sync + 'static,
    ) -> Self {
        self.listener = Some(std::sync::Arc::new(listener));
        self
    }

    /// The number of shards (at most the capacity and at most
    /// [`MAX_SHARDS`]). The default is `64 × cores`, halved while a
    /// count-bounded cache would give a shard fewer than 64 entries; a
    /// cache bounded by weight gets `4 × cores` (each shard's share of the
    /// weight bounds the heaviest entry it can hold).
    pub fn shards(mut self, shards: usize) -> Self {
        self.shards = Some(shards);
        self
    }

    /// Builds the cache.
    ///
    /// # Errors
    /// [`CacheError::ZeroCapacity`] for a zero bound or none at all,
    /// [`CacheError::ZeroShards`], [`CacheError::TooManyShards`],
    /// [`CacheError::CapacityTooLarge`] when one shard would hold more than
    /// an [`LruCache`] can, [`CacheError::WeigherWithoutMaxWeight`].
    pub fn build(self) -> Result<ConcurrentLruCache<K, V>, CacheError> {
        let bound = self.bound.ok_or(CacheError::ZeroCapacity)?;
        let total = match bound {
            Bound::Count(0) | Bound::Weight(0) => return Err(CacheError::ZeroCapacity),
            Bound::Count(n) => n as u64,
            Bound::Weight(w) => w,
        };
        let shards = self.shards.unwrap_or_else(|| default_shards(bound));
        if shards == 0 {
            return Err(CacheError::ZeroShards);
        }
        if shards > MAX_SHARDS {
            return Err(CacheError::TooManyShards { requested: shards, max: MAX_SHARDS });
        }
        let n = u64::try_from(shards).unwrap_or(u64::MAX).min(total);
        let hasher = DefaultHashBuilder::default();
        let shards = (0..n)
            .map(|i| {
                // Split exactly: the first `total % n` shards take one more.
                let share = total / n + u64::from(i < total % n);
                let mut builder = LruCache::builder()
                    .hasher(hasher.clone())
                    .reserve_at_most(crate::lru::DEFAULT_RESERVE / n as usize)
                    .record_stats();
                builder = match bound {
                    Bound::Count(_) => {
                        builder.capacity(usize::try_from(share).unwrap_or(usize::MAX))
                    }
                    Bound::Weight(_) => builder.max_weight(share),
                };
                if let Some(weigher) = &self.weigher {
                    let weigher = weigher.clone();
                    builder = builder.weigher(move |k, v| weigher(k, v));
                }
                if let Some(ttl) = self.ttl {
                    builder = builder.time_to_live(ttl);
                }
                if let Some(clock) = &self.clock {
                    builder = builder.clock(clock.clone());
                }
                if let Some(listener) = &self.listener {
                    let listener = listener.clone();
                    builder = builder.eviction_listener(move |k, v, cause| listener(k, v, cause));
                }
                builder.build().map(|cache| {
                    Padded(Mutex::new(Shard { cache, loading: HashMap::new(), coalesced: 0 }))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ConcurrentLruCache { shards: shards.into_boxed_slice(), hasher })
    }
}

/// Who runs the loader.
enum Role<V> {
    Lead(Arc<Flight<V>>),
    Wait(Arc<Flight<V>>),
}

/// Held by the caller running a loader. If it is dropped before
/// `complete` (the loader panicked, or its future was dropped), it removes
/// the flight and wakes the waiters so that one of them loads instead.
struct LeadGuard<'a, K: Hash + Eq + Clone, V: Clone, S: BuildHasher> {
    cache: &'a ConcurrentLruCache<K, V, S>,
    key: &'a K,
    flight: Arc<Flight<V>>,
    done: bool,
}

/// How a loaded value is stored.
#[derive(Clone, Copy)]
enum Keep {
    /// With the cache's time to live.
    Default,
    /// With its own time to live.
    For(Duration),
    /// Not at all (handed to the waiting callers only).
    Not,
}

impl<K: Hash + Eq + Clone, V: Clone, S: BuildHasher> LeadGuard<'_, K, V, S> {
    fn complete(self, outcome: Outcome<V>) {
        self.complete_keeping(outcome, Keep::Default);
    }

    fn complete_keeping(mut self, outcome: Outcome<V>, keep: Keep) {
        {
            let mut shard = self.cache.lock_shard(self.key);
            // Only a load that is still the key's current one may store its
            // value: an insert, remove or clear during the load detached it,
            // and what they wrote is newer than what the loader read.
            if self.detach_from(&mut shard)
                && let Outcome::Ready(v) = &outcome
            {
                match keep {
                    Keep::Default => {
                        shard.cache.insert(self.key.clone(), v.clone());
                    }
                    Keep::For(ttl) => {
                        shard.cache.insert_with_ttl(self.key.clone(), v.clone(), ttl);
                    }
                    Keep::Not => {}
                }
            }
        }
        self.flight.finish(outcome);
        self.done = true;
    }

    /// Removes this flight from the shard's loads if it is still there
    /// (not replaced by a later load after a write detached it); returns
    /// whether it was.
    fn detach_from(&self, shard: &mut Shard<K, V>) -> bool {
        let current = shard.loading.get(self.key).is_some_and(|f| Arc::ptr_eq(f, &self.flight));
        if current {
            shard.loading.remove(self.key);
        }
        current
    }
}

impl<K: Hash + Eq + Clone, V: Clone, S: BuildHasher> Drop for LeadGuard<'_, K, V, S> {
    fn drop(&mut self) {
        if !self.done {
            self.detach_from(&mut self.cache.lock_shard(self.key));
            self.flight.finish(Outcome::Abandoned);
        }
    }
}

/// The shard of a key whose hash is `h`, out of `n` (at most
/// [`MAX_SHARDS`]): bits 20 to 51 of the hash scaled to `0..n` by a
/// multiply and a shift, not a division (a 64-bit `%` costs tens of cycles
/// on every access). The shard fixes only the top bits of that window,
/// which are neither the low bits that place a key in its shard's table
/// nor the top seven bits the table keeps as a tag, so the keys of one
/// shard still spread over its whole table.
#[inline]
fn shard_index(h: u64, n: usize) -> usize {
    ((u64::from((h >> 20) as u32) * n as u64) >> 32) as usize
}

impl<K, V, S> ConcurrentLruCache<K, V, S>
where
    K: Hash + Eq + Clone,
    V: Clone,
    S: BuildHasher,
{
    fn lock_shard<Q: Hash + ?Sized>(&self, key: &Q) -> MutexGuard<'_, Shard<K, V>> {
        self.lock_hashed(key).1
    }

    /// The key's hash and its shard, locked. Every shard hashes with a
    /// clone of this cache's hasher, so the hash serves the shard's table
    /// too: the hot paths hash a key once.
    #[inline]
    fn lock_hashed<Q: Hash + ?Sized>(&self, key: &Q) -> (u64, MutexGuard<'_, Shard<K, V>>) {
        let hash = self.hasher.hash_one(key);
        (hash, lock(&self.shards[shard_index(hash, self.shards.len())]))
    }

    /// A clone of the value for `key`, marking it most recently used. Takes
    /// any borrowed form of the key (`&str` for a `String` key).
    pub fn get<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let (hash, mut shard) = self.lock_hashed(key);
        shard.cache.get_hashed(hash, key).cloned()
    }

    /// How many callers are waiting for the load of `key` now in flight
    /// (0 when none is): for metrics, and for tests that must know a
    /// waiter has queued.
    #[cfg(not(sysblocks_loom))]
    pub fn waiters<Q>(&self, key: &Q) -> usize
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        // The flight is held by the shard, by its loader and by each waiter.
        self.lock_shard(key).loading.get(key).map_or(0, |f| Arc::strong_count(f).saturating_sub(2))
    }

    /// Whether `key` is cached (does not mark it used).
    pub fn contains<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.lock_shard(key).cache.contains(key)
    }

    /// Inserts or replaces `key`; returns what was pushed out of its shard
    /// (see [`LruCache::insert`]). A load of `key` in flight no longer stores
    /// its result (this write is newer); its callers still get it.
    pub fn insert(&self, key: K, value: V) -> Option<(K, V)> {
        let (hash, mut shard) = self.lock_hashed(&key);
        shard.forget_load(&key);
        shard.cache.insert_hashed(hash, key, value)
    }

    /// As [`insert`](Self::insert), with a time to live for this entry only.
    pub fn insert_with_ttl(&self, key: K, value: V, ttl: Duration) -> Option<(K, V)> {
        let mut shard = self.lock_shard(&key);
        shard.forget_load(&key);
        shard.cache.insert_with_ttl(key, value, ttl)
    }

    /// Removes `key` and returns its value. A load of `key` in flight no
    /// longer stores its result (as with [`insert`](Self::insert)).
    pub fn remove<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let mut shard = self.lock_shard(key);
        shard.forget_load(key);
        shard.cache.pop(key)
    }

    /// The number of cached entries (summed over shards; a moment's view).
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| lock(s).cache.len()).sum()
    }

    /// Whether no entries are cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The number of shards.
    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// Removes every entry whose time to live has run out, in every shard
    /// (expired entries are never returned, and are otherwise reclaimed by
    /// the next write to their shard).
    pub fn purge_expired(&self) {
        for s in self.shards.iter() {
            lock(s).cache.purge_expired();
        }
    }

    /// Removes every entry. Loads in flight still give their callers a
    /// value, but do not store it.
    pub fn clear(&self) {
        for s in self.shards.iter() {
            let mut shard = lock(s);
            shard.loading.clear();
            shard.cache.clear();
        }
    }

    /// Hit, miss, coalesced-wait and eviction counts summed over shards. A
    /// lookup that joined a load in flight counts as `coalesced`, not as a
    /// miss.
    pub fn stats(&self) -> CacheStats {
        self.shards.iter().fold(CacheStats::default(), |acc, s| {
            let shard = lock(s);
            let st = shard.cache.stats();
            CacheStats {
                hits: acc.hits + st.hits,
                misses: acc.misses + st.misses.saturating_sub(shard.coalesced),
                evictions: acc.evictions + st.evictions,
                expirations: acc.expirations + st.expirations,
                coalesced: acc.coalesced + shard.coalesced,
            }
        })
    }

    /// The cached value, or the role this caller plays in loading it.
    fn begin(&self, key: &K) -> Result<V, Role<V>> {
        let mut shard = self.lock_shard(key);
        if let Some(v) = shard.cache.get(key) {
            return Ok(v.clone());
        }
        if let Some(flight) = shard.loading.get(key).cloned() {
            shard.coalesced += 1;
            return Err(Role::Wait(flight));
        }
        let flight = Arc::new(Flight::new());
        shard.loading.insert(key.clone(), flight.clone());
        Err(Role::Lead(flight))
    }

    /// The value for `key`, running `init` to load it when it is missing.
    /// Concurrent callers for the same key run `init` once: one caller loads,
    /// the rest block until it is done. If `init` panics, the panic goes to
    /// its caller and one of the waiters loads instead.
    ///
    /// A loader that asks for its own key (on the same thread) is not made
    /// to wait for itself, which would deadlock: that inner call runs its
    /// own `init` and its value is returned without being cached. (The
    /// async variants cannot see this: a loader future that awaits a load
    /// of its own key waits forever.)
    pub fn get_with(&self, key: K, init: impl FnOnce() -> V) -> V {
        let mut init = Some(init);
        loop {
            match self.begin(&key) {
                Ok(v) => return v,
                Err(Role::Lead(flight)) => {
                    let guard = LeadGuard { cache: self, key: &key, flight, done: false };
                    let Some(init) = init.take() else { unreachable!("a caller leads once") };
                    let v = init();
                    guard.complete(Outcome::Ready(v.clone()));
                    return v;
                }
                Err(Role::Wait(flight)) => {
                    if flight.led_by_this_thread() {
                        // Called from inside this key's own loader: load
                        // without single flight rather than deadlock.
                        let Some(init) = init.take() else { unreachable!("a caller loads once") };
                        return init();
                    }
                    if let Outcome::Ready(v) = flight.wait() {
                        return v;
                    }
                    // Failed (a fallible loader of another caller) or
                    // abandoned: try again, possibly as the loader.
                }
            }
        }
    }

    /// As [`get_with`](Self::get_with) for a fallible
    /// loader: its error is returned to this caller and to every caller
    /// waiting on the same load, and nothing is cached.
    ///
    /// # Errors
    /// The loader's error, shared.
    pub fn try_get_with<E>(
        &self,
        key: K,
        init: impl FnOnce() -> Result<V, E>,
    ) -> Result<V, std::sync::Arc<E>>
    where
        E: Send + Sync + 'static,
    {
        let mut init = Some(init);
        loop {
            match self.begin(&key) {
                Ok(v) => return Ok(v),
                Err(Role::Lead(flight)) => {
                    let guard = LeadGuard { cache: self, key: &key, flight, done: false };
                    let Some(init) = init.take() else { unreachable!("a caller leads once") };
                    return settle(guard, init());
                }
                Err(Role::Wait(flight)) => {
                    if flight.led_by_this_thread() {
                        let Some(init) = init.take() else { unreachable!("a caller loads once") };
                        return init().map_err(std::sync::Arc::new);
                    }
                    if let Some(result) = waiter_result(flight.wait()) {
                        return result;
                    }
                }
            }
        }
    }

    /// Async single flight: the value for `key`, awaiting `init` to load it
    /// when it is missing. Concurrent callers await one load; its error goes
    /// to all of them and is not cached. Cancel-safe: dropping the loading
    /// future wakes the waiters and one of them loads instead.
    ///
    /// # Errors
    /// The loader's error, shared.
    pub async fn try_get_with_async<E, F>(&self, key: K, init: F) -> Result<V, std::sync::Arc<E>>
    where
        E: Send + Sync + 'static,
        F: Future<Output = Result<V, E>>,
    {
        self.load_async(key, async move { init.await.map(|v| (v, Keep::Default)) }).await
    }

    /// Async single flight for an infallible loader.
    pub async fn get_with_async<F>(&self, key: K, init: F) -> V
    where
        F: Future<Output = V>,
    {
        let result = self
            .try_get_with_async(key, async move { Ok::<V, std::convert::Infallible>(init.await) })
            .await;
        match result {
            Ok(v) => v,
            Err(never) => match *never {},
        }
    }
}

impl<K, V, S> ConcurrentLruCache<K, V, S>
where
    K: Hash + Eq + Clone,
    V: Clone,
    S: BuildHasher,
{
    /// As [`try_get_with_async`](Self::try_get_with_async), for a loader
    /// that decides how long its value may be kept: `Some(ttl)` caches it
    /// for `ttl`, `None` (or a zero `ttl`) hands it to this caller and to
    /// every caller waiting on the same load without caching it. An HTTP
    /// cache's loader reads the time to live from the response's
    /// `Cache-Control`, and `no-store` means `None`; the callers that asked
    /// at once still share one request.
    ///
    /// # Errors
    /// The loader's error, shared.
    pub async fn try_get_with_ttl_async<E, F>(
        &self,
        key: K,
        init: F,
    ) -> Result<V, std::sync::Arc<E>>
    where
        E: Send + Sync + 'static,
        F: Future<Output = Result<(V, Option<Duration>), E>>,
    {
        let keep = |ttl: Option<Duration>| match ttl {
            Some(ttl) if !ttl.is_zero() => Keep::For(ttl),
            _ => Keep::Not,
        };
        self.load_async(key, async move { init.await.map(|(v, ttl)| (v, keep(ttl))) }).await
    }

    /// The async single flight both async loaders share: `init` also says
    /// how its value is kept.
    async fn load_async<E, F>(&self, key: K, init: F) -> Result<V, std::sync::Arc<E>>
    where
        E: Send + Sync + 'static,
        F: Future<Output = Result<(V, Keep), E>>,
    {
        let mut init = Some(init);
        loop {
            match self.begin(&key) {
                Ok(v) => return Ok(v),
                Err(Role::Lead(flight)) => {
                    let guard = LeadGuard { cache: self, key: &key, flight, done: false };
                    let Some(init) = init.take() else { unreachable!("a caller leads once") };
                    return match init.await {
                        Ok((v, keep)) => {
                            guard.complete_keeping(Outcome::Ready(v.clone()), keep);
                            Ok(v)
                        }
                        Err(e) => {
                            let e = std::sync::Arc::new(e);
                            guard.complete(Outcome::Failed(e.clone()));
                            Err(e)
                        }
                    };
                }
                Err(Role::Wait(flight)) => {
                    let outcome = WaitFlight { flight: &flight }.await;
                    if let Some(result) = waiter_result(outcome) {
                        return result;
                    }
                }
            }
        }
    }
}

/// Completes a lead with the loader's result.
fn settle<K, V, S, E>(
    guard: LeadGuard<'_, K, V, S>,
    result: Result<V, E>,
) -> Result<V, std::sync::Arc<E>>
where
    K: Hash + Eq + Clone,
    V: Clone,
    S: BuildHasher,
    E: Send + Sync + 'static,
{
    match result {
        Ok(v) => {
            guard.complete(Outcome::Ready(v.clone()));
            Ok(v)
        }
        Err(e) => {
            let e = std::sync::Arc::new(e);
            guard.complete(Outcome::Failed(e.clone()));
            Err(e)
        }
    }
}

/// What a waiter returns, or `None` to try again.
fn waiter_result<V, E: Send + Sync + 'static>(
    outcome: Outcome<V>,
) -> Option<Result<V, std::sync::Arc<E>>> {
    match outcome {
        Outcome::Ready(v) => Some(Ok(v)),
        // An error of the type this caller expects is shared; another type
        // (a different loader kind) means this caller loads for itself.
        Outcome::Failed(e) => e.downcast::<E>().ok().map(Err),
        Outcome::Abandoned => None,
    }
}

/// Waits for a flight's outcome without blocking the executor.
struct WaitFlight<'a, V> {
    flight: &'a Flight<V>,
}

impl<V: Clone> Future for WaitFlight<'_, V> {
    type Output = Outcome<V>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Outcome<V>> {
        self.flight.poll_outcome(cx)
    }
}

#[cfg(all(test, not(sysblocks_loom)))]
mod tests {
    use super::{MAX_SHARDS, shard_index};
    use std::hash::BuildHasher;

    /// Every shard count, the smallest and largest included, gets indices
    /// in range, and a million hashed keys spread evenly: each shard's
    /// count within 7 standard deviations of its share (a shard's count is
    /// binomial, about `sqrt(share)` wide), which any seed of the hasher
    /// meets unless the index is skewed. A fixed percentage would not be
    /// fair to every count: with 1,000 shards of 1,000 keys, 5% is only 1.6
    /// deviations, and some seeds failed it.
    #[test]
    fn shard_index_is_in_range_and_even() {
        let hasher = hashbrown::DefaultHashBuilder::default();
        for n in [1, 2, 3, 7, 8, 13, 64, 1000, MAX_SHARDS] {
            let mut counts = vec![0u32; n];
            let keys = 1_000_000u64;
            for k in 0..keys {
                let i = shard_index(hasher.hash_one(k), n);
                assert!(i < n, "index {i} for {n} shards");
                counts[i] += 1;
            }
            let share = keys as f64 / n as f64;
            if share >= 1000.0 {
                for (i, &c) in counts.iter().enumerate() {
                    let off = (f64::from(c) - share).abs();
                    assert!(
                        off < 7.0 * share.sqrt(),
                        "shard {i} of {n} holds {c} keys, {share} expected"
                    );
                }
            }
            // Extreme hashes stay in range too.
            for h in [0, u64::MAX, 1 << 20, (1 << 52) - 1] {
                assert!(shard_index(h, n) < n);
            }
        }
    }
}
