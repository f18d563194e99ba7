//! Time for limiters: nanoseconds since the limiter's epoch, from the system
//! clock or from a manual clock that tests advance.

use std::fmt::Debug;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// A monotonic source of nanoseconds since some fixed point.
pub trait Clock: Send + Sync + Debug {
    /// Nanoseconds since this clock's origin.
    fn now_nanos(&self) -> u64;
}

/// The monotonic system clock, counting from when it was made. It reads
/// the CPU's time-stamp counter through `quanta` (calibrated against the
/// OS clock, falling back to it where there is no stable TSC), which costs
/// a few nanoseconds against about 20 for `std::time::Instant`: for a
/// limiter whose whole check is a compare-and-swap, the clock read is most
/// of the cost.
#[derive(Debug, Clone)]
pub struct SystemClock {
    clock: quanta::Clock,
    origin: u64,
}

impl Default for SystemClock {
    fn default() -> Self {
        let clock = quanta::Clock::new();
        let origin = clock.raw();
        SystemClock { clock, origin }
    }
}

impl Clock for SystemClock {
    #[inline]
    fn now_nanos(&self) -> u64 {
        self.clock.delta_as_nanos(self.origin, self.clock.raw())
    }
}

/// A clock that moves only when told; clones share one time.
///
/// ```
/// use std::time::Duration;
/// use sysblocks_ratelimit::{Clock, ManualClock};
///
/// let clock = ManualClock::new();
/// clock.advance(Duration::from_millis(5));
/// assert_eq!(clock.now_nanos(), 5_000_000);
/// ```
#[derive(Debug, Clone, Default)]
pub struct ManualClock {
    nanos: Arc<AtomicU64>,
}

impl ManualClock {
    /// A clock at 0.
    pub fn new() -> Self {
        Self::default()
    }

    /// Moves the clock forward (saturating).
    pub fn advance(&self, by: Duration) {
        self.advance_nanos(u64::try_from(by.as_nanos()).unwrap_or(u64::MAX));
    }

    /// Moves the clock forward by `nanos` (saturating).
    pub fn advance_nanos(&self, nanos: u64) {
        let _ = self
            .nanos
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| Some(n.saturating_add(nanos)));
    }
}

impl Clock for ManualClock {
    fn now_nanos(&self) -> u64 {
        self.nanos.load(Ordering::Acquire)
    }
}

/// Tokio's clock (`tokio::time::Instant`), counting from when it was made.
/// Under a paused runtime (`#[tokio::test(start_paused = true)]`) it moves
/// only when the runtime advances time, so async waits are tested without
/// real sleeping.
#[cfg(feature = "async")]
#[cfg_attr(docsrs, doc(cfg(feature = "async")))]
#[derive(Debug, Clone, Copy)]
pub struct TokioClock {
    origin: tokio::time::Instant,
}

#[cfg(feature = "async")]
impl TokioClock {
    /// A clock at 0 now.
    pub fn new() -> Self {
        TokioClock { origin: tokio::time::Instant::now() }
    }
}

#[cfg(feature = "async")]
impl Default for TokioClock {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(feature = "async")]
impl Clock for TokioClock {
    fn now_nanos(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}
