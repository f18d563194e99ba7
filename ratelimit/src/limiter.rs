//! [`Limiter`]: what every in-process limiter can do, so that keyed limits,
//! [`check_all`] and the HTTP layer work with any algorithm.

use crate::error::LimitError;
use std::time::Duration;

use crate::decision::Decision;

/// An in-process rate limiter: one of [`TokenBucket`](crate::TokenBucket),
/// [`LeakyBucket`](crate::LeakyBucket), [`FixedWindow`](crate::FixedWindow),
/// [`SlidingWindowLog`](crate::SlidingWindowLog),
/// [`SlidingWindowCounter`](crate::SlidingWindowCounter) or
/// [`AnyLimiter`](crate::AnyLimiter).
///
/// The `_at` methods take the time explicitly, in nanoseconds on the
/// limiter's clock ([`now`](Self::now)); the others read the clock.
pub trait Limiter: Send + Sync {
    /// The limit: the capacity, the number per window, or the queue length.
    fn limit(&self) -> u64;

    /// Now on this limiter's clock, in nanoseconds.
    fn now(&self) -> u64;

    /// The policy window: the window of a window algorithm, or the time an
    /// empty bucket takes to fill (a queue to drain) completely. The HTTP
    /// layer announces it as `w`.
    fn window(&self) -> Duration;

    /// Admits a request of `cost` at `now` if there is room for all of it.
    ///
    /// # Errors
    /// [`LimitError::ZeroCost`], or [`LimitError::CostAboveCapacity`] for a
    /// request that could never pass.
    fn check_n_at(&self, now: u64, cost: u64) -> Result<Decision, LimitError>;

    /// What [`check_n_at`](Self::check_n_at) would decide, changing nothing.
    ///
    /// # Errors
    /// As [`check_n_at`](Self::check_n_at).
    fn peek_n_at(&self, now: u64, cost: u64) -> Result<Decision, LimitError>;

    /// Gives back `cost` admitted earlier (the request was not carried out).
    /// The limiter never ends up with more room than a fresh one.
    fn refund_at(&self, now: u64, cost: u64);

    /// Whether the limiter's state at `now` is that of a fresh limiter, so
    /// that dropping it and starting again would change no decision.
    fn is_idle_at(&self, now: u64) -> bool;

    /// Admits one request if there is room.
    fn check(&self) -> Decision {
        // A cost of 1 never exceeds a limit, which is at least 1.
        self.check_n_at(self.now(), 1).unwrap_or_else(|_| unreachable_decision(self.limit()))
    }

    /// What [`check`](Self::check) would decide, changing nothing.
    fn peek(&self) -> Decision {
        self.peek_n(1).unwrap_or_else(|_| unreachable_decision(self.limit()))
    }

    /// [`check_n_at`](Self::check_n_at) now.
    ///
    /// # Errors
    /// As [`check_n_at`](Self::check_n_at).
    fn check_n(&self, cost: u64) -> Result<Decision, LimitError> {
        self.check_n_at(self.now(), cost)
    }

    /// [`peek_n_at`](Self::peek_n_at) now.
    ///
    /// # Errors
    /// As [`check_n_at`](Self::check_n_at).
    fn peek_n(&self, cost: u64) -> Result<Decision, LimitError> {
        self.peek_n_at(self.now(), cost)
    }

    /// [`refund_at`](Self::refund_at) now.
    fn refund(&self, cost: u64) {
        self.refund_at(self.now(), cost);
    }
}

/// A denial, for the one case that cannot happen (cost 1 above a limit of
/// at least 1); returning it keeps the trait free of panics.
fn unreachable_decision(limit: u64) -> Decision {
    Decision { retry_after: None, ..Decision::deny(limit, 0, Duration::ZERO, Duration::ZERO) }
}

impl<L: Limiter + ?Sized> Limiter for std::sync::Arc<L> {
    fn limit(&self) -> u64 {
        (**self).limit()
    }
    fn now(&self) -> u64 {
        (**self).now()
    }
    fn window(&self) -> Duration {
        (**self).window()
    }
    fn check_n_at(&self, now: u64, cost: u64) -> Result<Decision, LimitError> {
        (**self).check_n_at(now, cost)
    }
    fn peek_n_at(&self, now: u64, cost: u64) -> Result<Decision, LimitError> {
        (**self).peek_n_at(now, cost)
    }
    fn refund_at(&self, now: u64, cost: u64) {
        (**self).refund_at(now, cost);
    }
    fn is_idle_at(&self, now: u64) -> bool {
        (**self).is_idle_at(now)
    }
}

/// All or nothing over several limits (say 10 per second *and* 1000 per
/// hour): admits `cost` only if every limiter has room, and then takes it
/// from all of them. On a denial nothing is taken.
///
/// The limiters are taken in order; when one denies, what the earlier ones
/// gave is refunded, so a concurrent caller may briefly see less room than
/// there is, never more. The decision returned is the denial, or, when all
/// admit, the one with the least room left.
///
/// ```
/// use std::time::Duration;
/// use sysblocks_ratelimit::{check_all, FixedWindow, Limiter, ManualClock, Rate, TokenBucket};
///
/// let clock = ManualClock::new();
/// let per_second = TokenBucket::with_clock(5, Rate::per_second(5)?, clock.clone())?;
/// let per_hour = FixedWindow::with_clock(3, Duration::from_secs(3600), clock.clone())?;
/// let both: [&dyn Limiter; 2] = [&per_second, &per_hour];
/// assert_eq!((0..5).filter(|_| check_all(&both, 1).unwrap().allowed).count(), 3);
/// // The two denials took nothing from the token bucket: 2 tokens are
/// // left, so one more request would leave 1.
/// assert_eq!(per_second.peek().remaining, 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
/// The first limiter's error for a zero cost or a cost above its limit;
/// nothing is taken then.
pub fn check_all(limiters: &[&dyn Limiter], cost: u64) -> Result<Decision, LimitError> {
    let mut tightest: Option<Decision> = None;
    for (i, limiter) in limiters.iter().enumerate() {
        let now = limiter.now();
        let decision = match limiter.check_n_at(now, cost) {
            Ok(decision) => decision,
            Err(error) => {
                refund_all(&limiters[..i], cost);
                return Err(error);
            }
        };
        if !decision.allowed {
            refund_all(&limiters[..i], cost);
            return Ok(decision);
        }
        if tightest.is_none_or(|t| decision.remaining < t.remaining) {
            tightest = Some(decision);
        }
    }
    Ok(tightest.unwrap_or(Decision::admit(u64::MAX, u64::MAX, Duration::ZERO)))
}

fn refund_all(limiters: &[&dyn Limiter], cost: u64) {
    for limiter in limiters {
        limiter.refund_at(limiter.now(), cost);
    }
}
