//! Tour section: the token bucket's worked example on a manual clock.

use std::error::Error;
use std::time::Duration;

use sysblocks_ratelimit::{
    FixedWindow, ManualClock, Rate, SlidingCounterState, SlidingWindowCounter, SlidingWindowLog,
    TokenBucket, sliding_counter_step,
};

use super::TourOptions;
use crate::report::Section;

/// Runs the section.
///
/// # Errors
/// Only on a bug (the limits here are valid).
pub fn run(_options: &TourOptions) -> Result<(), Box<dyn Error>> {
    let section = Section::start("ratelimit: token bucket and windows");
    section.note("token bucket of 10 refilling 2/s:");
    let clock = ManualClock::new();
    let bucket = TokenBucket::with_clock(10, Rate::per_second(2)?, clock.clone())?;
    let burst: Vec<_> = (0..11).map(|_| bucket.check()).collect();
    let admitted = burst.iter().filter(|d| d.allowed).count();
    section.row("11 requests at once", format!("{admitted} admitted, {} denied", 11 - admitted));
    if let Some(denied) = burst.iter().find(|d| !d.allowed) {
        section.row(
            "  the 11th",
            format!(
                "retry after {:?}, full again after {:?}",
                denied.retry_after.unwrap_or_default(),
                denied.reset_after
            ),
        );
    }
    clock.advance(Duration::from_secs(5));
    let later = (0..11).filter(|_| bucket.check().allowed).count();
    section.row("5 s later, 11 more", format!("{later} admitted"));

    // Every window algorithm against the same burst: 15 requests at once,
    // limit 10 per second.
    let second = Duration::from_secs(1);
    let fixed = FixedWindow::with_clock(10, second, clock.clone())?;
    let log = SlidingWindowLog::with_clock(10, second, clock.clone())?;
    let counter = SlidingWindowCounter::with_clock(10, second, clock.clone())?;
    let count = |f: &dyn Fn() -> bool| (0..15).filter(|_| f()).count();
    section.note("15 requests at once, limit 10 per second:");
    section.row("  fixed window", format!("{} admitted", count(&|| fixed.check().allowed)));
    section.row("  sliding window log", format!("{} admitted", count(&|| log.check().allowed)));
    section.row(
        "  sliding window counter",
        format!("{} admitted", count(&|| counter.check().allowed)),
    );

    // The sliding counter's worked example: 100 per minute, 80 last
    // minute, 30 so far, half way through.
    let minute = 60_000_000_000u64;
    let state = SlidingCounterState { window: 1, current: 30, previous: 80 };
    let (d, _) = sliding_counter_step(state, minute + minute / 2, minute, 100, 1);
    section.row(
        "sliding counter 80 prev, 30 now, 50%",
        format!("estimate 70: {}", if d.allowed { "admitted" } else { "denied" }),
    );
    section.finish();
    Ok(())
}
