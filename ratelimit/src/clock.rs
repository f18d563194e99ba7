//! Time for limiters: the workspace's one [`Clock`] shape (nanoseconds since
//! the clock's origin), with the fast system clock limiters default to. The
//! manual and tokio clocks are the workspace's (`sysblocks-core`).

#[cfg(feature = "async")]
pub use sysblocks_core::TokioClock;
pub use sysblocks_core::{Clock, ManualClock};

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
