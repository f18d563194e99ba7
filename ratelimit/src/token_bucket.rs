//! [`TokenBucket`]: a token bucket as GCRA on one atomic.

use std::time::Duration;

use crate::clock::{Clock, SystemClock};
use crate::error::LimitError;
use crate::rate::Rate;
use crate::sync::{AtomicU64, Ordering};

/// The outcome of a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Whether the request was admitted (and its tokens taken).
    pub allowed: bool,
    /// The limit: the bucket's capacity.
    pub limit: u64,
    /// Tokens left after this decision.
    pub remaining: u64,
    /// Time until the bucket is full again.
    pub reset_after: Duration,
    /// For a denial: the wait after which this same request would pass.
    /// `None` when admitted.
    pub retry_after: Option<Duration>,
}

/// The pure GCRA step shared by every backend: given the bucket's
/// theoretical arrival time `tat` (`None`: untouched, as good as full), the
/// time `now`, the emission interval `t`, the tolerance `tau = t × (capacity
/// − 1)` and a `cost`, the decision and, if admitted, the new `tat`.
///
/// A request of `cost` tokens fits iff `now >= tat + t × (cost − 1) − tau`;
/// admitting it moves `tat` to `max(tat, now) + t × cost`. A denial changes
/// nothing. This is the arithmetic of `governor` (integer nanoseconds), so
/// the two agree on every decision.
pub fn gcra_step(
    tat: Option<u64>,
    now: u64,
    t: u64,
    tau: u64,
    capacity: u64,
    cost: u64,
) -> (Decision, Option<u64>) {
    let tat = tat.unwrap_or(now);
    let additional = t.saturating_mul(cost - 1);
    let earliest = tat.saturating_add(additional).saturating_sub(tau);
    let remaining_at = |tat_after: u64| {
        // Tokens that fit between now and the tolerance edge.
        (now.saturating_add(tau).saturating_add(t).saturating_sub(tat_after.max(now)) / t)
            .min(capacity)
    };
    if now < earliest {
        let decision = Decision {
            allowed: false,
            limit: capacity,
            remaining: remaining_at(tat),
            reset_after: Duration::from_nanos(tat.saturating_sub(now)),
            retry_after: Some(Duration::from_nanos(earliest - now)),
        };
        return (decision, None);
    }
    let next = tat.max(now).saturating_add(t.saturating_mul(cost));
    let decision = Decision {
        allowed: true,
        limit: capacity,
        remaining: remaining_at(next),
        reset_after: Duration::from_nanos(next.saturating_sub(now)),
        retry_after: None,
    };
    (decision, Some(next))
}

/// A token bucket of `capacity` tokens refilling at a [`Rate`], implemented
/// as GCRA (the generic cell rate algorithm): the whole state is one
/// timestamp, the *theoretical arrival time*, kept in one `AtomicU64` and
/// updated with a compare-and-swap, so checks are lock-free.
///
/// It starts full. A request of `n` tokens is admitted iff `n` tokens are
/// available; a denial changes nothing. Decisions equal `governor`'s with
/// `Quota::per_second(r).allow_burst(capacity)` on any sequence of arrivals.
///
/// ```
/// use std::time::Duration;
/// use sysblocks_ratelimit::{ManualClock, Rate, TokenBucket};
///
/// // A bucket of 10 refilling 2 per second.
/// let clock = ManualClock::new();
/// let bucket = TokenBucket::with_clock(10, Rate::per_second(2)?, clock.clone())?;
/// let admitted = (0..11).filter(|_| bucket.check().allowed).count();
/// assert_eq!(admitted, 10); // the 11th is denied
/// clock.advance(Duration::from_secs(5));
/// assert_eq!((0..11).filter(|_| bucket.check().allowed).count(), 10); // full again
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct TokenBucket<C: Clock = SystemClock> {
    /// Theoretical arrival time in nanoseconds; 0 means untouched.
    tat: AtomicU64,
    /// Emission interval: nanoseconds per token.
    t: u64,
    /// Tolerance: `t × (capacity − 1)`.
    tau: u64,
    capacity: u64,
    clock: C,
}

impl TokenBucket<SystemClock> {
    /// A full bucket of `capacity` tokens refilling at `rate`, on the system
    /// clock.
    ///
    /// # Errors
    /// [`LimitError::ZeroCapacity`].
    pub fn new(capacity: u64, rate: Rate) -> Result<Self, LimitError> {
        Self::with_clock(capacity, rate, SystemClock::default())
    }
}

impl<C: Clock> TokenBucket<C> {
    /// As [`new`](TokenBucket::new), on the given clock.
    ///
    /// # Errors
    /// [`LimitError::ZeroCapacity`].
    pub fn with_clock(capacity: u64, rate: Rate, clock: C) -> Result<Self, LimitError> {
        if capacity == 0 {
            return Err(LimitError::ZeroCapacity);
        }
        let t = rate.interval_nanos();
        Ok(TokenBucket {
            tat: AtomicU64::new(0),
            t,
            tau: t.saturating_mul(capacity - 1),
            capacity,
            clock,
        })
    }

    /// The capacity.
    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    /// Takes one token if available.
    #[inline]
    pub fn check(&self) -> Decision {
        self.decide(self.clock.now_nanos(), 1, true)
    }

    /// Takes `cost` tokens if all are available (none otherwise).
    ///
    /// # Errors
    /// [`LimitError::ZeroCost`], or [`LimitError::CostAboveCapacity`] for a
    /// request that could never pass.
    pub fn check_n(&self, cost: u64) -> Result<Decision, LimitError> {
        self.check_cost(cost)?;
        Ok(self.decide(self.clock.now_nanos(), cost, true))
    }

    /// What [`check_n`](Self::check_n) would decide, without taking anything.
    ///
    /// # Errors
    /// As [`check_n`](Self::check_n).
    pub fn peek_n(&self, cost: u64) -> Result<Decision, LimitError> {
        self.check_cost(cost)?;
        Ok(self.decide(self.clock.now_nanos(), cost, false))
    }

    /// As [`check_n`](Self::check_n) at an explicit time (nanoseconds on this
    /// bucket's clock), for replaying arrivals.
    ///
    /// # Errors
    /// As [`check_n`](Self::check_n).
    pub fn check_n_at(&self, now_nanos: u64, cost: u64) -> Result<Decision, LimitError> {
        self.check_cost(cost)?;
        Ok(self.decide(now_nanos, cost, true))
    }

    fn check_cost(&self, cost: u64) -> Result<(), LimitError> {
        if cost == 0 {
            return Err(LimitError::ZeroCost);
        }
        if cost > self.capacity {
            return Err(LimitError::CostAboveCapacity { cost, capacity: self.capacity });
        }
        Ok(())
    }

    #[inline]
    fn decide(&self, now: u64, cost: u64, take: bool) -> Decision {
        let mut current = self.tat.load(Ordering::Acquire);
        loop {
            let tat = if current == 0 { None } else { Some(current) };
            let (decision, next) = gcra_step(tat, now, self.t, self.tau, self.capacity, cost);
            let Some(next) = next.filter(|_| take) else { return decision };
            match self.tat.compare_exchange_weak(current, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return decision,
                Err(actual) => current = actual,
            }
        }
    }
}
