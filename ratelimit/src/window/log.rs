//! The exact sliding log: every admitted request's time and cost, for the
//! last window. Its pure step serves the in-process
//! [`SlidingWindowLog`](super::SlidingWindowLog) and, on the entries that
//! `log.lua` (next to this file) keeps in Redis, the `RedisLimiter`.

use std::collections::VecDeque;
use std::time::Duration;

use super::WindowAlgorithm;
use crate::decision::Decision;

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
        let remaining = limit.saturating_sub(used);
        return Decision::deny(limit, remaining, reset_after, Duration::from_nanos(wait));
    }
    log.entries.push_back((now, cost));
    log.used += cost;
    Decision::admit(limit, limit - used - cost, Duration::from_nanos(window))
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
