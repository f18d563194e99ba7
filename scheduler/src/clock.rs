//! Wall-clock time in milliseconds since the Unix epoch, from the system or
//! from tokio's (pausable) clock.

use std::fmt::Debug;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A source of the current time, in milliseconds since the Unix epoch.
pub trait Clock: Send + Sync + Debug + 'static {
    /// Now.
    fn now_ms(&self) -> u64;
}

/// A shared clock is a clock.
impl<C: Clock + ?Sized> Clock for std::sync::Arc<C> {
    fn now_ms(&self) -> u64 {
        (**self).now_ms()
    }
}

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, millis)
    }
}

/// Tokio's clock, anchored to a wall-clock time: it starts at `start_ms`
/// and moves with `tokio::time`, so under `#[tokio::test(start_paused =
/// true)]` retries, delays and cron ticks run in virtual time, instantly
/// and deterministically.
#[derive(Debug, Clone, Copy)]
pub struct TokioClock {
    start_ms: u64,
    origin: tokio::time::Instant,
}

impl TokioClock {
    /// A clock that reads `start_ms` now.
    pub fn starting_at(start_ms: u64) -> Self {
        TokioClock { start_ms, origin: tokio::time::Instant::now() }
    }
}

impl Clock for TokioClock {
    fn now_ms(&self) -> u64 {
        let elapsed = millis(self.origin.elapsed());
        self.start_ms.saturating_add(elapsed)
    }
}

/// A duration in whole milliseconds, saturating.
pub(crate) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
