//! Limits as data: [`Limit`] names an [`Algorithm`], a [`Rate`] and an
//! optional burst, loads from a config file (feature `serde`), and builds
//! an [`AnyLimiter`].

use std::time::Duration;

use crate::clock::{Clock, SystemClock};
use crate::decision::Decision;
use crate::error::LimitError;
use crate::leaky::LeakyBucket;
use crate::limiter::Limiter;
use crate::rate::Rate;
use crate::token_bucket::TokenBucket;
use crate::window::{FixedWindow, SlidingWindowCounter, SlidingWindowLog};

/// The five algorithms (the [`guide`](crate::guide) compares them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum Algorithm {
    /// [`TokenBucket`]: bursts up to `burst`, refilling at the rate.
    TokenBucket,
    /// [`LeakyBucket`]: a shaper releasing at the rate, `burst` queued.
    LeakyBucket,
    /// [`FixedWindow`]: `rate.count()` per epoch-aligned `rate.per()`.
    FixedWindow,
    /// [`SlidingWindowLog`]: exactly `rate.count()` per any `rate.per()`.
    SlidingWindowLog,
    /// [`SlidingWindowCounter`]: about `rate.count()` per `rate.per()`.
    SlidingWindowCounter,
}

/// One limit, as it would appear in a config file:
///
/// ```toml
/// algorithm = "token_bucket"
/// rate = "100/s"
/// burst = 20        # optional: defaults to the rate's count
/// ```
///
/// For the buckets, `rate` is the refill (or drain) rate and `burst` the
/// capacity (or queue length). For the windows, `rate` is the limit per
/// window (`"5000/h"`: 5000 per hour) and `burst` must be absent.
///
/// ```
/// use sysblocks_ratelimit::{Algorithm, Limit, Limiter};
///
/// let limit = Limit::new(Algorithm::SlidingWindowLog, "3/s".parse()?);
/// let limiter = limit.build()?;
/// assert_eq!((0..5).filter(|_| limiter.check().allowed).count(), 3);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(deny_unknown_fields))]
pub struct Limit {
    /// Which algorithm.
    pub algorithm: Algorithm,
    /// The rate (buckets) or the limit per window (windows).
    pub rate: Rate,
    /// The bucket's capacity; `None`: the rate's count.
    #[cfg_attr(feature = "serde", serde(default, skip_serializing_if = "Option::is_none"))]
    pub burst: Option<u64>,
}

impl Algorithm {
    /// Every algorithm, in the order of this enum.
    pub const ALL: [Algorithm; 5] = [
        Algorithm::TokenBucket,
        Algorithm::LeakyBucket,
        Algorithm::FixedWindow,
        Algorithm::SlidingWindowLog,
        Algorithm::SlidingWindowCounter,
    ];
}

impl Limit {
    /// A limit with the default burst.
    pub fn new(algorithm: Algorithm, rate: Rate) -> Self {
        Limit { algorithm, rate, burst: None }
    }

    /// The same limit with a burst (capacity) for the buckets.
    #[must_use]
    pub fn with_burst(mut self, burst: u64) -> Self {
        self.burst = Some(burst);
        self
    }

    /// The limit that decisions report: the capacity, queue length or
    /// limit per window.
    pub fn capacity(&self) -> u64 {
        self.burst.unwrap_or(self.rate.count())
    }

    /// The window of the window algorithms: the rate's period.
    pub fn window(&self) -> Duration {
        self.rate.per()
    }

    /// The policy window ([`Limiter::window`](crate::Limiter::window)): the
    /// window of a window algorithm, or the time a bucket takes to fill
    /// completely.
    pub fn policy_window(&self) -> Duration {
        match self.algorithm {
            Algorithm::TokenBucket | Algorithm::LeakyBucket => {
                refill_time(self.rate.interval_nanos(), self.capacity())
            }
            _ => self.window(),
        }
    }

    /// Checks the limit without building it.
    ///
    /// # Errors
    /// [`LimitError::ZeroCapacity`] for a zero burst, [`LimitError::BadBurst`]
    /// for a burst on a window algorithm, [`LimitError::BurstTooLong`] for a
    /// bucket that takes more than about 292 years to refill.
    pub fn validate(&self) -> Result<(), LimitError> {
        match (self.algorithm, self.burst) {
            (_, Some(0)) => Err(LimitError::ZeroCapacity),
            (Algorithm::TokenBucket | Algorithm::LeakyBucket, _) => {
                crate::gcra_tau(self.rate.interval_nanos(), self.capacity()).map(|_| ())
            }
            (_, None) => Ok(()),
            (_, Some(_)) => Err(LimitError::BadBurst),
        }
    }

    /// An in-process limiter on the system clock.
    ///
    /// # Errors
    /// As [`validate`](Self::validate).
    pub fn build(&self) -> Result<AnyLimiter<SystemClock>, LimitError> {
        self.build_with_clock(SystemClock::default())
    }

    /// An in-process limiter on the given clock.
    ///
    /// # Errors
    /// As [`validate`](Self::validate).
    pub fn build_with_clock<C: Clock>(&self, clock: C) -> Result<AnyLimiter<C>, LimitError> {
        self.validate()?;
        let (capacity, rate, window) = (self.capacity(), self.rate, self.window());
        Ok(match self.algorithm {
            Algorithm::TokenBucket => {
                AnyLimiter::TokenBucket(TokenBucket::with_clock(capacity, rate, clock)?)
            }
            Algorithm::LeakyBucket => {
                AnyLimiter::LeakyBucket(LeakyBucket::with_clock(capacity, rate, clock)?)
            }
            Algorithm::FixedWindow => {
                AnyLimiter::FixedWindow(FixedWindow::with_clock(capacity, window, clock)?)
            }
            Algorithm::SlidingWindowLog => {
                AnyLimiter::SlidingWindowLog(SlidingWindowLog::with_clock(capacity, window, clock)?)
            }
            Algorithm::SlidingWindowCounter => AnyLimiter::SlidingWindowCounter(
                SlidingWindowCounter::with_clock(capacity, window, clock)?,
            ),
        })
    }
}

/// Any of the five in-process limiters, as built from a [`Limit`].
#[derive(Debug)]
pub enum AnyLimiter<C: Clock = SystemClock> {
    /// A [`TokenBucket`].
    TokenBucket(TokenBucket<C>),
    /// A [`LeakyBucket`].
    LeakyBucket(LeakyBucket<C>),
    /// A [`FixedWindow`].
    FixedWindow(FixedWindow<C>),
    /// A [`SlidingWindowLog`].
    SlidingWindowLog(SlidingWindowLog<C>),
    /// A [`SlidingWindowCounter`].
    SlidingWindowCounter(SlidingWindowCounter<C>),
}

impl<C: Clock> AnyLimiter<C> {
    fn inner(&self) -> &dyn Limiter {
        match self {
            AnyLimiter::TokenBucket(l) => l,
            AnyLimiter::LeakyBucket(l) => l,
            AnyLimiter::FixedWindow(l) => l,
            AnyLimiter::SlidingWindowLog(l) => l,
            AnyLimiter::SlidingWindowCounter(l) => l,
        }
    }

    /// Applies a new [`Limit`] of the same algorithm to the limiter in use.
    ///
    /// # Errors
    /// [`LimitError::AlgorithmChanged`] for a different algorithm (build a
    /// new limiter instead), or the limit's own error; nothing changes then.
    pub fn set_limit(&self, limit: &Limit) -> Result<(), LimitError> {
        limit.validate()?;
        let (capacity, rate, window) = (limit.capacity(), limit.rate, limit.window());
        match (self, limit.algorithm) {
            (AnyLimiter::TokenBucket(l), Algorithm::TokenBucket) => l.set_limit(capacity, rate),
            (AnyLimiter::LeakyBucket(l), Algorithm::LeakyBucket) => l.set_limit(capacity, rate),
            (AnyLimiter::FixedWindow(l), Algorithm::FixedWindow) => l.set_limit(capacity, window),
            (AnyLimiter::SlidingWindowLog(l), Algorithm::SlidingWindowLog) => {
                l.set_limit(capacity, window)
            }
            (AnyLimiter::SlidingWindowCounter(l), Algorithm::SlidingWindowCounter) => {
                l.set_limit(capacity, window)
            }
            _ => Err(LimitError::AlgorithmChanged),
        }
    }
}

impl<C: Clock> Limiter for AnyLimiter<C> {
    fn limit(&self) -> u64 {
        self.inner().limit()
    }
    fn now(&self) -> u64 {
        self.inner().now()
    }
    fn window(&self) -> Duration {
        self.inner().window()
    }
    fn check_n_at(&self, now: u64, cost: u64) -> Result<Decision, LimitError> {
        self.inner().check_n_at(now, cost)
    }
    fn peek_n_at(&self, now: u64, cost: u64) -> Result<Decision, LimitError> {
        self.inner().peek_n_at(now, cost)
    }
    fn refund_at(&self, now: u64, cost: u64) {
        self.inner().refund_at(now, cost);
    }
    fn is_idle_at(&self, now: u64) -> bool {
        self.inner().is_idle_at(now)
    }
}

/// `capacity` intervals of `t` nanoseconds (saturating).
pub(crate) fn refill_time(t: u64, capacity: u64) -> Duration {
    Duration::from_nanos(t.saturating_mul(capacity))
}
