//! The fixed window: one count per epoch-aligned window. Its pure step
//! serves the in-process [`FixedWindow`](super::FixedWindow) and, on the
//! state that `fixed.lua` (next to this file) keeps in Redis, the
//! `RedisLimiter`.

use std::time::Duration;

use super::WindowAlgorithm;
use crate::decision::Decision;

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
        // A limit lowered below what was admitted leaves no room.
        let decision = Decision::deny(limit, limit.saturating_sub(count), until_next, until_next);
        return (decision, FixedWindowState { window: current, count });
    };
    let count = count_after;
    let decision = Decision::admit(limit, limit - count, until_next);
    (decision, FixedWindowState { window: current, count })
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
