//! [`LeakyBucket`]: a shaper that gives each request the next departure
//! slot at a constant rate, with a bounded queue.

use std::collections::BTreeSet;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use crate::clock::{Clock, SystemClock};
use crate::decision::Decision;
use crate::error::LimitError;
use crate::limiter::Limiter;
use crate::rate::Rate;
use crate::token_bucket::{check_cost, gcra_step, gcra_tau};

/// The pure leaky-bucket step. The queue drains one unit every `t`;
/// `next_free` is the time the queue is empty again (`None`: empty). A
/// request of `cost` joins the queue iff the queue then holds at most
/// `capacity` units; it departs at `max(next_free, now)`, which
/// [`Decision::wait`] reports, and the queue grows by `t × cost`.
///
/// As a *meter* this is exactly GCRA with `tat = next_free` and a tolerance
/// of `t × (capacity − 1)` (the two algorithms are known to be equivalent);
/// the difference is that a shaper holds each admitted request until its
/// slot instead of letting it through at once. So this reuses
/// [`gcra_step`] and adds the wait.
pub fn leaky_step(
    next_free: Option<u64>,
    now: u64,
    t: u64,
    capacity: u64,
    cost: u64,
) -> (Decision, Option<u64>) {
    // A configuration whose tolerance overflows (the constructors reject
    // it) queues one unit at a time rather than admitting on a saturated
    // tolerance.
    let tau = gcra_tau(t, capacity).unwrap_or(0);
    let (decision, next) = gcra_step(next_free, now, t, tau, capacity, cost);
    (decision.with_wait(Duration::from_nanos(next_free.unwrap_or(now).saturating_sub(now))), next)
}

#[derive(Debug, Default)]
struct State {
    /// When the queue is empty again; 0: empty.
    next_free: u64,
    /// Unit slots given back by cancelled requests that were not last in
    /// the queue; the next unit requests take them first.
    holes: BTreeSet<u64>,
    t: u64,
    capacity: u64,
}

impl State {
    fn forget_past_holes(&mut self, now: u64) {
        while self.holes.first().is_some_and(|&h| h < now) {
            self.holes.pop_first();
        }
    }

    /// The queue as if the holes were not there: their slots are free.
    fn effective_next_free(&self, now: u64) -> Option<u64> {
        if self.next_free <= now {
            return None;
        }
        let gaps = self.t.saturating_mul(self.holes.len() as u64);
        Some(self.next_free.saturating_sub(gaps).max(now))
    }

    fn reserve(&mut self, now: u64, cost: u64, take: bool) -> (Decision, Option<u64>) {
        self.forget_past_holes(now);
        let effective = self.effective_next_free(now);
        let (mut decision, _) = leaky_step(effective, now, self.t, self.capacity, cost);
        if !decision.allowed || !take {
            return (decision, None);
        }
        if cost == 1
            && let Some(hole) = self.holes.pop_first()
        {
            decision.wait = Duration::from_nanos(hole - now);
            return (decision, Some(hole));
        }
        let slot = self.next_free.max(now);
        decision.wait = Duration::from_nanos(slot - now);
        self.next_free = slot.saturating_add(self.t.saturating_mul(cost));
        (decision, Some(slot))
    }

    /// Gives back the `cost` units reserved at `slot`.
    #[cfg_attr(not(feature = "async"), allow(dead_code))]
    fn cancel(&mut self, now: u64, slot: u64, cost: u64) {
        let end = slot.saturating_add(self.t.saturating_mul(cost));
        if end == self.next_free {
            self.next_free = slot;
            while self.next_free > now && self.holes.remove(&(self.next_free - self.t)) {
                self.next_free -= self.t;
            }
        } else {
            for i in 0..cost {
                let unit = slot.saturating_add(self.t.saturating_mul(i));
                if unit >= now && unit < self.next_free {
                    self.holes.insert(unit);
                }
            }
        }
        self.forget_past_holes(now);
    }
}

/// A leaky bucket used as a *shaper*: requests leave at a constant rate,
/// one every `1 / rate`, each in the next free departure slot; at most
/// `capacity` units wait in the queue, and a request that would overfill
/// it is denied. An admitted request's [`Decision::wait`] says how long to
/// hold it; with the `async` feature, `acquire` does the
/// waiting and gives the slot back if the future is dropped early.
///
/// ```
/// use std::time::Duration;
/// use sysblocks_ratelimit::{LeakyBucket, ManualClock, Rate};
///
/// // 2 per second, at most 3 queued.
/// let bucket = LeakyBucket::with_clock(3, Rate::per_second(2)?, ManualClock::new())?;
/// let waits: Vec<_> = (0..4).map(|_| bucket.check()).collect();
/// assert_eq!(waits[0].wait, Duration::ZERO);
/// assert_eq!(waits[1].wait, Duration::from_millis(500));
/// assert_eq!(waits[2].wait, Duration::from_millis(1000));
/// assert!(!waits[3].allowed); // the queue is full
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct LeakyBucket<C: Clock = SystemClock> {
    state: Mutex<State>,
    clock: C,
}

impl LeakyBucket<SystemClock> {
    /// A shaper releasing at `rate` with room for `capacity` units, on the
    /// system clock.
    ///
    /// # Errors
    /// [`LimitError::ZeroCapacity`], or [`LimitError::BurstTooLong`] when
    /// the full queue would take more than about 292 years to drain.
    pub fn new(capacity: u64, rate: Rate) -> Result<Self, LimitError> {
        Self::with_clock(capacity, rate, SystemClock::default())
    }
}

impl<C: Clock> LeakyBucket<C> {
    /// As [`new`](LeakyBucket::new), on the given clock.
    ///
    /// # Errors
    /// [`LimitError::ZeroCapacity`].
    pub fn with_clock(capacity: u64, rate: Rate, clock: C) -> Result<Self, LimitError> {
        gcra_tau(rate.interval_nanos(), capacity)?;
        let state = State { t: rate.interval_nanos(), capacity, ..State::default() };
        Ok(LeakyBucket { state: Mutex::new(state), clock })
    }

    /// This bucket's clock.
    pub fn clock(&self) -> &C {
        &self.clock
    }

    /// Reserves a departure slot for one request (see [`Decision::wait`]).
    pub fn check(&self) -> Decision {
        self.lock().reserve(self.clock.now_nanos(), 1, true).0
    }

    /// What [`check`](Self::check) would decide, reserving nothing.
    pub fn peek(&self) -> Decision {
        self.lock().reserve(self.clock.now_nanos(), 1, false).0
    }

    /// Reserves `cost` consecutive units.
    ///
    /// # Errors
    /// [`LimitError::ZeroCost`], [`LimitError::CostAboveCapacity`].
    pub fn check_n(&self, cost: u64) -> Result<Decision, LimitError> {
        Limiter::check_n_at(self, self.clock.now_nanos(), cost)
    }

    /// What [`check_n`](Self::check_n) would decide, reserving nothing.
    ///
    /// # Errors
    /// As [`check_n`](Self::check_n).
    pub fn peek_n(&self, cost: u64) -> Result<Decision, LimitError> {
        Limiter::peek_n_at(self, self.clock.now_nanos(), cost)
    }

    /// Gives back `cost` units reserved earlier (a request that was
    /// admitted but not carried out): the queue gets shorter.
    pub fn refund(&self, cost: u64) {
        Limiter::refund_at(self, self.clock.now_nanos(), cost);
    }

    /// Changes the rate and queue length of a bucket in use; requests
    /// already queued keep their slots.
    ///
    /// # Errors
    /// As [`new`](LeakyBucket::new); the bucket is then unchanged.
    pub fn set_limit(&self, capacity: u64, rate: Rate) -> Result<(), LimitError> {
        gcra_tau(rate.interval_nanos(), capacity)?;
        let mut state = self.lock();
        state.capacity = capacity;
        state.t = rate.interval_nanos();
        state.holes.clear();
        Ok(())
    }

    /// Reserves a slot for `cost` units and waits for it. A full queue is
    /// not waited on: the denial comes back at once. Dropping the future
    /// before the slot gives the slot back to the requests behind.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use sysblocks_ratelimit::{LeakyBucket, Rate, TokioClock};
    ///
    /// let bucket = LeakyBucket::with_clock(10, Rate::per_second(100)?, TokioClock::new())?;
    /// let start = tokio::time::Instant::now();
    /// for _ in 0..3 {
    ///     assert!(bucket.acquire(1).await?.allowed);
    /// }
    /// assert_eq!(start.elapsed(), std::time::Duration::from_millis(20));
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// As [`check_n`](Self::check_n).
    #[cfg(feature = "async")]
    #[cfg_attr(docsrs, doc(cfg(feature = "async")))]
    pub async fn acquire(&self, cost: u64) -> Result<Decision, LimitError> {
        let now = self.clock.now_nanos();
        let (decision, slot) = {
            let mut state = self.lock();
            check_cost(cost, state.capacity)?;
            state.reserve(now, cost, true)
        };
        let Some(slot) = slot else { return Ok(decision) };
        // Should this future be dropped while sleeping, the guard gives the
        // slot back.
        let guard = SlotGuard { bucket: self, slot, cost, armed: true };
        tokio::time::sleep(decision.wait).await;
        guard.disarm();
        Ok(decision)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // No step panics half-way, so a poisoned lock holds a sound state.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Gives a reserved slot back unless disarmed (the request departed).
#[cfg(feature = "async")]
struct SlotGuard<'a, C: Clock> {
    bucket: &'a LeakyBucket<C>,
    slot: u64,
    cost: u64,
    armed: bool,
}

#[cfg(feature = "async")]
impl<C: Clock> SlotGuard<'_, C> {
    fn disarm(mut self) {
        self.armed = false;
    }
}

#[cfg(feature = "async")]
impl<C: Clock> Drop for SlotGuard<'_, C> {
    fn drop(&mut self) {
        if self.armed {
            let now = self.bucket.clock.now_nanos();
            self.bucket.lock().cancel(now, self.slot, self.cost);
        }
    }
}

impl<C: Clock> Limiter for LeakyBucket<C> {
    fn limit(&self) -> u64 {
        self.lock().capacity
    }

    fn window(&self) -> std::time::Duration {
        let state = self.lock();
        crate::config::refill_time(state.t, state.capacity)
    }

    fn now(&self) -> u64 {
        self.clock.now_nanos()
    }

    fn check_n_at(&self, now: u64, cost: u64) -> Result<Decision, LimitError> {
        let mut state = self.lock();
        check_cost(cost, state.capacity)?;
        Ok(state.reserve(now, cost, true).0)
    }

    fn peek_n_at(&self, now: u64, cost: u64) -> Result<Decision, LimitError> {
        let mut state = self.lock();
        check_cost(cost, state.capacity)?;
        Ok(state.reserve(now, cost, false).0)
    }

    /// Gives back the last `cost` units queued.
    fn refund_at(&self, now: u64, cost: u64) {
        let mut state = self.lock();
        if state.next_free > now {
            let back = state.t.saturating_mul(cost);
            state.next_free = state.next_free.saturating_sub(back).max(now);
        }
    }

    fn is_idle_at(&self, now: u64) -> bool {
        self.lock().next_free <= now
    }
}
