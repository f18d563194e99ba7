//! [`RetryPolicy`]: how long to wait before each retry, and when to stop.

use std::time::Duration;

use rand::Rng;

use crate::error::SchedulerError;

/// How randomness spreads the retries of many failing tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Jitter {
    /// No randomness: exactly `min(cap, base × 2^(n−1))` (every client that
    /// failed together retries together: avoid at scale).
    None,
    /// Uniform in `[0, min(cap, base × 2^(n−1))]`: the least total work in
    /// AWS's simulations; the default.
    Full,
    /// Half fixed, half random: `d/2 + uniform[0, d/2]`.
    Equal,
    /// `min(cap, uniform[base, 3 × previous delay])`: each delay grows from
    /// the last one actually used.
    Decorrelated,
}

/// Exponential backoff with jitter, a cap, and a limit on attempts. An
/// attempt that fails with a retryable error is retried after
/// [`delay`](Self::delay); after `max_attempts` attempts the task is dead.
///
/// ```
/// use std::time::Duration;
/// use sysblocks_scheduler::{Jitter, RetryPolicy};
///
/// let policy = RetryPolicy::new(Duration::from_secs(1), Duration::from_secs(60), 5)?
///     .with_jitter(Jitter::None);
/// let waits: Vec<_> = (1..=4).map(|n| policy.delay(n, Duration::ZERO).as_secs()).collect();
/// assert_eq!(waits, [1, 2, 4, 8]);
/// assert!(policy.should_retry(4) && !policy.should_retry(5));
/// # Ok::<(), sysblocks_scheduler::SchedulerError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    base: Duration,
    cap: Duration,
    max_attempts: u32,
    jitter: Jitter,
    sidekiq: bool,
}

impl Default for RetryPolicy {
    /// Base 1 s, cap 5 min, 10 attempts, full jitter.
    fn default() -> Self {
        RetryPolicy {
            base: Duration::from_secs(1),
            cap: Duration::from_secs(300),
            max_attempts: 10,
            jitter: Jitter::Full,
            sidekiq: false,
        }
    }
}

impl RetryPolicy {
    /// `base × 2^(n−1)` capped at `cap`, with full jitter, at most
    /// `max_attempts` attempts in all.
    ///
    /// # Errors
    /// [`SchedulerError::InvalidPolicy`] for 0 attempts, a zero base, or a
    /// cap below the base.
    pub fn new(base: Duration, cap: Duration, max_attempts: u32) -> Result<Self, SchedulerError> {
        let bad = |message: &str| Err(SchedulerError::InvalidPolicy { message: message.into() });
        if max_attempts == 0 {
            return bad("max_attempts must be at least 1");
        }
        if base.is_zero() {
            return bad("the base delay must be above zero");
        }
        if cap < base {
            return bad("the cap must be at least the base delay");
        }
        Ok(RetryPolicy { base, cap, max_attempts, jitter: Jitter::Full, sidekiq: false })
    }

    /// Sidekiq's schedule: `n^4 + 15 + rand(10) × (n + 1)` seconds before
    /// retry `n` (counting from 0), 25 retries, about 21 days in all.
    pub fn sidekiq() -> Self {
        RetryPolicy {
            base: Duration::from_secs(15),
            cap: Duration::from_secs(60 * 60 * 24 * 7),
            max_attempts: 26,
            jitter: Jitter::Full,
            sidekiq: true,
        }
    }

    /// Sets the jitter.
    #[must_use]
    pub fn with_jitter(mut self, jitter: Jitter) -> Self {
        self.jitter = jitter;
        self
    }

    /// The number of attempts in all (the first and the retries).
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    /// The jitter.
    pub fn jitter(&self) -> Jitter {
        self.jitter
    }

    /// Whether a task whose attempt number `attempt` (from 1) failed gets
    /// another.
    pub fn should_retry(&self, attempt: u32) -> bool {
        attempt < self.max_attempts
    }

    /// The wait after failed attempt `attempt` (from 1), given the wait
    /// before it (`previous`, zero after the first attempt; decorrelated
    /// jitter grows from it).
    pub fn delay(&self, attempt: u32, previous: Duration) -> Duration {
        self.delay_with(attempt, previous, &mut rand::rng())
    }

    /// As [`delay`](Self::delay), with the given random source.
    pub fn delay_with<R: Rng + ?Sized>(
        &self,
        attempt: u32,
        previous: Duration,
        rng: &mut R,
    ) -> Duration {
        let attempt = attempt.max(1);
        if self.sidekiq {
            let n = u64::from(attempt - 1);
            let secs = n
                .saturating_pow(4)
                .saturating_add(15)
                .saturating_add(rng.random_range(0..10u64).saturating_mul(n + 1));
            return Duration::from_secs(secs).min(self.cap);
        }
        let exponential = self.exponential(attempt);
        match self.jitter {
            Jitter::None => exponential,
            Jitter::Full => random_between(rng, Duration::ZERO, exponential),
            Jitter::Equal => exponential / 2 + random_between(rng, Duration::ZERO, exponential / 2),
            Jitter::Decorrelated => {
                let previous = previous.max(self.base);
                let upper = previous.saturating_mul(3).min(self.cap).max(self.base);
                random_between(rng, self.base, upper)
            }
        }
    }

    /// `min(cap, base × 2^(attempt−1))`, without overflow.
    pub fn exponential(&self, attempt: u32) -> Duration {
        let shift = attempt.saturating_sub(1).min(63);
        let factor = 1u32.checked_shl(shift.min(31)).unwrap_or(u32::MAX);
        if shift >= 31 {
            return self.cap;
        }
        self.base.saturating_mul(factor).min(self.cap)
    }
}

fn random_between<R: Rng + ?Sized>(rng: &mut R, low: Duration, high: Duration) -> Duration {
    if high <= low {
        return low;
    }
    let span = u64::try_from((high - low).as_nanos()).unwrap_or(u64::MAX);
    low + Duration::from_nanos(rng.random_range(0..=span))
}
