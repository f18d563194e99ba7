//! The sliding window counter: two fixed-window counts, the previous one
//! weighted by its overlap with the last window. Its pure step serves the
//! in-process [`SlidingWindowCounter`](super::SlidingWindowCounter) and, on
//! the counts that `counter.lua` (next to this file) keeps in Redis, the
//! `RedisLimiter`.

use std::time::Duration;

use super::WindowAlgorithm;
use crate::decision::Decision;

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
        let retry = counter_retry(previous, current, elapsed, window, limit, cost);
        let remaining = limit.saturating_sub(estimate);
        let decision = Decision::deny(limit, remaining, until_next, Duration::from_nanos(retry));
        return (decision, next);
    }
    let decision = Decision::admit(limit, limit - estimate - cost, until_next);
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
