//! Time for TTLs: the workspace's one [`Clock`] shape (nanoseconds since the
//! clock's origin, from `sysblocks-core`). A cache defaults to the
//! operating system's monotonic clock; tests advance a [`ManualClock`].

pub use sysblocks_core::{Clock, ManualClock, MonotonicClock};
