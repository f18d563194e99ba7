//! Time for the scheduler: the workspace's one [`Clock`] shape (nanoseconds
//! since the clock's origin, from `sysblocks-core`), read here in
//! milliseconds (`Clock::now_ms`). The scheduler shares times between
//! processes (due times, lease ends), so its clocks count from the Unix
//! epoch: the [`WallClock`] by default, a [`TokioClock`] started at a wall
//! time under tokio's paused test time, or a [`ManualClock`].

use std::time::Duration;

pub use sysblocks_core::{Clock, ManualClock, TokioClock, WallClock};

/// A duration in whole milliseconds, saturating.
pub(crate) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
