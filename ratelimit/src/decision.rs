//! [`Decision`]: what every limiter answers, in process or on Redis.

use std::time::Duration;

/// The outcome of a check: whether the request was admitted, and what a
/// client should be told (the limit, what is left, when it is full again,
/// and for a denial when to retry). The HTTP layer turns it into the IETF
/// `RateLimit` headers.
#[must_use = "a Decision says whether the request may proceed"]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Whether the request was admitted (and its cost taken).
    pub allowed: bool,
    /// The limit: a bucket's capacity, a window's limit, a queue's length.
    pub limit: u64,
    /// What is left after this decision.
    pub remaining: u64,
    /// Time until the limit is fully available again (a full bucket, an
    /// empty window).
    pub reset_after: Duration,
    /// For a denial: the wait after which this same request would pass.
    /// `None` when admitted.
    pub retry_after: Option<Duration>,
    /// For an admitted request to a shaper ([`LeakyBucket`](crate::LeakyBucket)):
    /// how long it must wait for its departure slot. Zero for every other
    /// algorithm, and for denials.
    pub wait: Duration,
}

impl Decision {
    /// An admission with `remaining` left of `limit`, fully available again
    /// after `reset_after`.
    pub fn admit(limit: u64, remaining: u64, reset_after: Duration) -> Self {
        Decision {
            allowed: true,
            limit,
            remaining,
            reset_after,
            retry_after: None,
            wait: Duration::ZERO,
        }
    }

    /// A denial that would pass after `retry_after`.
    pub fn deny(limit: u64, remaining: u64, reset_after: Duration, retry_after: Duration) -> Self {
        Decision {
            allowed: false,
            limit,
            remaining,
            reset_after,
            retry_after: Some(retry_after),
            wait: Duration::ZERO,
        }
    }

    /// The same decision with a shaper's wait (kept only on an admission).
    pub fn with_wait(mut self, wait: Duration) -> Self {
        if self.allowed {
            self.wait = wait;
        }
        self
    }

    /// The same decision with every duration multiplied by `factor`: a
    /// pure step run on microseconds (as the Redis backend does) reports
    /// its durations as nanoseconds, so `scaled(1000)` converts them.
    pub fn scaled(self, factor: u32) -> Self {
        Decision {
            reset_after: self.reset_after.saturating_mul(factor),
            retry_after: self.retry_after.map(|r| r.saturating_mul(factor)),
            wait: self.wait.saturating_mul(factor),
            ..self
        }
    }
}
