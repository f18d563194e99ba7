//! Window-based limiters: [`FixedWindow`], [`SlidingWindowLog`] and
//! [`SlidingWindowCounter`], each a pure step over its state plus an
//! in-process type that applies it under a lock.

use std::collections::VecDeque;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use crate::clock::{Clock, SystemClock};
use crate::decision::Decision;
use crate::error::LimitError;
use crate::limiter::Limiter;
use crate::token_bucket::check_cost;

fn window_nanos(window: Duration) -> Result<u64, LimitError> {
    match u64::try_from(window.as_nanos()) {
        Ok(0) | Err(_) => Err(LimitError::ZeroRate),
        Ok(n) => Ok(n),
    }
}

fn check_limit(limit: u64) -> Result<(), LimitError> {
    if limit == 0 { Err(LimitError::ZeroCapacity) } else { Ok(()) }
}

// ----- fixed window ---------------------------------------------------------

/// The state of a fixed window: which window (`now / window`) and how much
/// it has admitted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FixedWindowState {
    /// The window index the count belongs to.
    pub window: u64,
    /// Cost admitted in that window.
    pub count: u64,
}

/// The pure fixed-window step: windows are aligned to the epoch (`[k·w,
/// (k+1)·w)`); a request is admitted iff the window's count plus its cost
/// stays within `limit`.
pub fn fixed_window_step(
    state: FixedWindowState,
    now: u64,
    window: u64,
    limit: u64,
    cost: u64,
) -> (Decision, FixedWindowState) {
    // Time never goes back inside the state: a `now` from an older window
    // (a thread that read the clock, then waited for the lock) counts in
    // the state's window instead of opening a fresh one.
    let now = now.max(state.window.saturating_mul(window));
    let current = now / window;
    let count = if state.window == current { state.count } else { 0 };
    let until_next = Duration::from_nanos(window - now % window);
    let Some(count_after) = count.checked_add(cost).filter(|&c| c <= limit) else {
        let decision = Decision {
            allowed: false,
            limit,
            // A limit lowered below what was admitted leaves no room.
            remaining: limit.saturating_sub(count),
            reset_after: until_next,
            retry_after: Some(until_next),
            wait: Duration::ZERO,
        };
        return (decision, FixedWindowState { window: current, count });
    };
    let count = count_after;
    let decision = Decision {
        allowed: true,
        limit,
        remaining: limit - count,
        reset_after: until_next,
        retry_after: None,
        wait: Duration::ZERO,
    };
    (decision, FixedWindowState { window: current, count })
}

// ----- sliding window log ---------------------------------------------------

/// The state of a sliding log: the admitted requests in the window, oldest
/// first, and the sum of their costs (kept, so that a check does not add up
/// the whole log).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SlidingLogState {
    /// `(time, cost)` of each admitted request, oldest first.
    pub entries: VecDeque<(u64, u64)>,
    /// The sum of the entries' costs.
    pub used: u64,
}

impl SlidingLogState {
    /// Drops the entries that have left the window ending at `now`.
    fn expire(&mut self, now: u64, window: u64) {
        let horizon = now.saturating_sub(window);
        while let Some(&(t, c)) = self.entries.front() {
            if t > horizon || now < window {
                break;
            }
            self.entries.pop_front();
            self.used -= c;
        }
    }
}

/// The pure sliding-log step: the log holds `(time, cost)` of admitted
/// requests, oldest first. Entries older than `now − window` are dropped; a
/// request is admitted iff the costs in the last `window` plus its own stay
/// within `limit`. The log never holds more than `limit` entries, since
/// every entry has a cost of at least 1. A `now` older than the newest
/// entry is taken as that entry's time (time never goes back in the log).
/// O(1) amortised for an admission; a denial walks the log to find its
/// exact retry time, O(entries).
pub fn sliding_log_step(
    log: &mut SlidingLogState,
    now: u64,
    window: u64,
    limit: u64,
    cost: u64,
) -> Decision {
    let now = log.entries.back().map_or(now, |&(t, _)| now.max(t));
    log.expire(now, window);
    let used = log.used;
    let reset_after = log
        .entries
        .back()
        .map_or(Duration::ZERO, |&(t, _)| Duration::from_nanos(t.saturating_add(window) - now));
    if used.checked_add(cost).is_none_or(|u| u > limit) {
        // Wait until enough of the oldest entries have left the window.
        let mut freed = 0;
        let mut wait = 0;
        for &(t, c) in log.entries.iter() {
            freed += c;
            wait = t.saturating_add(window) - now;
            if (used - freed).checked_add(cost).is_some_and(|u| u <= limit) {
                break;
            }
        }
        return Decision {
            allowed: false,
            limit,
            remaining: limit.saturating_sub(used),
            reset_after,
            retry_after: Some(Duration::from_nanos(wait)),
            wait: Duration::ZERO,
        };
    }
    log.entries.push_back((now, cost));
    log.used += cost;
    Decision {
        allowed: true,
        limit,
        remaining: limit - used - cost,
        reset_after: Duration::from_nanos(window),
        retry_after: None,
        wait: Duration::ZERO,
    }
}

// ----- sliding window counter ------------------------------------------------

/// The state of a sliding window counter: the current fixed window and the
/// counts of it and of the one before.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SlidingCounterState {
    /// The current window index (`now / window`).
    pub window: u64,
    /// Cost admitted in the current window.
    pub current: u64,
    /// Cost admitted in the window before it.
    pub previous: u64,
}

/// The pure sliding-counter step: the estimate of the last `window` is
/// `previous × (1 − elapsed / window) + current`, computed in integers as
/// `(previous × (window − elapsed)) / window + current` (rounded down); a
/// request is admitted iff `estimate + cost <= limit`. A denial's
/// `retry_after` is exact: the estimate falls as the previous window's
/// weight shrinks, and the wait ends at the first nanosecond it leaves room.
pub fn sliding_counter_step(
    state: SlidingCounterState,
    now: u64,
    window: u64,
    limit: u64,
    cost: u64,
) -> (Decision, SlidingCounterState) {
    // As in the fixed window, an older `now` counts in the state's window.
    let now = now.max(state.window.saturating_mul(window));
    let next = Counter::roll(state, now, window);
    let SlidingCounterState { window: index, current, previous } = next;
    let elapsed = now - index * window;
    let weighted = u128::from(previous) * u128::from(window - elapsed) / u128::from(window);
    let estimate = u64::try_from(weighted).unwrap_or(u64::MAX).saturating_add(current);
    let until_next = Duration::from_nanos(window - elapsed);
    if estimate.checked_add(cost).is_none_or(|e| e > limit) {
        let decision = Decision {
            allowed: false,
            limit,
            remaining: limit.saturating_sub(estimate),
            reset_after: until_next,
            retry_after: Some(Duration::from_nanos(counter_retry(
                previous, current, elapsed, window, limit, cost,
            ))),
            wait: Duration::ZERO,
        };
        return (decision, next);
    }
    let decision = Decision {
        allowed: true,
        limit,
        remaining: limit - estimate - cost,
        reset_after: until_next,
        retry_after: None,
        wait: Duration::ZERO,
    };
    (decision, SlidingCounterState { current: current.saturating_add(cost), ..next })
}

/// The exact wait before a denied request of `cost` fits, with nothing
/// else admitted meanwhile. The previous window's weight shrinks as time
/// passes, so the estimate falls within the window: the request fits at the
/// first elapsed time `e` with `floor(previous × (window − e) / window) +
/// current + cost <= limit`, that is `e >= window − floor(((room + 1) ×
/// window − 1) / previous)` where `room = limit − current − cost`. If
/// `current + cost` alone exceeds the limit, it must wait for the next
/// window, where `current` becomes the previous count and the same rule
/// applies with a current count of 0.
fn counter_retry(
    previous: u64,
    current: u64,
    elapsed: u64,
    window: u64,
    limit: u64,
    cost: u64,
) -> u64 {
    // The first elapsed time in a window at which `weight` previous counts
    // leave room for `room` more (at the window's end, none are left).
    let first_fit = |weight: u64, room: u64| -> u64 {
        if weight == 0 {
            return 0;
        }
        let allowed = (u128::from(room) + 1) * u128::from(window) - 1;
        let span = u64::try_from(allowed / u128::from(weight)).unwrap_or(u64::MAX);
        window.saturating_sub(span)
    };
    match limit.checked_sub(current.saturating_add(cost)) {
        // Fits later in this window (at elapsed = window, weight 0, it fits).
        Some(room) => first_fit(previous, room).max(elapsed) - elapsed,
        // Only in the next window, with `current` as its previous count.
        None => (window - elapsed).saturating_add(first_fit(current, limit.saturating_sub(cost))),
    }
}

// ----- the limiter that applies a step -------------------------------------

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

/// Epoch-aligned fixed windows ([`fixed_window_step`]).
#[derive(Debug, Clone, Copy)]
pub struct Fixed;

impl WindowAlgorithm for Fixed {
    type State = FixedWindowState;

    fn step(
        state: &mut FixedWindowState,
        now: u64,
        window: u64,
        limit: u64,
        cost: u64,
    ) -> Decision {
        let (decision, next) = fixed_window_step(*state, now, window, limit, cost);
        *state = next;
        decision
    }

    fn refund(state: &mut FixedWindowState, now: u64, window: u64, cost: u64) {
        if state.window >= now / window {
            state.count = state.count.saturating_sub(cost);
        }
    }

    fn is_idle(state: &FixedWindowState, now: u64, window: u64) -> bool {
        state.count == 0 || state.window < now / window
    }

    fn rewindow(state: &mut FixedWindowState, now: u64, old_window: u64, new_window: u64) {
        let count = if state.window >= now / old_window { state.count } else { 0 };
        *state = FixedWindowState { window: now / new_window, count };
    }
}

/// The exact sliding log ([`sliding_log_step`]).
#[derive(Debug, Clone, Copy)]
pub struct Log;

impl WindowAlgorithm for Log {
    type State = SlidingLogState;

    fn step(state: &mut Self::State, now: u64, window: u64, limit: u64, cost: u64) -> Decision {
        sliding_log_step(state, now, window, limit, cost)
    }

    fn refund(state: &mut Self::State, _now: u64, _window: u64, mut cost: u64) {
        while cost > 0 {
            let Some(last) = state.entries.back_mut() else { return };
            if last.1 > cost {
                last.1 -= cost;
                state.used -= cost;
                return;
            }
            cost -= last.1;
            state.used -= last.1;
            state.entries.pop_back();
        }
    }

    fn is_idle(state: &Self::State, now: u64, window: u64) -> bool {
        state.entries.back().is_none_or(|&(t, _)| t.saturating_add(window) <= now)
    }

    fn rewindow(_state: &mut Self::State, _now: u64, _old_window: u64, _new_window: u64) {
        // The log holds times, not window indices: nothing to convert.
    }
}

/// The weighted two-window counter ([`sliding_counter_step`]).
#[derive(Debug, Clone, Copy)]
pub struct Counter;

impl Counter {
    /// The counts as of the window that holds `now` (or the state's own
    /// window, if `now` is older: time never goes back in the state).
    fn roll(state: SlidingCounterState, now: u64, window: u64) -> SlidingCounterState {
        let index = (now / window).max(state.window);
        let (previous, current) = match index.checked_sub(state.window) {
            Some(0) => (state.previous, state.current),
            Some(1) => (state.current, 0),
            _ => (0, 0),
        };
        SlidingCounterState { window: index, current, previous }
    }
}

impl WindowAlgorithm for Counter {
    type State = SlidingCounterState;

    fn step(
        state: &mut SlidingCounterState,
        now: u64,
        window: u64,
        limit: u64,
        cost: u64,
    ) -> Decision {
        let (decision, next) = sliding_counter_step(*state, now, window, limit, cost);
        *state = next;
        decision
    }

    fn refund(state: &mut SlidingCounterState, now: u64, window: u64, cost: u64) {
        let mut rolled = Counter::roll(*state, now, window);
        rolled.current = rolled.current.saturating_sub(cost);
        *state = rolled;
    }

    fn is_idle(state: &SlidingCounterState, now: u64, window: u64) -> bool {
        let rolled = Counter::roll(*state, now, window);
        rolled.current == 0 && rolled.previous == 0
    }

    fn rewindow(state: &mut SlidingCounterState, now: u64, old_window: u64, new_window: u64) {
        let rolled = Counter::roll(*state, now, old_window);
        *state = SlidingCounterState { window: now / new_window, ..rolled };
    }
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

    /// As [`check_n`](Self::check_n) at an explicit time on this limiter's
    /// clock. A time earlier than one already decided at is taken as that
    /// later time: what was admitted is never forgotten by going back.
    ///
    /// # Errors
    /// As [`check_n`](Self::check_n).
    pub fn check_n_at(&self, now: u64, cost: u64) -> Result<Decision, LimitError> {
        Self::check_locked(&mut self.lock(), now, cost)
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

    /// What [`check_n_at`](Self::check_n_at) would decide, changing nothing.
    ///
    /// # Errors
    /// As [`check_n`](Self::check_n).
    pub fn peek_at(&self, now: u64, cost: u64) -> Result<Decision, LimitError> {
        let inner = self.lock();
        check_cost(cost, inner.limit)?;
        let now = inner.latest.max(now);
        let mut scratch = inner.state.clone();
        Ok(A::step(&mut scratch, now, inner.window, inner.limit, cost))
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

    fn check_n_at(&self, now: u64, cost: u64) -> Result<Decision, LimitError> {
        WindowLimiter::check_n_at(self, now, cost)
    }

    fn peek_n_at(&self, now: u64, cost: u64) -> Result<Decision, LimitError> {
        self.peek_at(now, cost)
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
