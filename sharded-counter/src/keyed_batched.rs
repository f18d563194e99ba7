//! [`KeyedBatchedCounter`]: write-behind counters by name, created on first
//! use, bounded in memory.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures_util::future::join_all;
use rand::Rng;

use crate::batched::{Flush, FlushIds, Flusher, Pending, send};
use crate::error::CounterError;
use crate::sharded::{RedisShardedCounter, check_name, check_shards, shard_key};
use sysblocks_core::RedisConnection;

/// Local maps, each behind its own lock, so that adds to different names
/// from different threads rarely meet.
const STRIPES: usize = 16;

/// How a [`KeyedBatchedCounter`] batches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyedBatchConfig {
    /// Shards of each counter it creates (an existing counter keeps its
    /// layout). Default 8.
    pub shards: u32,
    /// How often the deltas are flushed. Default 100 ms.
    pub interval: Duration,
    /// Flush sooner once this many adds (over all names) piled up.
    /// Default 100,000.
    pub threshold: usize,
    /// The most names with adds that Redis has not confirmed yet; an add to
    /// a new name beyond it is refused with [`CounterError::TooManyKeys`]
    /// (and wakes the flusher, which frees the names it flushes). Default
    /// 10,000.
    pub max_keys: usize,
}

impl Default for KeyedBatchConfig {
    fn default() -> Self {
        KeyedBatchConfig {
            shards: 8,
            interval: Duration::from_millis(100),
            threshold: 100_000,
            max_keys: 10_000,
        }
    }
}

/// Write-behind counting over a set of counters that grows on demand:
/// `add("/pricing", 1)` counts locally under that name, and each flush
/// sends every name's delta to the [`RedisShardedCounter`] named
/// `prefix + name` (opened, and created with
/// [`shards`](KeyedBatchConfig::shards) shards, on first use).
///
/// It has the guarantees of a [`BatchedCounter`](crate::BatchedCounter):
/// every delta is applied exactly once (a flush id checked by a script), a
/// failed flush keeps its deltas and retries them with the same ids, and a
/// name whose delta is still pending keeps later adds local, so an outage
/// never multiplies what is resent.
///
/// **Bounded memory.** Only names with adds that Redis has not confirmed
/// are held: at most [`max_keys`](KeyedBatchConfig::max_keys) of them. A
/// name is forgotten once its delta lands, so the bound is on the names
/// touched between two flushes (more during an outage, when nothing lands),
/// not on all names ever counted. An add to one more name is refused with
/// [`CounterError::TooManyKeys`] rather than dropped silently or allowed
/// to grow memory.
///
/// ```no_run
/// # #![allow(dead_code)]
/// # async fn demo(con: redis::aio::ConnectionManager) -> Result<(), Box<dyn std::error::Error>> {
/// use sysblocks_sharded_counter::{KeyedBatchConfig, KeyedBatchedCounter};
///
/// let mut views = KeyedBatchedCounter::start(con, "views:", KeyedBatchConfig::default())?;
/// views.add("/pricing", 1)?; // local, no I/O
/// views.add("/docs", 1)?;
/// views.add("/pricing", 1)?;
/// views.shutdown().await?; // everything flushed
/// assert_eq!(views.get("/pricing").await?, 2); // the counter `views:/pricing`
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct KeyedBatchedCounter {
    inner: Arc<Inner>,
    flusher: Flusher,
}

#[derive(Debug)]
struct Inner {
    conn: RedisConnection,
    prefix: String,
    config: KeyedBatchConfig,
    /// Unflushed adds by name.
    stripes: Box<[Mutex<HashMap<String, i64>>]>,
    hasher: RandomState,
    /// Entries held: names in the stripes plus pending deltas (a name can be
    /// in both while its delta retries). Kept within `max_keys`.
    tracked: AtomicUsize,
    /// Adds since the last flush began, to trigger the threshold.
    since_flush: AtomicUsize,
    wake: tokio::sync::Notify,
    /// Pending deltas and opened counters; the lock serialises flushes.
    state: tokio::sync::Mutex<State>,
    ids: FlushIds,
    failures: AtomicU64,
}

#[derive(Debug, Default)]
struct State {
    /// Deltas taken but not yet confirmed, by name.
    pending: Vec<Pending<String>>,
    /// Counters opened so far (their layouts), at most `max_keys`.
    counters: HashMap<String, RedisShardedCounter>,
}

impl KeyedBatchedCounter {
    /// Starts batching adds into counters named `prefix + name` on `conn`.
    /// Needs a tokio runtime.
    ///
    /// # Errors
    /// [`CounterError::ZeroFlushInterval`] for a zero interval, threshold or
    /// `max_keys`; [`CounterError::ZeroShards`] or
    /// [`CounterError::TooManyShards`]; [`CounterError::HashTagInName`] for
    /// a prefix with braces.
    pub fn start(
        conn: impl Into<RedisConnection>,
        prefix: &str,
        config: KeyedBatchConfig,
    ) -> Result<Self, CounterError> {
        if config.interval.is_zero() || config.threshold == 0 || config.max_keys == 0 {
            return Err(CounterError::ZeroFlushInterval);
        }
        check_shards(config.shards)?;
        if prefix.contains(['{', '}']) {
            return Err(CounterError::HashTagInName { name: prefix.to_string() });
        }
        let interval = config.interval;
        let inner = Arc::new(Inner {
            conn: conn.into(),
            prefix: prefix.to_string(),
            config,
            stripes: (0..STRIPES).map(|_| Mutex::default()).collect(),
            hasher: RandomState::new(),
            tracked: AtomicUsize::new(0),
            since_flush: AtomicUsize::new(0),
            wake: tokio::sync::Notify::new(),
            state: tokio::sync::Mutex::default(),
            ids: FlushIds::new(),
            failures: AtomicU64::new(0),
        });
        let flusher = Flusher::start(Arc::clone(&inner), interval);
        Ok(KeyedBatchedCounter { inner, flusher })
    }

    /// Adds `n` locally to the counter `name`; Redis sees it at the next
    /// flush. Never blocks on I/O.
    ///
    /// # Errors
    /// [`CounterError::TooManyKeys`] when `name` is new and `max_keys`
    /// names already wait for a flush (nothing was added; retry after the
    /// flush it triggered); [`CounterError::HashTagInName`] or
    /// [`CounterError::EmptyName`] for a name that cannot be a counter;
    /// [`CounterError::Overflow`] when the unflushed delta of `name` would
    /// leave the `i64` range.
    pub fn add(&self, name: &str, n: i64) -> Result<(), CounterError> {
        self.inner.add(name, n)?;
        if self.inner.since_flush.fetch_add(1, Ordering::Relaxed) + 1 == self.inner.config.threshold
        {
            self.inner.wake.notify_one();
        }
        Ok(())
    }

    /// The exact value of counter `name` in Redis (what was flushed; see
    /// [`unflushed`](Self::unflushed) for what is still local).
    ///
    /// # Errors
    /// A bad name, or a Redis error.
    pub async fn get(&self, name: &str) -> Result<i64, CounterError> {
        self.counter(name).await?.get().await
    }

    /// Opens the counter behind `name` (for cached or approximate reads,
    /// resharding, deleting).
    ///
    /// # Errors
    /// A bad name, or a Redis error.
    pub async fn counter(&self, name: &str) -> Result<RedisShardedCounter, CounterError> {
        let full = self.inner.full_name(name)?;
        RedisShardedCounter::open(self.inner.conn.clone(), &full, self.inner.config.shards).await
    }

    /// Adds that are local or unconfirmed (not yet known to be in Redis),
    /// over all names.
    pub async fn unflushed(&self) -> i64 {
        let pending: i64 = self.inner.state.lock().await.pending.iter().map(|p| p.delta).sum();
        let local: i64 = self
            .inner
            .stripes
            .iter()
            .map(|s| s.lock().unwrap_or_else(PoisonError::into_inner).values().sum::<i64>())
            .sum();
        pending + local
    }

    /// Names (and pending deltas) held in memory now, at most
    /// [`max_keys`](KeyedBatchConfig::max_keys).
    pub fn tracked(&self) -> usize {
        self.inner.tracked.load(Ordering::Relaxed)
    }

    /// How many flush attempts have failed so far.
    pub fn failed_flushes(&self) -> u64 {
        self.inner.failures.load(Ordering::Relaxed)
    }

    /// Flushes every add made before this call.
    ///
    /// # Errors
    /// The first Redis error; the unflushed deltas are kept for the next
    /// attempt.
    pub async fn flush(&self) -> Result<(), CounterError> {
        self.inner.flush().await
    }

    /// Stops background flushing and flushes everything added so far.
    ///
    /// # Errors
    /// A Redis error on the final flush; the deltas are kept (call `flush`
    /// again).
    pub async fn shutdown(&mut self) -> Result<(), CounterError> {
        self.flusher.stop().await;
        self.inner.flush().await
    }
}

impl Inner {
    fn stripe(&self, name: &str) -> &Mutex<HashMap<String, i64>> {
        let h = self.hasher.hash_one(name);
        &self.stripes[(h % STRIPES as u64) as usize]
    }

    fn full_name(&self, name: &str) -> Result<String, CounterError> {
        let full = format!("{}{name}", self.prefix);
        check_name(&full)?;
        Ok(full)
    }

    fn add(&self, name: &str, n: i64) -> Result<(), CounterError> {
        let mut map = self.stripe(name).lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(delta) = map.get_mut(name) {
            *delta = delta
                .checked_add(n)
                .ok_or_else(|| CounterError::Overflow { key: format!("{}{name}", self.prefix) })?;
            return Ok(());
        }
        self.full_name(name)?;
        if self.tracked.fetch_add(1, Ordering::Relaxed) >= self.config.max_keys {
            self.tracked.fetch_sub(1, Ordering::Relaxed);
            drop(map);
            self.wake.notify_one();
            return Err(CounterError::TooManyKeys { max: self.config.max_keys });
        }
        map.insert(name.to_string(), n);
        Ok(())
    }

    /// Opens (concurrently) the counters of the names in `taken` not opened
    /// yet, forgetting the others first if the cache is full. Returns the
    /// first error; the names whose counter failed to open stay unopened.
    async fn open_counters(
        &self,
        state: &mut State,
        taken: &[(String, i64)],
    ) -> Option<CounterError> {
        let mut missing: Vec<&str> = taken
            .iter()
            .map(|(name, _)| name.as_str())
            .filter(|name| !state.counters.contains_key(*name))
            .collect();
        if state.counters.len() + missing.len() > self.config.max_keys {
            state.counters.clear();
            missing = taken.iter().map(|(name, _)| name.as_str()).collect();
        }
        let opened = join_all(missing.iter().map(|name| async move {
            let full = self.full_name(name)?;
            RedisShardedCounter::open(self.conn.clone(), &full, self.config.shards).await
        }))
        .await;
        let mut first_error = None;
        for (name, result) in missing.into_iter().zip(opened) {
            match result {
                Ok(counter) => {
                    state.counters.insert(name.to_string(), counter);
                }
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        first_error
    }
}

impl Flush for Inner {
    fn wake(&self) -> &tokio::sync::Notify {
        &self.wake
    }

    /// Takes what was added, sends it (with the deltas still pending)
    /// exactly once, and keeps what failed for the next attempt.
    async fn flush(&self) -> Result<(), CounterError> {
        let mut state = self.state.lock().await;
        self.since_flush.store(0, Ordering::Relaxed);
        // Take every name's delta, except from names whose earlier delta is
        // still pending: they retry that one first (one pending delta each).
        let waiting: HashSet<String> = state.pending.iter().map(|p| p.owner.clone()).collect();
        let mut taken = Vec::new();
        for stripe in &self.stripes {
            let mut map = stripe.lock().unwrap_or_else(PoisonError::into_inner);
            for (name, delta) in std::mem::take(&mut *map) {
                if waiting.contains(&name) {
                    map.insert(name, delta);
                } else if delta == 0 {
                    self.tracked.fetch_sub(1, Ordering::Relaxed);
                } else {
                    taken.push((name, delta));
                }
            }
        }
        let mut first_error = self.open_counters(&mut state, &taken).await;
        let State { pending, counters } = &mut *state;
        for (name, delta) in taken {
            match counters.get(&name) {
                Some(counter) => {
                    let shard = rand::rng().random_range(0..counter.shard_count());
                    let key = shard_key(counter.name(), shard);
                    pending.push(Pending { owner: name, key, delta, id: self.ids.next() });
                }
                // Its counter could not be opened: the delta goes back.
                None => {
                    let mut map = self.stripe(&name).lock().unwrap_or_else(PoisonError::into_inner);
                    *map.entry(name).or_default() += delta;
                }
            }
        }
        let (landed, sent) = send(&self.conn, &self.ids, pending).await;
        self.tracked.fetch_sub(landed.len(), Ordering::Relaxed);
        if let Err(e) = sent {
            first_error.get_or_insert(e);
        }
        match first_error {
            None => Ok(()),
            Some(e) => {
                self.failures.fetch_add(1, Ordering::Relaxed);
                Err(e)
            }
        }
    }

    fn label(&self) -> &str {
        &self.prefix
    }
}
