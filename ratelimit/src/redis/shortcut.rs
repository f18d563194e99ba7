//! The local shortcut of [`RedisLimiter`](super::RedisLimiter): a key
//! Redis denied until an instant, for costs at or above one, is denied
//! again locally until then, without a round trip.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use crate::decision::Decision;

/// Keys known to be denied until an instant, for costs at or above a cost.
#[derive(Debug)]
pub(super) struct Shortcut {
    pub(super) denied: Mutex<HashMap<String, Denied>>,
    pub(super) max_keys: usize,
}

/// A denial Redis made, kept to answer the same way locally.
#[derive(Debug, Clone, Copy)]
pub(super) struct Denied {
    /// When the denied cost fits again.
    pub(super) until: Instant,
    /// When the key's state is fresh again (Redis's `reset_after`).
    pub(super) reset: Instant,
    /// The smallest cost known to be denied.
    pub(super) cost: u64,
    /// What Redis said was left.
    pub(super) remaining: u64,
}

impl Shortcut {
    /// The denial Redis would give `key` for `cost` now, if it is known:
    /// the same retry, reset and remaining as Redis's own, counted down.
    pub(super) fn denied(&self, key: &str, cost: u64, limit: u64) -> Option<Decision> {
        let denied = self.denied.lock().unwrap_or_else(PoisonError::into_inner);
        let known = *denied.get(key)?;
        let now = Instant::now();
        let left = known.until.checked_duration_since(now)?;
        if cost < known.cost || left.is_zero() {
            return None;
        }
        let reset = known.reset.saturating_duration_since(now);
        Some(Decision::deny(limit, known.remaining, reset, left))
    }

    pub(super) fn remember(&self, key: &str, cost: u64, decision: &Decision) {
        let Some(wait) = decision.retry_after else { return };
        let now = Instant::now();
        let mut denied = self.denied.lock().unwrap_or_else(PoisonError::into_inner);
        if denied.len() >= self.max_keys {
            denied.retain(|_, d| d.until > now);
            if denied.len() >= self.max_keys {
                return;
            }
        }
        let entry = Denied {
            until: now + wait,
            reset: now + decision.reset_after,
            cost,
            remaining: decision.remaining,
        };
        denied.insert(key.to_string(), entry);
    }

    /// Lowers a remembered denial's `remaining` to what an admission said
    /// (an admission of a smaller cost used some of it). Never raises it:
    /// while a denial stands, what is left can only shrink, so a higher
    /// figure is an older decision whose reply came late (two batches in
    /// flight reach Redis in either order).
    pub(super) fn refresh(&self, key: &str, decision: &Decision) {
        let mut denied = self.denied.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(known) = denied.get_mut(key) {
            known.remaining = known.remaining.min(decision.remaining);
        }
    }

    pub(super) fn forget(&self, key: &str) {
        self.denied.lock().unwrap_or_else(PoisonError::into_inner).remove(key);
    }
}
