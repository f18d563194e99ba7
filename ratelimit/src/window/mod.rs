//! Window-based limiters: [`FixedWindow`], [`SlidingWindowLog`] and
//! [`SlidingWindowCounter`]. Each algorithm is one file here: its state, its
//! pure step, a marker type ([`Fixed`], [`Log`], [`Counter`]) that plugs it
//! into the [`WindowLimiter`] (which applies the step under a lock), and,
//! beside it, the Lua script that keeps the same state in Redis for the
//! `RedisLimiter`, which decides with the same step.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use crate::clock::{Clock, SystemClock};
use crate::decision::Decision;
use crate::error::LimitError;
use crate::limiter::Limiter;
use crate::token_bucket::check_cost;

mod counter;
mod fixed;
mod log;

pub use counter::{Counter, SlidingCounterState, sliding_counter_step};
pub use fixed::{Fixed, FixedWindowState, fixed_window_step};
pub use log::{Log, SlidingLogState, sliding_log_step};

fn window_nanos(window: Duration) -> Result<u64, LimitError> {
    match u64::try_from(window.as_nanos()) {
        Ok(0) | Err(_) => Err(LimitError::ZeroRate),
        Ok(n) => Ok(n),
    }
}

fn check_limit(limit: u64) -> Result<(), LimitError> {
    if limit == 0 { Err(LimitError::ZeroCapacity) } else { Ok(()) }
}

/// One window algorithm: its state and its pure step. The three
/// algorithms of this module implement it; [`WindowLimiter`] applies any of
/// them under a lock.
pub trait WindowAlgorithm {
    /// What the algorithm remembers between requests.
    type State: Default + Clone + std::fmt::Debug + Send;

    /// Decides a request of `cost` at `now` and updates `state`.
    fn step(state: &mut Self::State, now: u64, window: u64, limit: u64, cost: u64) -> Decision;

    /// Gives back `cost` admitted earlier (the most recent admissions first).
    fn refund(state: &mut Self::State, now: u64, window: u64, cost: u64);

    /// Whether `state` counts nothing at `now`, like a fresh state.
    fn is_idle(state: &Self::State, now: u64, window: u64) -> bool;

    /// Re-expresses `state` for a new window length, keeping what it
    /// counts as of `now` (what was admitted stays counted).
    fn rewindow(state: &mut Self::State, now: u64, old_window: u64, new_window: u64);
}

/// A window limiter's settings and state, under one lock.
#[derive(Debug)]
struct Inner<S> {
    state: S,
    window: u64,
    limit: u64,
    /// The latest time a decision was made at: an earlier `now` (a caller
    /// that read the clock and then waited for the lock) is taken as this.
    latest: u64,
}

impl<S> Inner<S> {
    /// `now`, never earlier than a time already decided at.
    fn advance(&mut self, now: u64) -> u64 {
        self.latest = self.latest.max(now);
        self.latest
    }
}

/// At most `limit` per `window` by algorithm `A`, its state behind a lock.
/// Use it through [`FixedWindow`], [`SlidingWindowLog`] and
/// [`SlidingWindowCounter`].
#[derive(Debug)]
pub struct WindowLimiter<A: WindowAlgorithm, C: Clock = SystemClock> {
    inner: Mutex<Inner<A::State>>,
    clock: C,
}

impl<A: WindowAlgorithm> WindowLimiter<A, SystemClock> {
    /// At most `limit` per `window`, on the system clock.
    ///
    /// # Errors
    /// [`LimitError::ZeroCapacity`], [`LimitError::ZeroRate`] for a zero window.
    pub fn new(limit: u64, window: Duration) -> Result<Self, LimitError> {
        Self::with_clock(limit, window, SystemClock::default())
    }
}

impl<A: WindowAlgorithm, C: Clock> WindowLimiter<A, C> {
    /// As [`new`](WindowLimiter::new), on the given clock.
    ///
    /// # Errors
    /// As [`new`](WindowLimiter::new).
    pub fn with_clock(limit: u64, window: Duration, clock: C) -> Result<Self, LimitError> {
        check_limit(limit)?;
        let window = window_nanos(window)?;
        let inner = Inner { state: A::State::default(), window, limit, latest: 0 };
        Ok(WindowLimiter { inner: Mutex::new(inner), clock })
    }

    /// The limit per window.
    pub fn limit(&self) -> u64 {
        self.lock().limit
    }

    /// Admits one request if there is room.
    pub fn check(&self) -> Decision {
        let mut inner = self.lock();
        // The clock is read under the lock, so decisions happen in time order.
        let now = inner.advance(self.clock.now_nanos());
        let Inner { state, window, limit, .. } = &mut *inner;
        A::step(state, now, *window, *limit, 1)
    }

    /// What [`check`](Self::check) would decide, changing nothing.
    pub fn peek(&self) -> Decision {
        let inner = self.lock();
        let now = inner.latest.max(self.clock.now_nanos());
        let mut scratch = inner.state.clone();
        A::step(&mut scratch, now, inner.window, inner.limit, 1)
    }

    /// Admits a request of `cost` if there is room for all of it.
    ///
    /// # Errors
    /// [`LimitError::ZeroCost`], [`LimitError::CostAboveCapacity`].
    pub fn check_n(&self, cost: u64) -> Result<Decision, LimitError> {
        let mut inner = self.lock();
        let now = self.clock.now_nanos();
        Self::check_locked(&mut inner, now, cost)
    }

    fn check_locked(
        inner: &mut Inner<A::State>,
        now: u64,
        cost: u64,
    ) -> Result<Decision, LimitError> {
        check_cost(cost, inner.limit)?;
        let now = inner.advance(now);
        let Inner { state, window, limit, .. } = inner;
        Ok(A::step(state, now, *window, *limit, cost))
    }

    /// What [`check_n`](Self::check_n) would decide, changing nothing.
    ///
    /// # Errors
    /// As [`check_n`](Self::check_n).
    pub fn peek_n(&self, cost: u64) -> Result<Decision, LimitError> {
        Limiter::peek_n_at(self, self.clock.now_nanos(), cost)
    }

    /// Gives back `cost` admitted earlier (the most recent admissions first).
    pub fn refund(&self, cost: u64) {
        Limiter::refund_at(self, self.clock.now_nanos(), cost);
    }

    /// Changes the limit and window of a limiter in use. What was admitted
    /// stays counted, also across a change of window length (the counts
    /// move to the window that holds now); a smaller limit may deny until
    /// it has aged out.
    ///
    /// # Errors
    /// As [`new`](WindowLimiter::new); the limiter is then unchanged.
    pub fn set_limit(&self, limit: u64, window: Duration) -> Result<(), LimitError> {
        check_limit(limit)?;
        let window = window_nanos(window)?;
        let mut inner = self.lock();
        let now = inner.advance(self.clock.now_nanos());
        if window != inner.window {
            let old = inner.window;
            A::rewindow(&mut inner.state, now, old, window);
        }
        inner.limit = limit;
        inner.window = window;
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner<A::State>> {
        // The steps do not panic part-way through an update, so a poisoned
        // lock still holds a consistent state.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<A: WindowAlgorithm, C: Clock> Limiter for WindowLimiter<A, C>
where
    A::State: Send,
{
    fn limit(&self) -> u64 {
        WindowLimiter::limit(self)
    }

    fn now(&self) -> u64 {
        self.clock.now_nanos()
    }

    fn window(&self) -> Duration {
        Duration::from_nanos(self.lock().window)
    }

    /// A time earlier than one already decided at is taken as that later
    /// time: what was admitted is never forgotten by going back.
    fn check_n_at(&self, now: u64, cost: u64) -> Result<Decision, LimitError> {
        Self::check_locked(&mut self.lock(), now, cost)
    }

    fn peek_n_at(&self, now: u64, cost: u64) -> Result<Decision, LimitError> {
        let inner = self.lock();
        check_cost(cost, inner.limit)?;
        let now = inner.latest.max(now);
        let mut scratch = inner.state.clone();
        Ok(A::step(&mut scratch, now, inner.window, inner.limit, cost))
    }

    fn refund_at(&self, now: u64, cost: u64) {
        let mut inner = self.lock();
        let now = inner.latest.max(now);
        let window = inner.window;
        A::refund(&mut inner.state, now, window, cost);
    }

    fn is_idle_at(&self, now: u64) -> bool {
        let inner = self.lock();
        A::is_idle(&inner.state, inner.latest.max(now), inner.window)
    }
}

/// At most `limit` per window, windows aligned to the epoch. Simple and
/// cheap (one counter), but a burst of up to `2 × limit` can pass around a
/// window boundary.
///
/// ```
/// use std::time::Duration;
/// use sysblocks_ratelimit::{FixedWindow, ManualClock};
///
/// let clock = ManualClock::new();
/// let limiter = FixedWindow::with_clock(3, Duration::from_secs(1), clock.clone())?;
/// assert_eq!((0..5).filter(|_| limiter.check().allowed).count(), 3);
/// clock.advance(Duration::from_secs(1));
/// assert!(limiter.check().allowed); // a new window
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub type FixedWindow<C = SystemClock> = WindowLimiter<Fixed, C>;

/// Exactly `limit` per any window of length `window` (a request at time
/// `t` counts until `t + window`): no boundary burst. Memory is bounded by
/// `limit` entries.
///
/// ```
/// use std::time::Duration;
/// use sysblocks_ratelimit::{ManualClock, SlidingWindowLog};
///
/// let clock = ManualClock::new();
/// let limiter = SlidingWindowLog::with_clock(2, Duration::from_secs(10), clock.clone())?;
/// assert!(limiter.check().allowed);
/// clock.advance(Duration::from_secs(6));
/// assert!(limiter.check().allowed);
/// assert!(!limiter.check().allowed);
/// clock.advance(Duration::from_secs(4)); // the first request leaves the window
/// assert!(limiter.check().allowed);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub type SlidingWindowLog<C = SystemClock> = WindowLimiter<Log, C>;

/// An approximation of a sliding window in constant memory: two counters,
/// the previous window's weighted by how much of it still overlaps the last
/// `window`. With a limit of 100 per minute, 80 in the previous minute and
/// 30 so far, halfway through: `80 × 0.5 + 30 = 70`, so 30 more fit.
///
/// ```
/// use sysblocks_ratelimit::{sliding_counter_step, SlidingCounterState};
///
/// let minute = 60_000_000_000u64;
/// let state = SlidingCounterState { window: 1, current: 30, previous: 80 };
/// let (decision, _) = sliding_counter_step(state, minute + minute / 2, minute, 100, 1);
/// assert!(decision.allowed);
/// assert_eq!(decision.remaining, 100 - 70 - 1);
/// ```
pub type SlidingWindowCounter<C = SystemClock> = WindowLimiter<Counter, C>;
