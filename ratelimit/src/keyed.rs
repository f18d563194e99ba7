//! [`Keyed`]: one limiter per key (client IP, API key, user), with memory
//! bounded however many keys arrive.

use std::borrow::Borrow;
use std::fmt;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use dashmap::DashMap;

use crate::decision::Decision;
use crate::error::LimitError;
use crate::limiter::Limiter;

type Factory<L> = Box<dyn Fn() -> Result<L, LimitError> + Send + Sync>;

/// One limiter per key, made on first use by a factory, in a sharded
/// concurrent map (`dashmap`).
///
/// **Bounded memory.** An attacker who sends endless new keys must not
/// grow the map without bound, so it holds at most `max_keys` limiters:
///
/// * a limiter that is *idle* (its state equals a fresh one's: a full
///   bucket, an empty window) can be dropped without changing any decision,
///   so such keys are swept out when the map is full, and by
///   [`sweep`](Self::sweep);
/// * when the map is full of busy keys, a new key gets
///   [`LimitError::TooManyKeys`] (known keys keep working). Sweeps are
///   spaced out (one per `max_keys / 8` refused keys) so that a flood of new
///   keys cannot make every request pay for a scan.
///
/// (Threads inserting new keys at the same instant can each pass the check,
/// so the map may briefly exceed the cap by the number of such threads.)
///
/// ```
/// use std::time::Duration;
/// use sysblocks_ratelimit::{Keyed, ManualClock, Rate, TokenBucket};
///
/// let clock = ManualClock::new();
/// let per_ip = {
///     let clock = clock.clone();
///     Keyed::new(10_000, move || TokenBucket::with_clock(2, Rate::per_second(1)?, clock.clone()))?
/// };
/// assert!(per_ip.check(&"10.0.0.1")?.allowed);
/// assert!(per_ip.check(&"10.0.0.1")?.allowed);
/// assert!(!per_ip.check(&"10.0.0.1")?.allowed); // this client is out of tokens
/// assert!(per_ip.check(&"10.0.0.2")?.allowed); // another has its own bucket
/// clock.advance(Duration::from_secs(2));
/// assert_eq!(per_ip.sweep(), 2); // both buckets are full again: nothing to remember
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Keyed<K, L> {
    map: DashMap<K, L, foldhash::fast::RandomState>,
    make: std::sync::RwLock<Factory<L>>,
    max_keys: usize,
    /// New keys refused since the last sweep.
    refused: AtomicUsize,
    /// The factory's limit and policy window (nanoseconds), for reports.
    limit: AtomicU64,
    window: AtomicU64,
}

impl<K: Eq + Hash, L> fmt::Debug for Keyed<K, L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyed")
            .field("keys", &self.map.len())
            .field("max_keys", &self.max_keys)
            .finish_non_exhaustive()
    }
}

impl<K, L> Keyed<K, L>
where
    K: Eq + Hash,
    L: Limiter,
{
    /// Per-key limiters made by `make`, at most `max_keys` of them.
    ///
    /// # Errors
    /// [`LimitError::ZeroCapacity`] for `max_keys == 0`, or the factory's
    /// error (it is called once here, so a bad limit fails now and not on
    /// the first request).
    pub fn new<F>(max_keys: usize, make: F) -> Result<Self, LimitError>
    where
        F: Fn() -> Result<L, LimitError> + Send + Sync + 'static,
    {
        if max_keys == 0 {
            return Err(LimitError::ZeroCapacity);
        }
        let sample = make()?;
        let keyed = Keyed {
            map: DashMap::with_hasher(foldhash::fast::RandomState::default()),
            make: std::sync::RwLock::new(Box::new(make)),
            max_keys,
            refused: AtomicUsize::new(0),
            limit: AtomicU64::new(0),
            window: AtomicU64::new(0),
        };
        keyed.describe(&sample);
        Ok(keyed)
    }

    fn describe(&self, sample: &L) {
        self.limit.store(sample.limit(), Ordering::Relaxed);
        let window = u64::try_from(sample.window().as_nanos()).unwrap_or(u64::MAX);
        self.window.store(window, Ordering::Relaxed);
    }

    /// The limit of a fresh limiter (what new keys get).
    pub fn limit(&self) -> u64 {
        self.limit.load(Ordering::Relaxed)
    }

    /// The policy window of a fresh limiter ([`Limiter::window`]).
    pub fn window(&self) -> Duration {
        Duration::from_nanos(self.window.load(Ordering::Relaxed))
    }

    /// One unit for `key`.
    ///
    /// # Errors
    /// [`LimitError::TooManyKeys`] for a new key while the map is full of
    /// busy keys.
    #[inline]
    pub fn check<Q>(&self, key: &Q) -> Result<Decision, LimitError>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        self.check_n(key, 1)
    }

    /// `cost` units for `key`.
    ///
    /// # Errors
    /// As [`Limiter::check_n`], and [`LimitError::TooManyKeys`].
    #[inline]
    pub fn check_n<Q>(&self, key: &Q, cost: u64) -> Result<Decision, LimitError>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        if let Some(limiter) = self.map.get(key) {
            return limiter.check_n(cost);
        }
        self.insert_and(key, |limiter| limiter.check_n(cost))
    }

    /// What [`check_n`](Self::check_n) would decide, changing nothing (an
    /// unknown key is answered by a fresh limiter and not stored).
    ///
    /// # Errors
    /// As [`Limiter::peek_n`].
    pub fn peek_n<Q>(&self, key: &Q, cost: u64) -> Result<Decision, LimitError>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        if let Some(limiter) = self.map.get(key) {
            return limiter.peek_n(cost);
        }
        self.fresh()?.peek_n(cost)
    }

    /// Gives back `cost` units to `key` (no effect for an unknown key).
    pub fn refund<Q>(&self, key: &Q, cost: u64)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        if let Some(limiter) = self.map.get(key) {
            limiter.refund(cost);
        }
    }

    /// Drops every idle limiter (see the type's docs) and returns how many.
    pub fn sweep(&self) -> usize {
        let before = self.map.len();
        self.map.retain(|_, limiter| !limiter.is_idle_at(limiter.now()));
        self.refused.store(0, Ordering::Relaxed);
        before.saturating_sub(self.map.len())
    }

    /// Keys currently remembered.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether no key is remembered.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The cap on keys.
    pub fn max_keys(&self) -> usize {
        self.max_keys
    }

    /// Runtime reconfiguration: new keys get limiters from `make`, and
    /// `update` is applied to every existing one (say, a `set_limit`).
    ///
    /// # Errors
    /// The new factory's error; nothing is changed then.
    pub fn reconfigure<F>(&self, make: F, update: impl Fn(&L)) -> Result<(), LimitError>
    where
        F: Fn() -> Result<L, LimitError> + Send + Sync + 'static,
    {
        let sample = make()?;
        self.describe(&sample);
        *self.make.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Box::new(make);
        for entry in &self.map {
            update(entry.value());
        }
        Ok(())
    }

    fn fresh(&self) -> Result<L, LimitError> {
        (self.make.read().unwrap_or_else(std::sync::PoisonError::into_inner))()
    }

    #[cold]
    fn insert_and<Q>(
        &self,
        key: &Q,
        then: impl FnOnce(&L) -> Result<Decision, LimitError>,
    ) -> Result<Decision, LimitError>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        if self.map.len() >= self.max_keys {
            // The first refusal after a sweep sweeps again only once every
            // max_keys / 8 refusals.
            let refused = self.refused.fetch_add(1, Ordering::Relaxed);
            if refused == 0 || refused >= (self.max_keys / 8).max(1) {
                self.sweep();
                self.refused.store(1, Ordering::Relaxed);
            }
            if self.map.len() >= self.max_keys && !self.map.contains_key(key) {
                return Err(LimitError::TooManyKeys { max: self.max_keys });
            }
        }
        let fresh = self.fresh()?;
        let entry = self.map.entry(key.to_owned()).or_insert(fresh);
        then(entry.value())
    }
}
