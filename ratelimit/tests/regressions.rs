//! Regression tests for defects found by review of the in-process
//! limiters: slow rates that admitted without limit, window limiters that
//! forgot admissions when time went back or the window changed, and a
//! lowered limit that underflowed.

use std::time::Duration;

use sysblocks_ratelimit::{
    Algorithm, FixedWindow, LeakyBucket, Limit, LimitError, Limiter, MAX_REFILL_NANOS, ManualClock,
    Rate, SlidingWindowCounter, SlidingWindowLog, TokenBucket,
};

const DAY: Duration = Duration::from_secs(86_400);
const YEAR: Duration = Duration::from_secs(365 * 86_400);

#[test]
fn slow_rates_with_big_bursts_are_refused_not_unlimited() {
    let per_year = Rate::new(1, YEAR).unwrap();
    let err = TokenBucket::new(1000, per_year).unwrap_err();
    assert!(matches!(err, LimitError::BurstTooLong { capacity: 1000, .. }), "{err:?}");
    assert!(err.to_string().contains("292 years"), "{err}");
    assert!(matches!(
        LeakyBucket::new(1000, per_year).unwrap_err(),
        LimitError::BurstTooLong { .. }
    ));
    // One per u64::MAX seconds with a burst of 2.
    let glacial = Rate::new(1, Duration::from_secs(u64::MAX)).unwrap();
    assert!(matches!(TokenBucket::new(2, glacial).unwrap_err(), LimitError::BurstTooLong { .. }));
    // The edge: one per day, refill time at most MAX_REFILL_NANOS.
    let per_day = Rate::new(1, DAY).unwrap();
    let most = MAX_REFILL_NANOS / per_day.interval_nanos();
    assert!(TokenBucket::new(most, per_day).is_ok());
    assert!(TokenBucket::new(most + 1, per_day).is_err());
    // Config and reconfiguration check the same way.
    let limit = Limit { algorithm: Algorithm::TokenBucket, rate: per_day, burst: Some(213_504) };
    assert!(matches!(limit.validate(), Err(LimitError::BurstTooLong { .. })));
    let bucket = TokenBucket::with_clock(2, per_day, ManualClock::new()).unwrap();
    assert!(bucket.set_limit(most + 1, per_day).is_err());
    assert_eq!(bucket.capacity(), 2, "a refused reconfiguration changes nothing");
}

#[test]
fn the_largest_allowed_slow_bucket_admits_exactly_its_capacity() {
    let per_day = Rate::new(1, DAY).unwrap();
    let capacity = 1000;
    for limiter in
        [Limit::new(Algorithm::TokenBucket, per_day), Limit::new(Algorithm::LeakyBucket, per_day)]
            .map(|l| {
                Limit { burst: Some(capacity), ..l }.build_with_clock(ManualClock::new()).unwrap()
            })
    {
        let admitted = (0..5000).filter(|_| limiter.check_n_at(1, 1).unwrap().allowed).count();
        assert_eq!(admitted as u64, capacity);
    }
}

#[test]
fn gcra_never_admits_past_the_end_of_the_clock() {
    let bucket =
        TokenBucket::with_clock(10, Rate::per_second(1).unwrap(), ManualClock::new()).unwrap();
    let late = u64::MAX - 5_000_000_000;
    let admitted = (0..100).filter(|_| bucket.check_n_at(late, 1).unwrap().allowed).count();
    assert!(admitted <= 10, "admitted {admitted} at the end of the clock");
}

/// A caller that read the clock in window 0, was preempted, and reached the
/// lock after others had filled window 1: its request counts in window 1.
fn a_late_caller_from_an_older_window_is_counted_in_the_newer_one(l: &dyn Limiter) {
    let second = 1_000_000_000u64;
    let limit = l.limit();
    let early = second - 1; // window 0
    let late = second; // window 1
    for _ in 0..limit {
        assert!(l.check_n_at(late, 1).unwrap().allowed);
    }
    for _ in 0..limit {
        let d = l.check_n_at(early, 1).unwrap();
        assert!(!d.allowed, "a time from before the window filled admitted again: {d:?}");
        assert!(!l.peek_n_at(early, 1).unwrap().allowed);
    }
    assert!(!l.is_idle_at(early), "busy in window 1 whatever the caller's stale clock says");
}

#[test]
fn time_never_goes_back_inside_a_window_limiter() {
    let clock = ManualClock::new();
    let s = Duration::from_secs(1);
    a_late_caller_from_an_older_window_is_counted_in_the_newer_one(
        &FixedWindow::with_clock(10, s, clock.clone()).unwrap(),
    );
    a_late_caller_from_an_older_window_is_counted_in_the_newer_one(
        &SlidingWindowCounter::with_clock(10, s, clock.clone()).unwrap(),
    );
    a_late_caller_from_an_older_window_is_counted_in_the_newer_one(
        &SlidingWindowLog::with_clock(10, s, clock).unwrap(),
    );
}

#[test]
fn a_new_window_length_keeps_what_was_admitted() {
    let clock = ManualClock::new();
    clock.advance(Duration::from_millis(1500));
    let fixed = FixedWindow::with_clock(10, Duration::from_secs(1), clock.clone()).unwrap();
    let counter =
        SlidingWindowCounter::with_clock(10, Duration::from_secs(1), clock.clone()).unwrap();
    let log = SlidingWindowLog::with_clock(10, Duration::from_secs(1), clock.clone()).unwrap();
    for l in [&fixed as &dyn Limiter, &counter, &log] {
        assert_eq!((0..10).filter(|_| l.check_n(1).unwrap().allowed).count(), 10);
    }
    fixed.set_limit(10, Duration::from_secs(2)).unwrap();
    counter.set_limit(10, Duration::from_secs(2)).unwrap();
    log.set_limit(10, Duration::from_secs(2)).unwrap();
    clock.advance(Duration::from_millis(100));
    for l in [&fixed as &dyn Limiter, &counter, &log] {
        assert_eq!(
            (0..10).filter(|_| l.check_n(1).unwrap().allowed).count(),
            0,
            "10 admitted 100 ms ago still count after the window grew"
        );
    }
}

#[test]
fn lowering_a_window_limit_below_its_count_reports_no_room() {
    let clock = ManualClock::new();
    let s = Duration::from_secs(1);
    let fixed = FixedWindow::with_clock(10, s, clock.clone()).unwrap();
    let counter = SlidingWindowCounter::with_clock(10, s, clock.clone()).unwrap();
    let log = SlidingWindowLog::with_clock(10, s, clock).unwrap();
    for l in [&fixed as &dyn Limiter, &counter, &log] {
        for _ in 0..10 {
            assert!(l.check_n(1).unwrap().allowed);
        }
    }
    fixed.set_limit(5, s).unwrap();
    counter.set_limit(5, s).unwrap();
    log.set_limit(5, s).unwrap();
    for l in [&fixed as &dyn Limiter, &counter, &log] {
        let d = l.check_n(1).unwrap();
        assert!(!d.allowed);
        assert_eq!((d.limit, d.remaining), (5, 0));
        assert_eq!(l.peek_n(1).unwrap().remaining, 0);
    }
}
