//! Versions for last-writer-wins: a hybrid logical clock (Kulkarni et al.,
//! "Logical Physical Clocks", 2014).
//!
//! A version is one `u64`: the high 48 bits are milliseconds since the Unix
//! epoch (enough until the year 10889), the low 16 bits a counter that
//! orders events within one millisecond. A node's clock never goes back:
//! each new version is above every version the node has issued or seen
//! ([`observe`](Hlc::observe) takes in the versions of writes that arrive
//! from other nodes), and it stays close to the wall clock, so "the last
//! writer" is, within clock skew, the writer that wrote last.
//!
//! Two writes can still get equal versions on different nodes; the merkle
//! store, the one judge of "newer" in this service, breaks such ties by the
//! larger entry hash, which every replica computes the same way, so every
//! replica keeps the same winner.
//!
//! ```
//! use sysblocks_kv::hlc::Hlc;
//!
//! let clock = Hlc::new();
//! let a = clock.now_at(1_000);
//! let b = clock.now_at(1_000); // same millisecond: the counter moves
//! assert!(b > a);
//! let c = clock.now_at(900); // the wall clock went back: the version does not
//! assert!(c > b);
//! clock.observe(Hlc::version(5_000, 7)); // a write from a node ahead of us
//! assert!(clock.now_at(1_001) > Hlc::version(5_000, 7));
//! ```

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Bits of the counter within a millisecond.
const COUNTER_BITS: u32 = 16;

/// How far ahead of this node's wall clock a version from elsewhere may
/// be: a peer whose clock (or whose bug, or malice) is further ahead is
/// refused, or its versions would drag every later write into the future
/// and make it lose to nothing. One minute covers any sane NTP skew.
pub const MAX_DRIFT_MS: u64 = 60_000;

/// A node's hybrid logical clock; shared by its tasks (`&self` methods).
#[derive(Debug, Default)]
pub struct Hlc {
    /// The last version issued or observed.
    last: AtomicU64,
}

impl Hlc {
    /// A clock that has issued nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// The version of millisecond `ms` and counter `counter`.
    pub fn version(ms: u64, counter: u16) -> u64 {
        (ms << COUNTER_BITS) | u64::from(counter)
    }

    /// The millisecond a version was issued in.
    pub fn millis(version: u64) -> u64 {
        version >> COUNTER_BITS
    }

    /// A new version, on the wall clock.
    pub fn now(&self) -> u64 {
        let ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis());
        self.now_at(u64::try_from(ms).unwrap_or(u64::MAX))
    }

    /// A new version when the wall clock reads `wall_ms`: the wall time if
    /// it is ahead of everything issued or seen, else one more than the last
    /// (a counter that fills up carries into the millisecond, so versions
    /// stay strictly increasing).
    pub fn now_at(&self, wall_ms: u64) -> u64 {
        let wall = Self::version(wall_ms.min(u64::MAX >> COUNTER_BITS), 0);
        let mut last = self.last.load(Ordering::Acquire);
        loop {
            let next = if wall > last { wall } else { last.saturating_add(1) };
            match self.last.compare_exchange_weak(last, next, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return next,
                Err(seen) => last = seen,
            }
        }
    }

    /// Whether a version from elsewhere is within [`MAX_DRIFT_MS`] of the
    /// wall clock (ahead; any age is fine).
    ///
    /// # Errors
    /// A message saying how far ahead it is.
    pub fn check_drift(version: u64) -> Result<(), String> {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis());
        let now = u64::try_from(now).unwrap_or(u64::MAX);
        let at = Self::millis(version);
        if at > now.saturating_add(MAX_DRIFT_MS) {
            return Err(format!(
                "a version {} ms ahead of this node's clock (at most {MAX_DRIFT_MS} ms)",
                at - now
            ));
        }
        Ok(())
    }

    /// Takes in a version seen on a write from elsewhere, so that versions
    /// issued from now on are above it.
    pub fn observe(&self, version: u64) {
        self.last.fetch_max(version, Ordering::AcqRel);
    }

    /// The last version issued or observed.
    pub fn last(&self) -> u64 {
        self.last.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::Hlc;

    #[test]
    fn versions_strictly_increase_whatever_the_wall_clock_does() {
        let clock = Hlc::new();
        let mut previous = 0;
        for wall in [10, 10, 10, 5, 0, 11, 11, 1_000, 999] {
            let v = clock.now_at(wall);
            assert!(v > previous, "{v} after {previous} at wall {wall}");
            assert!(Hlc::millis(v) >= wall.min(Hlc::millis(previous)));
            previous = v;
        }
        assert_eq!(Hlc::millis(clock.now_at(5_000)), 5_000, "a clock ahead is followed");
    }

    #[test]
    fn a_full_counter_carries_into_the_millisecond() {
        let clock = Hlc::new();
        clock.observe(Hlc::version(7, u16::MAX));
        let v = clock.now_at(7);
        assert_eq!(v, Hlc::version(8, 0));
        assert!(v > Hlc::version(7, u16::MAX));
    }

    #[test]
    fn concurrent_callers_get_distinct_versions() {
        let clock = Hlc::new();
        let mut all: Vec<u64> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..2)
                .map(|_| s.spawn(|| (0..10_000).map(|_| clock.now_at(42)).collect::<Vec<_>>()))
                .collect();
            handles.into_iter().flat_map(|h| h.join().unwrap()).collect()
        });
        let n = all.len();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), n, "no version was issued twice");
        // On the real wall clock, versions carry today's time.
        assert!(Hlc::millis(clock.now()) >= 1_700_000_000_000);
        assert!(Hlc::check_drift(clock.now()).is_ok() && Hlc::check_drift(0).is_ok());
        assert!(Hlc::check_drift(u64::MAX).unwrap_err().contains("ahead"));
    }
}
