//! [`LruCache`]: an exact LRU on an index-linked slab. The slab and its
//! recency list are in `slab.rs`, the builder in `builder.rs`, the iterator
//! in `iter.rs`, the statistics in `stats.rs`; this file is the cache's
//! operations.

mod builder;
mod iter;
mod slab;
mod stats;

pub use builder::LruBuilder;
pub use iter::Iter;
pub use stats::{CacheStats, RemovalCause};

use builder::check_bound;
use slab::{Bucket, Entry, Link, Place, SENTINEL, Slots, promote, sentinel_links};

use std::borrow::Borrow;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::sync::Arc;
use std::time::Duration;

use hashbrown::hash_table::Entry as TableEntry;
use hashbrown::{DefaultHashBuilder, HashTable};

use crate::clock::Clock;
use crate::error::CacheError;

/// `opt_in` bit: count hits and misses.
const COUNT_STATS: u8 = 1;
/// `opt_in` bit: some entry has had a time to live, so reads check expiry.
const CHECK_EXPIRY: u8 = 2;

/// The most entries a cache makes room for when it is built (a cache bounded
/// by count will fill up, so sizing once saves rehashing; a huge bound does
/// not allocate up front).
pub(crate) const DEFAULT_RESERVE: usize = 1 << 16;

/// Entries per cache, at most (slots are `u32`, one is the sentinel).
const MAX_ENTRIES: usize = u32::MAX as usize - 1;

/// What bounds the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Bound {
    /// At most this many entries.
    Count(usize),
    /// At most this much total weight.
    Weight(u64),
}

type Weigher<K, V> = Box<dyn Fn(&K, &V) -> u64 + Send + Sync>;
type Listener<K, V> = Box<dyn FnMut(&K, &V, RemovalCause) + Send>;

/// An exact least-recently-used cache with O(1) operations.
///
/// Entries live in a hash table together with a slot number; the recency
/// list links slots by `u32` indices, not pointers. There is no `unsafe`
/// code (the crate forbids it): the `lru` crate's raw-pointer list has had
/// soundness advisories, and this design cannot have them. See the
/// [guide](crate::guide) for the layout.
///
/// Bounded by entry count ([`new`](Self::new)) or by total weight
/// ([`LruCache::builder`] with a weigher); the bound is never exceeded.
/// Optional time to live per cache and per entry, through an injectable
/// [`Clock`]; an expired entry is never returned. An eviction listener hears
/// about every entry that leaves, with its [`RemovalCause`].
///
/// ```
/// use sysblocks_lru_cache::LruCache;
///
/// let mut cache = LruCache::new(2)?;
/// cache.insert("a", 1);
/// cache.insert("b", 2);
/// assert_eq!(cache.get(&"a"), Some(&1)); // "a" is now most recent
/// let evicted = cache.insert("c", 3);       // so "b" is evicted
/// assert_eq!(evicted, Some(("b", 2)));
/// assert_eq!(cache.iter().map(|(k, _)| *k).collect::<Vec<_>>(), ["c", "a"]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct LruCache<K, V, S = DefaultHashBuilder> {
    /// The entries (key, value, slot). A probe compares keys, and a hit
    /// reads the value, in the table's own memory.
    table: HashTable<Bucket<K, V>>,
    /// Per slot: hash, and weight and expiry where kept.
    slots: Slots,
    links: Vec<Link>,
    free: Vec<u32>,
    len: usize,
    bound: Bound,
    /// Kept in 128 bits so that no sum of `u64` weights can overflow on
    /// the way to an eviction (a bound of `u64::MAX` is allowed).
    total_weight: u128,
    weigher: Option<Weigher<K, V>>,
    ttl: Option<Duration>,
    clock: Arc<dyn Clock>,
    /// Expiry times of entries that have one (min-heap; stale items are
    /// skipped when they surface).
    expiry: BinaryHeap<Reverse<(u64, u32)>>,
    listener: Option<Listener<K, V>>,
    stats: CacheStats,
    /// Opt-in work on reads, as bits ([`COUNT_STATS`], [`CHECK_EXPIRY`]), so
    /// that a plain cache pays one test per read for both.
    opt_in: u8,
    /// The next never-used slot (slots below it are live or on the free list).
    next_fresh: u32,
    hasher: S,
}

impl<K, V, S> fmt::Debug for LruCache<K, V, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LruCache")
            .field("len", &self.len)
            .field("bound", &self.bound)
            .field("total_weight", &self.total_weight)
            .field("ttl", &self.ttl)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl<K: Hash + Eq, V> LruCache<K, V> {
    /// A cache of at most `capacity` entries.
    ///
    /// # Errors
    /// [`CacheError::ZeroCapacity`] when `capacity` is 0.
    pub fn new(capacity: usize) -> Result<Self, CacheError> {
        Self::builder().capacity(capacity).build()
    }

    /// A builder for weights, time to live, a clock or a listener.
    pub fn builder() -> LruBuilder<K, V> {
        LruBuilder {
            bound: None,
            weigher: None,
            ttl: None,
            clock: None,
            listener: None,
            record_stats: false,
            reserve_at_most: DEFAULT_RESERVE,
            hasher: DefaultHashBuilder::default(),
        }
    }
}

impl<K: Hash + Eq, V, S: BuildHasher> LruCache<K, V, S> {
    // ----- the slab and the list -------------------------------------------

    /// The most recently used slot (the sentinel when empty).
    #[inline]
    fn head(&self) -> u32 {
        self.links[SENTINEL as usize].next
    }

    /// The least recently used slot (the sentinel when empty).
    #[inline]
    fn tail(&self) -> u32 {
        self.links[SENTINEL as usize].prev
    }

    /// The links as a slice whose length is a power of two. Indexing it with
    /// `i & (len - 1)` changes no valid slot (every slot is below `len`),
    /// and lets the compiler drop the bounds checks on the hot path: a
    /// masked index is provably in range once the slice is known non-empty.
    #[inline]
    fn links_pow2(&mut self) -> Option<(&mut [Link], usize)> {
        let links = self.links.as_mut_slice();
        if links.is_empty() {
            return None;
        }
        let mask = links.len() - 1;
        Some((links, mask))
    }

    #[inline]
    fn unlink(&mut self, i: u32) {
        let Some((links, m)) = self.links_pow2() else { return };
        let Link { prev, next } = links[i as usize & m];
        links[prev as usize & m].next = next;
        links[next as usize & m].prev = prev;
    }

    #[inline]
    fn push_front(&mut self, i: u32) {
        let Some((links, m)) = self.links_pow2() else { return };
        let head = links[SENTINEL as usize & m].next;
        links[i as usize & m] = Link { prev: SENTINEL, next: head };
        links[head as usize & m].prev = i;
        links[SENTINEL as usize & m].next = i;
    }

    #[inline]
    fn promote(&mut self, i: u32) {
        promote(&mut self.links, i);
    }

    #[inline(always)]
    fn find<Q>(&self, hash: u64, key: &Q) -> Option<u32>
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        self.table.find(hash, |b| b.key.borrow() == key).map(|b| b.slot)
    }

    /// Takes entry `i` out of every structure; the cache is consistent when
    /// this returns, so dropping the entry afterwards (which may panic in a
    /// user's `Drop`) cannot corrupt it.
    fn detach(&mut self, i: u32) -> Entry<K, V> {
        self.unlink(i);
        let (bucket, weight, expires) =
            (self.slots.places[i as usize].bucket, self.slots.weight(i), self.slots.expires(i));
        let (key, value) = self.take_bucket(i, bucket);
        // A free slot has no expiry (an expiry-heap item for it is stale).
        self.slots.set_weight_and_expiry(i, 0, None);
        self.free.push(i);
        self.len -= 1;
        self.total_weight -= u128::from(weight);
        Entry { key, value, expires }
    }

    /// Takes live slot `i`'s entry out of its table bucket (`bucket`, where
    /// its place says it is), leaving the slot's own records alone.
    #[inline]
    fn take_bucket(&mut self, i: u32, bucket: usize) -> (K, V) {
        let Ok(found) = self.table.get_bucket_entry(bucket) else {
            unreachable!("live slot {i} has a bucket")
        };
        debug_assert_eq!(found.get().slot, i, "a slot's place holds its entry");
        let (Bucket { key, value, .. }, _) = found.remove();
        (key, value)
    }

    /// Puts the entry of an absent key into the table, its slot already
    /// set up, and records where it went. The insert made sure of room
    /// before its evictions (which only free buckets), so this moves no
    /// other entry.
    #[inline]
    fn place(&mut self, hash: u64, bucket: Bucket<K, V>) {
        let i = bucket.slot as usize;
        debug_assert!(!self.no_growth_left(), "the insert ensured growth");
        let places = &self.slots.places;
        let index =
            self.table.insert_unique(hash, bucket, |b| places[b.slot as usize].hash).bucket_index();
        self.slots.places[i] = Place { hash, bucket: index };
    }

    /// Whether the table's next insert into an empty bucket rehashes it
    /// (moving entries to other buckets): it does when no growth is left.
    #[inline]
    fn no_growth_left(&self) -> bool {
        self.table.len() == self.table.capacity()
    }

    /// Makes sure that the table's next insert moves no entry, growing or
    /// rehashing it now if it must (and reading every place again).
    #[inline]
    fn ensure_growth(&mut self) {
        if self.no_growth_left() {
            self.grow();
        }
    }

    #[cold]
    #[inline(never)]
    fn grow(&mut self) {
        let places = &self.slots.places;
        self.table.reserve(1, |b| places[b.slot as usize].hash);
        self.reindex();
    }

    /// Reads every live slot's bucket again, after the table rehashed.
    #[cold]
    #[inline(never)]
    fn reindex(&mut self) {
        let (table, places) = (&self.table, &mut self.slots.places);
        for index in table.iter_buckets() {
            if let Some(b) = table.get_bucket(index) {
                places[b.slot as usize].bucket = index;
            }
        }
    }

    fn notify(&mut self, e: &Entry<K, V>, cause: RemovalCause) {
        if let Some(listener) = self.listener.as_mut() {
            listener(&e.key, &e.value, cause);
        }
    }

    #[inline]
    fn is_expired(&self, e: &Entry<K, V>) -> bool {
        e.expires.is_some_and(|t| self.clock.now_nanos() >= t)
    }

    /// Whether the live entry in slot `i` has expired.
    #[inline]
    fn live_expired(&self, i: u32) -> bool {
        self.opt_in & CHECK_EXPIRY != 0
            && self.slots.expires(i).is_some_and(|t| self.clock.now_nanos() >= t)
    }

    /// From the first entry with a time to live on (never undone): reads
    /// check expiry, and every slot keeps one. The bit says the same as the
    /// expiry array being in use; it is there so that a plain cache's read
    /// tests stats and expiry in one test of `opt_in`.
    fn track_expiry(&mut self) {
        self.opt_in |= CHECK_EXPIRY;
        self.slots.track_expiry();
    }

    fn weigh(&self, key: &K, value: &V) -> u64 {
        self.weigher.as_ref().map_or(1, |w| w(key, value))
    }

    fn over_bound(&self, extra_entries: usize, extra_weight: u64) -> bool {
        match self.bound {
            Bound::Count(cap) => self.len + extra_entries > cap,
            Bound::Weight(max) => self.total_weight + u128::from(extra_weight) > u128::from(max),
        }
    }

    /// Evicts the least recently used entry, reporting it.
    fn evict_lru(&mut self) -> Option<Entry<K, V>> {
        let tail = self.tail();
        if tail == SENTINEL {
            return None;
        }
        let e = self.detach(tail);
        self.report_eviction(&e);
        Some(e)
    }

    /// Counts an entry that left to make room (an eviction, or an
    /// expiration if its time was up) and tells the listener.
    fn report_eviction(&mut self, e: &Entry<K, V>) {
        let cause = if self.is_expired(e) {
            self.stats.expirations += 1;
            RemovalCause::Expired
        } else {
            self.stats.evictions += 1;
            RemovalCause::Capacity
        };
        self.notify(e, cause);
    }

    /// Removes every entry whose time to live has run out (popping the expiry
    /// heap); O(log n) per expired entry.
    #[inline]
    pub fn purge_expired(&mut self) {
        if !self.expiry.is_empty() {
            self.purge_due();
        }
    }

    /// [`purge_expired`](Self::purge_expired) once some entry has had a time
    /// to live (kept out of line: a write to a cache without one only tests
    /// that the heap is empty).
    #[inline(never)]
    fn purge_due(&mut self) {
        let now = self.clock.now_nanos();
        while let Some(&Reverse((at, i))) = self.expiry.peek() {
            if at > now {
                break;
            }
            self.expiry.pop();
            // Stale items (the slot was freed, or its entry replaced) no
            // longer match the slot's expiry.
            if self.slots.expires(i) == Some(at) {
                let e = self.detach(i);
                self.stats.expirations += 1;
                self.notify(&e, RemovalCause::Expired);
                drop(e);
            }
        }
        // Stale heap items (replaced or removed entries) are dropped lazily;
        // rebuild when they dominate so the heap stays O(len).
        if self.expiry.len() > 2 * self.len + 64 {
            let live = (self.slots.expires.iter().enumerate())
                .filter_map(|(i, e)| e.map(|t| Reverse((t, i as u32))));
            self.expiry = live.collect();
        }
    }

    // ----- reads -----------------------------------------------------------

    /// The value for `key`, marking it most recently used. An expired entry
    /// is never returned: it counts as a miss and is reclaimed by the next
    /// write (or [`purge_expired`](Self::purge_expired)).
    #[inline(always)]
    pub fn get<Q>(&mut self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.get_hashed(self.hasher.hash_one(key), key)
    }

    /// As [`get`](Self::get), with `hash` this cache's hash of `key`: a
    /// sharded cache has hashed the key already, to pick its shard.
    #[inline(always)]
    pub(crate) fn get_hashed<Q>(&mut self, hash: u64, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        // One probe. The bucket stays borrowed while other fields (stats,
        // metadata, links) are read or updated.
        let Some(bucket) = self.table.find(hash, |b| b.key.borrow() == key) else {
            if self.opt_in & COUNT_STATS != 0 {
                self.stats.misses += 1;
            }
            return None;
        };
        if self.opt_in != 0 {
            let expired = self.opt_in & CHECK_EXPIRY != 0
                && self.slots.expires(bucket.slot).is_some_and(|t| self.clock.now_nanos() >= t);
            if self.opt_in & COUNT_STATS != 0 {
                if expired {
                    self.stats.misses += 1;
                } else {
                    self.stats.hits += 1;
                }
            }
            if expired {
                return None;
            }
        }
        promote(&mut self.links, bucket.slot);
        Some(&bucket.value)
    }

    /// A mutable reference to the value for `key`, marking it most recently
    /// used. Changing the value does not re-weigh it; `insert` it to re-weigh.
    pub fn get_mut<Q>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let i = self.lookup_live(key)?;
        let bucket = self.slots.places[i as usize].bucket;
        self.table.get_bucket_mut(bucket).map(|b| &mut b.value)
    }

    #[inline(always)]
    fn lookup_live<Q>(&mut self, key: &Q) -> Option<u32>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = self.hasher.hash_one(key);
        let Some(i) = self.find(hash, key) else {
            if self.opt_in & COUNT_STATS != 0 {
                self.stats.misses += 1;
            }
            return None;
        };
        if self.opt_in != 0 {
            if self.opt_in & CHECK_EXPIRY != 0
                && let Some(at) = self.slots.expires(i)
                && self.clock.now_nanos() >= at
            {
                self.expire_on_read(i);
                return None;
            }
            if self.opt_in & COUNT_STATS != 0 {
                self.stats.hits += 1;
            }
        }
        self.promote(i);
        Some(i)
    }

    /// Reclaims an entry a read found expired (the rare path, kept out of line).
    #[cold]
    #[inline(never)]
    fn expire_on_read(&mut self, i: u32) {
        let e = self.detach(i);
        self.stats.expirations += 1;
        if self.opt_in & COUNT_STATS != 0 {
            self.stats.misses += 1;
        }
        self.notify(&e, RemovalCause::Expired);
        drop(e);
    }

    /// The value for `key` without marking it used (and without counting a
    /// hit or a miss). `None` for an expired entry.
    #[inline]
    pub fn peek<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let bucket = self.table.find(self.hasher.hash_one(key), |b| b.key.borrow() == key)?;
        if self.live_expired(bucket.slot) { None } else { Some(&bucket.value) }
    }

    /// The least recently used live entry, without marking it used.
    pub fn peek_lru(&self) -> Option<(&K, &V)> {
        self.iter().next_back()
    }

    /// Whether `key` has a live entry (does not mark it used).
    pub fn contains<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.peek(key).is_some()
    }

    /// The number of stored entries. Expired entries count until they are
    /// reclaimed (by an access, an `insert`, or [`purge_expired`](Self::purge_expired)).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the cache holds no entries.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The bound: the most entries, or the most total weight for a weighted
    /// cache.
    pub fn capacity(&self) -> u64 {
        match self.bound {
            Bound::Count(n) => n as u64,
            Bound::Weight(w) => w,
        }
    }

    /// The total weight of the stored entries (their count when unweighted).
    pub fn weight(&self) -> u64 {
        // Never above the bound (a `u64`) once an insert has finished.
        u64::try_from(self.total_weight).unwrap_or(u64::MAX)
    }

    /// Hit, miss, eviction and expiration counts.
    pub fn stats(&self) -> CacheStats {
        self.stats
    }

    /// Live entries from most to least recently used.
    pub fn iter(&self) -> Iter<'_, K, V, S> {
        let now = if self.opt_in & CHECK_EXPIRY != 0 { Some(self.clock.now_nanos()) } else { None };
        Iter { cache: self, next: self.head(), back: self.tail(), remaining: self.len, now }
    }

    // ----- writes ----------------------------------------------------------

    /// Inserts or replaces `key`, marking it most recently used.
    ///
    /// Returns the entry pushed out: the old entry when `key` was present,
    /// otherwise the least recently used entry evicted to make room, if any.
    /// (When a weighted insert evicts several entries, the first is returned
    /// and every one is reported to the listener.) An entry heavier than the
    /// whole bound is not stored and is handed straight back, and any entry
    /// the key had is removed (it is stale now); see
    /// [`try_insert`](Self::try_insert) to get an error instead.
    #[inline]
    pub fn insert(&mut self, key: K, value: V) -> Option<(K, V)> {
        self.insert_hashed(self.hasher.hash_one(&key), key, value)
    }

    /// As [`insert`](Self::insert), with `hash` this cache's hash of `key`.
    #[inline]
    pub(crate) fn insert_hashed(&mut self, hash: u64, key: K, value: V) -> Option<(K, V)> {
        let ttl = self.ttl;
        match self.weigh_new(hash, &key, &value) {
            Ok(weight) => self.insert_weighed(hash, key, value, weight, ttl),
            Err(_) => Some((key, value)),
        }
    }

    /// As [`insert`](Self::insert), with a time to live for this entry only (one
    /// past what the clock can represent means "never expires").
    pub fn insert_with_ttl(&mut self, key: K, value: V, ttl: Duration) -> Option<(K, V)> {
        let hash = self.hasher.hash_one(&key);
        match self.weigh_new(hash, &key, &value) {
            Ok(weight) => self.insert_weighed(hash, key, value, weight, Some(ttl)),
            Err(_) => Some((key, value)),
        }
    }

    /// As [`insert`](Self::insert), but an entry heavier than the whole bound is an
    /// error (and is dropped); as with `insert`, any entry the key had is
    /// removed.
    ///
    /// # Errors
    /// [`CacheError::EntryTooHeavy`].
    pub fn try_insert(&mut self, key: K, value: V) -> Result<Option<(K, V)>, CacheError> {
        let hash = self.hasher.hash_one(&key);
        let weight = self.weigh_new(hash, &key, &value)?;
        let ttl = self.ttl;
        Ok(self.insert_weighed(hash, key, value, weight, ttl))
    }

    /// The first half of an insert: reclaims expired entries, then weighs
    /// the new entry. One heavier than the whole bound is an error, and the
    /// key's old entry is removed.
    #[inline]
    fn weigh_new(&mut self, hash: u64, key: &K, value: &V) -> Result<u64, CacheError> {
        self.purge_expired();
        let weight = self.weigh(key, value);
        match self.bound {
            Bound::Weight(max) if weight > max => Err(self.too_heavy(hash, key, weight, max)),
            _ => Ok(weight),
        }
    }

    /// An entry of `key` too heavy to store: the new value supersedes the
    /// old one even though it cannot be stored, since keeping the old one
    /// would serve a stale read (Caffeine likewise drops an entry that
    /// outweighs the whole cache).
    #[cold]
    #[inline(never)]
    fn too_heavy(&mut self, hash: u64, key: &K, weight: u64, max_weight: u64) -> CacheError {
        if let Some(i) = self.find(hash, key) {
            let old = self.detach(i);
            self.notify(&old, RemovalCause::Replaced);
        }
        CacheError::EntryTooHeavy { weight, max_weight }
    }

    /// The second half of an insert, for an entry that fits: replaces the
    /// key's entry, or stores a new one and evicts what it must.
    fn insert_weighed(
        &mut self,
        hash: u64,
        key: K,
        value: V,
        weight: u64,
        ttl: Option<Duration>,
    ) -> Option<(K, V)> {
        // A time to live past the end of the clock (u64 nanoseconds, about
        // 584 years from its origin) never expires.
        let expires =
            ttl.and_then(|d| self.clock.now_nanos().checked_add(u64::try_from(d.as_nanos()).ok()?));
        if expires.is_some() {
            self.track_expiry();
        }
        // From here an insert into the table moves no other entry, so the
        // places stay right.
        self.ensure_growth();
        // The common case of a full cache taking a new key (a bound by
        // count, one entry leaves): the least recently used entry's slot
        // takes the new one, which skips the free list, the unlink and the
        // relink (moving the tail to the front is one promotion).
        let full = matches!(self.bound, Bound::Count(cap) if self.len == cap);
        let tail = self.tail();
        let tail_bucket = self.slots.places[tail as usize].bucket;
        // One probe finds the key or the bucket a new entry goes in.
        let places = &self.slots.places;
        match self.table.entry(hash, |b| b.key == key, |b| places[b.slot as usize].hash) {
            TableEntry::Occupied(mut found) => {
                // Replace in place: the key keeps its slot and moves to the front.
                let bucket = found.get_mut();
                let i = bucket.slot;
                let old_key = std::mem::replace(&mut bucket.key, key);
                let old_value = std::mem::replace(&mut bucket.value, value);
                let old_weight = self.slots.weight(i);
                self.slots.set_weight_and_expiry(i, weight, expires);
                self.total_weight = self.total_weight - u128::from(old_weight) + u128::from(weight);
                if let Some(at) = expires {
                    self.expiry.push(Reverse((at, i)));
                }
                self.promote(i);
                if let Some(listener) = self.listener.as_mut() {
                    listener(&old_key, &old_value, RemovalCause::Replaced);
                }
                let mut evicted = Vec::new();
                while self.over_bound(0, 0) && self.tail() != i {
                    evicted.extend(self.evict_lru());
                }
                drop(evicted);
                return Some((old_key, old_value));
            }
            TableEntry::Vacant(room) if full && tail != SENTINEL => {
                let i = tail;
                let index = room.insert(Bucket { key, value, slot: i }).bucket_index();
                let (old_key, old_value) = self.take_bucket(i, tail_bucket);
                // A cache bounded by count has no weigher: the weights (one
                // each) and their total are unchanged.
                debug_assert!(self.weigher.is_none() && self.slots.weights.is_empty());
                let old_expires = self.slots.expires(i);
                self.slots.places[i as usize] = Place { hash, bucket: index };
                self.slots.set_weight_and_expiry(i, weight, expires);
                if let Some(at) = expires {
                    self.expiry.push(Reverse((at, i)));
                }
                self.promote(i);
                let old = Entry { key: old_key, value: old_value, expires: old_expires };
                self.report_eviction(&old);
                return Some((old.key, old.value));
            }
            TableEntry::Vacant(_) => {}
        }
        let mut first = None;
        let mut more = Vec::new();
        while self.len > 0 && self.over_bound(1, weight) {
            let Some(e) = self.evict_lru() else { break };
            if first.is_none() { first = Some((e.key, e.value)) } else { more.push(e) }
        }
        let i = match self.free.pop() {
            Some(i) => {
                self.slots.set_weight_and_expiry(i, weight, expires);
                i
            }
            None => {
                let i = self.next_fresh;
                if i as usize == self.links.len() {
                    // Keep the links' length a power of two.
                    let doubled = self.links.len() * 2;
                    self.links.resize(doubled, Link { prev: SENTINEL, next: SENTINEL });
                }
                self.slots.push(weight, expires);
                self.next_fresh += 1;
                i
            }
        };
        self.place(hash, Bucket { key, value, slot: i });
        self.len += 1;
        self.total_weight += u128::from(weight);
        if let Some(at) = expires {
            self.expiry.push(Reverse((at, i)));
        }
        self.push_front(i);
        drop(more);
        first
    }

    /// Removes `key` and returns its value.
    pub fn pop<Q>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.remove(key).map(|(_, v)| v)
    }

    /// Removes `key` and returns its entry. An expired entry is removed but
    /// not returned.
    pub fn remove<Q>(&mut self, key: &Q) -> Option<(K, V)>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let i = self.find(self.hasher.hash_one(key), key)?;
        let e = self.detach(i);
        if self.is_expired(&e) {
            self.stats.expirations += 1;
            self.notify(&e, RemovalCause::Expired);
            return None;
        }
        self.notify(&e, RemovalCause::Explicit);
        Some((e.key, e.value))
    }

    /// Removes and returns the least recently used live entry.
    pub fn pop_lru(&mut self) -> Option<(K, V)> {
        self.purge_expired();
        while self.tail() != SENTINEL {
            let e = self.detach(self.tail());
            if self.is_expired(&e) {
                self.stats.expirations += 1;
                self.notify(&e, RemovalCause::Expired);
                continue;
            }
            self.notify(&e, RemovalCause::Explicit);
            return Some((e.key, e.value));
        }
        None
    }

    /// Changes the bound (entries, or total weight for a weighted cache),
    /// evicting least recently used entries until the cache fits.
    ///
    /// # Errors
    /// [`CacheError::ZeroCapacity`] for 0; the cache is then unchanged.
    pub fn resize(&mut self, capacity: u64) -> Result<(), CacheError> {
        let bound = match self.bound {
            Bound::Count(_) => {
                let n = usize::try_from(capacity)
                    .map_err(|_| CacheError::CapacityTooLarge { requested: usize::MAX })?;
                Bound::Count(n)
            }
            Bound::Weight(_) => Bound::Weight(capacity),
        };
        check_bound(bound)?;
        self.bound = bound;
        while self.over_bound(0, 0) {
            let Some(e) = self.evict_lru() else { break };
            drop(e);
        }
        Ok(())
    }

    /// Removes every entry (each reported to the listener as `Explicit`).
    pub fn clear(&mut self) {
        let table = std::mem::take(&mut self.table);
        self.next_fresh = 1;
        self.free.clear();
        self.expiry.clear();
        self.slots.clear();
        self.links = sentinel_links(0);
        self.len = 0;
        self.total_weight = 0;
        if let Some(listener) = self.listener.as_mut() {
            for bucket in &table {
                listener(&bucket.key, &bucket.value, RemovalCause::Explicit);
            }
        }
        drop(table);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every live slot's place names the bucket holding its entry, and the
    /// recency list holds exactly the live slots.
    fn check_places<K: Hash + Eq, V, S: BuildHasher>(cache: &LruCache<K, V, S>) {
        let mut listed = 0;
        let mut i = cache.head();
        while i != SENTINEL {
            let bucket = cache.table.get_bucket(cache.slots.places[i as usize].bucket);
            assert_eq!(bucket.map(|b| b.slot), Some(i), "slot {i}'s place holds its entry");
            listed += 1;
            i = cache.links[i as usize].next;
        }
        assert_eq!(listed, cache.len);
        assert_eq!(cache.table.len(), cache.len);
    }

    /// Churn through a full cache leaves deleted markers in the table until
    /// no growth is left, and the table then rehashes (in place, or into
    /// more buckets), moving entries: the places must follow them.
    #[test]
    fn places_follow_entries_through_rehashes() {
        let mut cache = LruCache::new(100).unwrap();
        let mut no_growth_seen = 0;
        for k in 0..200_000u64 {
            if cache.no_growth_left() {
                no_growth_seen += 1;
            }
            cache.insert(k, k);
            if k % 997 == 0 {
                check_places(&cache);
            }
        }
        check_places(&cache);
        assert!(no_growth_seen > 0, "the churn never ran the table out of growth");
        let newest: Vec<u64> = cache.iter().map(|(k, _)| *k).collect();
        assert_eq!(newest, (199_900..200_000).rev().collect::<Vec<_>>());
    }

    /// A weighted cache starts with no room reserved, so its table grows
    /// (and moves every entry) many times while it fills; removals and
    /// replacements in between.
    #[test]
    fn places_follow_entries_while_the_table_grows() {
        let mut cache: LruCache<u64, u64> =
            LruCache::builder().max_weight(50_000).weigher(|_, v: &u64| v % 3 + 1).build().unwrap();
        for k in 0..30_000u64 {
            cache.insert(k, k);
            if k % 3 == 0 {
                cache.remove(&(k / 2));
            }
            if k % 5 == 0 {
                cache.insert(k / 3, k);
            }
            if k % 500 == 0 {
                check_places(&cache);
            }
        }
        check_places(&cache);
    }
}
