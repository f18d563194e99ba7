//! [`AsyncLimiter`]: wait until a limiter admits, in arrival order.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::decision::Decision;
use crate::error::LimitError;
use crate::limiter::Limiter;

/// Wraps a [`Limiter`] so that async callers can wait for room instead of
/// being denied (and, for a shaper such as the leaky bucket, for their
/// departure slot).
///
/// * **Fair**: waiters queue in arrival order (a FIFO async lock); only
///   the one at the head polls the limiter, so a big request is not
///   starved by a stream of small ones.
/// * **Cancel-safe**: dropping the future takes nothing from the limiter
///   and lets the next waiter go.
/// * **Jitter**: with [`with_jitter`](Self::with_jitter), each wait is
///   lengthened by a random amount up to the bound, so that many clients
///   denied at once do not all come back at the same instant.
///
/// Direct calls to the inner limiter (through [`inner`](Self::inner)) do
/// not queue.
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::time::Duration;
/// use sysblocks_ratelimit::{AsyncLimiter, Rate, TokenBucket, TokioClock};
///
/// let limiter = AsyncLimiter::new(TokenBucket::with_clock(1, Rate::per_second(10)?, TokioClock::new())?);
/// let start = tokio::time::Instant::now();
/// for _ in 0..3 {
///     assert!(limiter.until_ready().await.allowed); // it waits, then always admits
/// }
/// assert_eq!(start.elapsed(), Duration::from_millis(200));
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct AsyncLimiter<L> {
    limiter: L,
    queue: tokio::sync::Mutex<()>,
    jitter: Duration,
    seed: AtomicU64,
}

impl<L: Limiter> AsyncLimiter<L> {
    /// Wraps `limiter`, without jitter.
    pub fn new(limiter: L) -> Self {
        AsyncLimiter {
            limiter,
            queue: tokio::sync::Mutex::new(()),
            jitter: Duration::ZERO,
            seed: AtomicU64::new(entropy()),
        }
    }

    /// Adds a random extra wait in `[0, max]` to every wait.
    #[must_use]
    pub fn with_jitter(mut self, max: Duration) -> Self {
        self.jitter = max;
        self
    }

    /// The wrapped limiter.
    pub fn inner(&self) -> &L {
        &self.limiter
    }

    /// Waits until one unit is admitted, then returns its decision.
    pub async fn until_ready(&self) -> Decision {
        match self.until_n_ready(1).await {
            Ok(decision) => decision,
            // A cost of 1 is never above a limit, which is at least 1.
            Err(_) => self.limiter.check(),
        }
    }

    /// Waits until `cost` units are admitted together.
    ///
    /// # Errors
    /// [`LimitError::ZeroCost`], or [`LimitError::CostAboveCapacity`] for a
    /// cost that could never be admitted (waiting would be forever).
    pub async fn until_n_ready(&self, cost: u64) -> Result<Decision, LimitError> {
        let _turn = self.queue.lock().await;
        loop {
            let decision = self.limiter.check_n(cost)?;
            if decision.allowed {
                if !decision.wait.is_zero() {
                    // A shaper (the leaky bucket) admitted the request for a
                    // later slot: wait for it, and give the slot back if
                    // this future is dropped first.
                    let refund = RefundOnDrop { limiter: &self.limiter, cost, armed: true };
                    tokio::time::sleep(decision.wait).await;
                    refund.disarm();
                }
                return Ok(decision);
            }
            let wait = decision.retry_after.unwrap_or(Duration::from_millis(1));
            tokio::time::sleep(wait.saturating_add(self.jitter_sample())).await;
        }
    }

    /// A random duration in `[0, jitter]` (SplitMix64; randomness for
    /// spreading retries, not for security).
    fn jitter_sample(&self) -> Duration {
        let Ok(max) = u64::try_from(self.jitter.as_nanos()) else { return self.jitter };
        if max == 0 {
            return Duration::ZERO;
        }
        let mut z = self.seed.fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        Duration::from_nanos(z % max.saturating_add(1))
    }
}

/// Refunds `cost` to the limiter unless disarmed (the wait completed).
struct RefundOnDrop<'a, L: Limiter> {
    limiter: &'a L,
    cost: u64,
    armed: bool,
}

impl<L: Limiter> RefundOnDrop<'_, L> {
    fn disarm(mut self) {
        self.armed = false;
    }
}

impl<L: Limiter> Drop for RefundOnDrop<'_, L> {
    fn drop(&mut self) {
        if self.armed {
            self.limiter.refund(self.cost);
        }
    }
}

/// A seed that differs between processes and instances, so that clients
/// do not all draw the same jitter.
fn entropy() -> u64 {
    static INSTANCES: AtomicU64 = AtomicU64::new(0);
    let since_epoch =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    since_epoch.as_secs().wrapping_mul(1_000_000_007)
        ^ u64::from(since_epoch.subsec_nanos())
        ^ u64::from(std::process::id()).rotate_left(32)
        ^ INSTANCES.fetch_add(1, Ordering::Relaxed).wrapping_mul(0x9e37_79b9_7f4a_7c15)
}
