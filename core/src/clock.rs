//! [`Clock`]: the one shape of time in the workspace, nanoseconds since an
//! origin the clock fixes, and the clocks every crate shares.

use std::fmt::Debug;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A source of time: nanoseconds since an origin the clock fixes.
///
/// What the origin is depends on the clock, and each user says which it
/// needs: the rate limiters and caches only compare times of one clock,
/// so any origin does ([`MonotonicClock`]: the clock's creation; it never
/// goes back); the scheduler shares times between processes, so its clock
/// counts from the Unix epoch ([`WallClock`]). Tests use a [`ManualClock`]
/// (or, with the `tokio` feature, a `TokioClock` on tokio's pausable time).
pub trait Clock: Send + Sync + Debug {
    /// Nanoseconds since this clock's origin.
    fn now_nanos(&self) -> u64;

    /// Whole milliseconds since this clock's origin.
    fn now_ms(&self) -> u64 {
        self.now_nanos() / 1_000_000
    }
}

/// A shared clock is a clock (one clock can drive many users).
impl<C: Clock + ?Sized> Clock for Arc<C> {
    fn now_nanos(&self) -> u64 {
        (**self).now_nanos()
    }
}

/// A duration in whole nanoseconds, saturating at `u64::MAX` (about 584
/// years).
pub fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// The monotonic clock of the operating system (`std::time::Instant`),
/// counting from when it was made.
#[derive(Debug, Clone, Copy)]
pub struct MonotonicClock {
    origin: Instant,
}

impl MonotonicClock {
    /// A clock at 0 now.
    pub fn new() -> Self {
        MonotonicClock { origin: Instant::now() }
    }
}

impl Default for MonotonicClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for MonotonicClock {
    fn now_nanos(&self) -> u64 {
        nanos(self.origin.elapsed())
    }
}

/// The wall clock: nanoseconds since the Unix epoch. It can jump (NTP, an
/// operator), so use it only where times are shared between processes.
#[derive(Debug, Clone, Copy, Default)]
pub struct WallClock;

impl Clock for WallClock {
    fn now_nanos(&self) -> u64 {
        SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, nanos)
    }
}

/// A clock that moves only when told; clones share one time.
///
/// ```
/// use std::time::Duration;
/// use sysblocks_core::{Clock, ManualClock};
///
/// let clock = ManualClock::new();
/// let other = clock.clone();
/// clock.advance(Duration::from_millis(5));
/// assert_eq!(other.now_nanos(), 5_000_000);
/// assert_eq!(ManualClock::starting_at(Duration::from_secs(2)).now_ms(), 2_000);
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

    /// A clock that reads `start` since its origin (a time since the Unix
    /// epoch, for a stand-in of the wall clock).
    pub fn starting_at(start: Duration) -> Self {
        ManualClock { nanos: Arc::new(AtomicU64::new(nanos(start))) }
    }

    /// Moves the clock forward (saturating).
    pub fn advance(&self, by: Duration) {
        self.advance_nanos(nanos(by));
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

/// Tokio's clock (`tokio::time::Instant`): from 0, or from a given start,
/// when it was made. Under a paused runtime (`#[tokio::test(start_paused =
/// true)]`) it moves only when the runtime advances time, so waits, retries
/// and cron ticks are tested in virtual time, instantly and
/// deterministically.
#[cfg(feature = "tokio")]
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
#[derive(Debug, Clone, Copy)]
pub struct TokioClock {
    origin: tokio::time::Instant,
    start: u64,
}

#[cfg(feature = "tokio")]
impl TokioClock {
    /// A clock at 0 now.
    pub fn new() -> Self {
        Self::starting_at(Duration::ZERO)
    }

    /// A clock that reads `start` now (a time since the Unix epoch, to
    /// stand in for the wall clock).
    pub fn starting_at(start: Duration) -> Self {
        TokioClock { origin: tokio::time::Instant::now(), start: nanos(start) }
    }
}

#[cfg(feature = "tokio")]
impl Default for TokioClock {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(feature = "tokio")]
impl Clock for TokioClock {
    fn now_nanos(&self) -> u64 {
        self.start.saturating_add(nanos(self.origin.elapsed()))
    }
}
