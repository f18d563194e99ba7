//! Tour section: the token bucket's worked example on a manual clock.

use std::error::Error;
use std::time::Duration;

use sysblocks_ratelimit::{ManualClock, Rate, TokenBucket};

use super::TourOptions;
use crate::report::Section;

/// Runs the section.
///
/// # Errors
/// Only on a bug (the limits here are valid).
pub fn run(_options: &TourOptions) -> Result<(), Box<dyn Error>> {
    let section = Section::start("ratelimit: a token bucket of 10 refilling 2/s");
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
    section.finish();
    Ok(())
}
