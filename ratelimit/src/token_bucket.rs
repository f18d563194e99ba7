//! [`TokenBucket`]: a token bucket as GCRA on one atomic.

use std::time::Duration;

use crate::clock::{Clock, SystemClock};
use crate::decision::Decision;
use crate::error::LimitError;
use crate::limiter::Limiter;
use crate::rate::Rate;
use crate::sync::{AtomicU64, Ordering};

/// The pure GCRA step shared by every backend: given the bucket's
/// theoretical arrival time `tat` (`None`: untouched, as good as full), the
/// time `now`, the emission interval `t`, the tolerance `tau = t × (capacity
/// − 1)` and a `cost`, the decision and, if admitted, the new `tat`.
///
/// A request of `cost` tokens fits iff `now >= tat + t × (cost − 1) − tau`;
/// admitting it moves `tat` to `max(tat, now) + t × cost`. A denial changes
/// nothing. This is the arithmetic of `governor` (integer nanoseconds), so
/// the two agree on every decision.
#[inline]
pub fn gcra_step(
    tat: Option<u64>,
    now: u64,
    t: u64,
    tau: u64,
    capacity: u64,
    cost: u64,
) -> (Decision, Option<u64>) {
    let tat = tat.unwrap_or(now);
    let outcome = gcra_admit(tat, now, t, tau, cost);
    (gcra_report(tat, now, t, tau, capacity, cost, outcome), outcome.ok())
}

/// The admission half of [`gcra_step`]: the new TAT (`Ok`), or the earliest
/// time the request would fit (`Err`). Kept apart so that the
/// compare-and-swap loop recomputes only this on a retry.
///
/// The arithmetic is checked, never saturating: a sum past `u64::MAX`
/// nanoseconds is a request that cannot fit before the end of the clock, so
/// it is denied (`Err(u64::MAX)`). Saturating instead would cap the TAT and
/// let every later request through.
#[inline(always)]
fn gcra_admit(tat: u64, now: u64, t: u64, tau: u64, cost: u64) -> Result<u64, u64> {
    const NEVER: Result<u64, u64> = Err(u64::MAX);
    let Some(earliest) = t.checked_mul(cost.saturating_sub(1)).and_then(|d| tat.checked_add(d))
    else {
        return NEVER;
    };
    let earliest = earliest.saturating_sub(tau);
    if now < earliest {
        return Err(earliest);
    }
    match t.checked_mul(cost).and_then(|d| tat.max(now).checked_add(d)) {
        Some(next) => Ok(next),
        None => NEVER,
    }
}

/// The GCRA tolerance `tau = t × (capacity − 1)`: how far ahead of now the
/// TAT may run.
///
/// # Errors
/// [`LimitError::ZeroCapacity`], or [`LimitError::BurstTooLong`] when the
/// bucket would take more than [`MAX_REFILL_NANOS`] (about 292 years) to
/// refill: then a TAT, a clock reading plus a full refill, could leave the
/// `u64` nanoseconds the arithmetic is exact in.
pub fn gcra_tau(t: u64, capacity: u64) -> Result<u64, LimitError> {
    if capacity == 0 {
        return Err(LimitError::ZeroCapacity);
    }
    match t.checked_mul(capacity) {
        Some(full) if full <= MAX_REFILL_NANOS => Ok(full - t),
        _ => Err(LimitError::BurstTooLong { capacity, interval_nanos: t }),
    }
}

/// The longest time a token or leaky bucket may take to refill from empty:
/// `2^63 − 1` nanoseconds, about 292 years, which leaves a clock as long
/// again before any sum of times overflows.
pub const MAX_REFILL_NANOS: u64 = u64::MAX / 2;

/// The reporting half of [`gcra_step`]: the decision for an outcome of
/// [`gcra_admit`] at `tat`.
#[inline(always)]
fn gcra_report(
    tat: u64,
    now: u64,
    t: u64,
    tau: u64,
    capacity: u64,
    cost: u64,
    outcome: Result<u64, u64>,
) -> Decision {
    let remaining_at = |tat_after: u64| {
        // Tokens that fit between now and the tolerance edge; less than a
        // token left (common in denials) needs no division.
        // `checked_div` rather than `/`: a division that cannot panic is
        // pure, so a caller that reads only `allowed` pays nothing for it
        // (the compiler drops it). `t` is at least 1 anyway.
        let room = now.saturating_add(tau).saturating_add(t).saturating_sub(tat_after.max(now));
        if room < t { 0 } else { room.checked_div(t).unwrap_or(0).min(capacity) }
    };
    match outcome {
        Err(earliest) => Decision::deny(
            capacity,
            remaining_at(tat),
            Duration::from_nanos(tat.saturating_sub(now)),
            Duration::from_nanos(earliest - now),
        ),
        Ok(next) => Decision::admit(
            capacity,
            // A bucket that was full has exactly `capacity − cost` left,
            // no division needed (the common case for a limiter with room).
            if tat <= now { capacity.saturating_sub(cost) } else { remaining_at(next) },
            Duration::from_nanos(next.saturating_sub(now)),
        ),
    }
}

/// The pure GCRA refund: gives `cost` tokens back by moving `tat` earlier by
/// `t × cost`, but never before `now` (a full bucket stays full). `None`
/// when nothing changes.
pub fn gcra_refund(tat: Option<u64>, now: u64, t: u64, cost: u64) -> Option<u64> {
    let tat = tat?;
    if tat <= now {
        return None;
    }
    Some(tat.saturating_sub(t.saturating_mul(cost)).max(now))
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
    /// Theoretical arrival time in nanoseconds; 0 (untouched) is a time in
    /// the past like any other, so a new bucket is full.
    tat: AtomicU64,
    /// Emission interval: nanoseconds per token. Atomic so that
    /// [`set_limit`](TokenBucket::set_limit) works on a shared bucket.
    t: AtomicU64,
    /// The capacity (burst), likewise.
    capacity: AtomicU64,
    /// The tolerance `t × (capacity − 1)`, kept rather than multiplied out
    /// on every check; stored with `t` and `capacity` by `set_limit`.
    tau: AtomicU64,
    clock: C,
}

impl TokenBucket<SystemClock> {
    /// A full bucket of `capacity` tokens refilling at `rate`, on the system
    /// clock.
    ///
    /// # Errors
    /// [`LimitError::ZeroCapacity`], or [`LimitError::BurstTooLong`] when
    /// `capacity` tokens take more than [`MAX_REFILL_NANOS`] (about 292
    /// years) to refill.
    pub fn new(capacity: u64, rate: Rate) -> Result<Self, LimitError> {
        Self::with_clock(capacity, rate, SystemClock::default())
    }
}

impl<C: Clock> TokenBucket<C> {
    /// As [`new`](TokenBucket::new), on the given clock.
    ///
    /// # Errors
    /// As [`new`](TokenBucket::new).
    pub fn with_clock(capacity: u64, rate: Rate, clock: C) -> Result<Self, LimitError> {
        let tau = gcra_tau(rate.interval_nanos(), capacity)?;
        Ok(TokenBucket {
            tat: AtomicU64::new(0),
            t: AtomicU64::new(rate.interval_nanos()),
            capacity: AtomicU64::new(capacity),
            tau: AtomicU64::new(tau),
            clock,
        })
    }

    /// The capacity.
    pub fn capacity(&self) -> u64 {
        self.capacity.load(Ordering::Relaxed)
    }

    /// This bucket's clock.
    pub fn clock(&self) -> &C {
        &self.clock
    }

    /// Takes one token if available.
    #[inline]
    pub fn check(&self) -> Decision {
        self.decide(self.clock.now_nanos(), 1, true)
    }

    /// What [`check`](Self::check) would decide, without taking anything.
    pub fn peek(&self) -> Decision {
        self.decide(self.clock.now_nanos(), 1, false)
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

    /// Gives back `cost` tokens taken earlier (a request that was admitted
    /// but not carried out). The bucket never holds more than its capacity.
    pub fn refund(&self, cost: u64) {
        Limiter::refund_at(self, self.clock.now_nanos(), cost);
    }

    /// Changes the capacity and rate of a bucket in use. The tokens in use
    /// are kept (a bucket that was full stays full; one that was empty stays
    /// empty and refills at the new rate), capped at the new capacity. A
    /// check running at the same moment may still see the old settings.
    ///
    /// ```
    /// use sysblocks_ratelimit::{ManualClock, Rate, TokenBucket};
    ///
    /// let bucket = TokenBucket::with_clock(2, Rate::per_second(1)?, ManualClock::new())?;
    /// assert!(bucket.check().allowed);
    /// bucket.set_limit(10, Rate::per_second(5)?)?;
    /// // One token is still in use, so one more request would leave 8.
    /// assert_eq!(bucket.peek().remaining, 8);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// As [`new`](TokenBucket::new); the bucket is then unchanged.
    pub fn set_limit(&self, capacity: u64, rate: Rate) -> Result<(), LimitError> {
        let new_t = rate.interval_nanos();
        let tau = gcra_tau(new_t, capacity)?;
        let now = self.clock.now_nanos();
        let old_t = self.t.swap(new_t, Ordering::AcqRel);
        self.capacity.store(capacity, Ordering::Release);
        self.tau.store(tau, Ordering::Release);
        let _ = self.tat.fetch_update(Ordering::AcqRel, Ordering::Acquire, |tat| {
            if tat <= now {
                return None;
            }
            // Tokens in use = debt / old_t; the same tokens at the new rate.
            let debt = u128::from(tat - now) * u128::from(new_t) / u128::from(old_t);
            let cap = u128::from(new_t) * u128::from(capacity);
            let debt = u64::try_from(debt.min(cap)).unwrap_or(u64::MAX);
            Some(now.saturating_add(debt).max(1))
        });
        Ok(())
    }

    fn check_cost(&self, cost: u64) -> Result<(), LimitError> {
        check_cost(cost, self.capacity())
    }

    #[inline(always)]
    fn decide(&self, now: u64, cost: u64, take: bool) -> Decision {
        let t = self.t.load(Ordering::Relaxed);
        let capacity = self.capacity.load(Ordering::Relaxed);
        // A check racing `set_limit` may pair a new `t` with an old `tau`:
        // each was valid for some limit, and the arithmetic below is
        // checked, so the worst case is one decision made on a mix.
        let tau = self.tau.load(Ordering::Relaxed);
        // An untouched bucket's TAT is 0, a time in the past like any TAT
        // at or before `now`: a full bucket, with no special case.
        let mut current = self.tat.load(Ordering::Acquire);
        let mut pause = 1u32;
        loop {
            let outcome = gcra_admit(current, now, t, tau, cost);
            if let (Ok(next), true) = (outcome, take) {
                // Only the new TAT is computed inside the loop; the decision
                // is built once the swap has succeeded.
                if let Err(actual) = self.tat.compare_exchange_weak(
                    current,
                    next,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                ) {
                    current = actual;
                    backoff(&mut pause);
                    continue;
                }
            }
            return gcra_report(current, now, t, tau, capacity, cost, outcome);
        }
    }
}

/// A pause after losing a compare-and-swap to another thread, doubling up
/// to 64 spins. Retrying at once would take the TAT's cache line back
/// from the thread that just won it, in the middle of its next check, so
/// under contention the line would move between cores on every attempt;
/// a short pause lets the winner's next checks run on a line it holds.
/// Only a thread that lost a race pauses, and only for a few hundred
/// nanoseconds at most; an uncontended check never gets here.
#[cold]
fn backoff(pause: &mut u32) {
    for _ in 0..*pause {
        std::hint::spin_loop();
    }
    *pause = (*pause * 2).min(64);
}

/// The cost checks every limiter shares: a cost of at least 1 and at most
/// the limit (a request above the limit could never pass).
pub(crate) fn check_cost(cost: u64, limit: u64) -> Result<(), LimitError> {
    if cost == 0 {
        return Err(LimitError::ZeroCost);
    }
    if cost > limit {
        return Err(LimitError::CostAboveCapacity { cost, capacity: limit });
    }
    Ok(())
}

impl<C: Clock> Limiter for TokenBucket<C> {
    fn limit(&self) -> u64 {
        self.capacity()
    }

    fn window(&self) -> Duration {
        crate::config::refill_time(self.t.load(Ordering::Relaxed), self.capacity())
    }

    fn now(&self) -> u64 {
        self.clock.now_nanos()
    }

    #[inline]
    fn check_n_at(&self, now: u64, cost: u64) -> Result<Decision, LimitError> {
        self.check_cost(cost)?;
        Ok(self.decide(now, cost, true))
    }

    fn peek_n_at(&self, now: u64, cost: u64) -> Result<Decision, LimitError> {
        self.check_cost(cost)?;
        Ok(self.decide(now, cost, false))
    }

    fn refund_at(&self, now: u64, cost: u64) {
        let t = self.t.load(Ordering::Relaxed);
        let _ = self.tat.fetch_update(Ordering::AcqRel, Ordering::Acquire, |tat| {
            gcra_refund(if tat == 0 { None } else { Some(tat) }, now, t, cost)
        });
    }

    /// Whether the bucket is full, so that a fresh bucket would decide
    /// exactly as this one (what [`Keyed`](crate::Keyed) evicts).
    fn is_idle_at(&self, now: u64) -> bool {
        self.tat.load(Ordering::Acquire) <= now
    }
}
