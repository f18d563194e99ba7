//! The window algorithms against brute-force models.

use std::time::Duration;

use proptest::prelude::*;
use sysblocks_ratelimit::{
    FixedWindow, LimitError, Limiter, ManualClock, SlidingCounterState, SlidingWindowCounter,
    SlidingWindowLog, sliding_counter_step,
};

proptest! {
    /// The exact log admits a request iff the costs admitted in the last
    /// window plus its own fit; a denial's retry time is exact.
    #[test]
    fn sliding_log_equals_the_definition(
        limit in 1u64..20,
        window in 1u64..1_000,
        arrivals in proptest::collection::vec((0u64..300, 1u64..5), 1..200),
    ) {
        let limiter = SlidingWindowLog::with_clock(limit, Duration::from_nanos(window), ManualClock::new()).unwrap();
        let mut admitted: Vec<(u64, u64)> = Vec::new();
        let mut now = 0u64;
        for (gap, cost) in arrivals {
            now += gap;
            let cost = cost.min(limit);
            let used: u64 = admitted.iter().filter(|&&(t, _)| t + window > now).map(|&(_, c)| c).sum();
            let fits = used + cost <= limit;
            let d = limiter.check_n_at(now, cost).unwrap();
            prop_assert_eq!(d.allowed, fits, "at {} used {} cost {}", now, used, cost);
            if fits {
                admitted.push((now, cost));
            } else {
                // The request fits exactly after retry_after, and not a
                // nanosecond before.
                let wait = d.retry_after.unwrap().as_nanos() as u64;
                let used_at = |t: u64| admitted.iter().filter(|&&(a, _)| a + window > t).map(|&(_, c)| c).sum::<u64>();
                prop_assert!(used_at(now + wait) + cost <= limit);
                prop_assert!(wait == 0 || used_at(now + wait - 1) + cost > limit);
            }
            prop_assert!(d.remaining <= limit);
        }
    }

    #[test]
    fn fixed_window_equals_the_definition(
        limit in 1u64..20,
        window in 1u64..1_000,
        arrivals in proptest::collection::vec((0u64..300, 1u64..5), 1..200),
    ) {
        let clock = ManualClock::new();
        let limiter = FixedWindow::with_clock(limit, Duration::from_nanos(window), clock.clone()).unwrap();
        let mut counts = std::collections::HashMap::<u64, u64>::new();
        for (gap, cost) in arrivals {
            clock.advance_nanos(gap);
            let cost = cost.min(limit);
            let w = sysblocks_ratelimit::Clock::now_nanos(&clock) / window;
            let used = counts.get(&w).copied().unwrap_or(0);
            let d = limiter.check_n(cost).unwrap();
            prop_assert_eq!(d.allowed, used + cost <= limit);
            if d.allowed {
                *counts.entry(w).or_default() += cost;
            }
        }
    }

    /// The counter's estimate never admits more than the limit within one
    /// fixed window, and never more than twice it within any sliding one.
    #[test]
    fn sliding_counter_stays_within_its_bounds(
        limit in 1u64..50,
        arrivals in proptest::collection::vec(0u64..100, 1..400),
    ) {
        let window = 1_000u64;
        let clock = ManualClock::new();
        let limiter = SlidingWindowCounter::with_clock(limit, Duration::from_nanos(window), clock.clone()).unwrap();
        let mut admitted = Vec::new();
        for gap in arrivals {
            clock.advance_nanos(gap);
            let now = sysblocks_ratelimit::Clock::now_nanos(&clock);
            if limiter.check().allowed {
                admitted.push(now);
            }
            let in_fixed = admitted.iter().filter(|&&t| t / window == now / window).count() as u64;
            let in_sliding = admitted.iter().filter(|&&t| t + window > now).count() as u64;
            prop_assert!(in_fixed <= limit);
            prop_assert!(in_sliding <= 2 * limit);
        }
    }
}

proptest! {
    /// A denial's retry time is exact: with nothing else admitted, the same
    /// request fits after retry_after and not a nanosecond before.
    #[test]
    fn sliding_counter_retry_is_exact(
        limit in 1u64..60,
        window in 1u64..5_000,
        previous in 0u64..60,
        current in 0u64..60,
        elapsed_frac in 0u64..1_000,
        cost in 1u64..10,
    ) {
        let (previous, current, cost) = (previous.min(limit), current.min(limit), cost.min(limit));
        let elapsed = elapsed_frac * window / 1_000;
        let state = SlidingCounterState { window: 3, current, previous };
        let now = 3 * window + elapsed;
        let (d, _) = sliding_counter_step(state, now, window, limit, cost);
        if !d.allowed {
            let wait = d.retry_after.unwrap().as_nanos() as u64;
            let (later, _) = sliding_counter_step(state, now + wait, window, limit, cost);
            prop_assert!(later.allowed, "fits after {} ns", wait);
            prop_assert!(wait > 0);
            let (before, _) = sliding_counter_step(state, now + wait - 1, window, limit, cost);
            prop_assert!(!before.allowed, "and not at {} ns", wait - 1);
        }
    }
}

#[test]
fn sliding_counter_worked_example() {
    // Limit 100 per minute; 80 in the previous minute, 30 in this one, half
    // way through: estimate 80 × 0.5 + 30 = 70, so the request is admitted.
    let minute = 60_000_000_000u64;
    let state = SlidingCounterState { window: 1, current: 30, previous: 80 };
    let (d, next) = sliding_counter_step(state, minute + minute / 2, minute, 100, 1);
    assert!(d.allowed);
    assert_eq!(d.remaining, 29);
    assert_eq!(next.current, 31);
    let (d, _) = sliding_counter_step(state, minute + minute / 2, minute, 100, 31);
    assert!(!d.allowed, "70 + 31 > 100");
}

#[test]
fn bad_windows_and_costs_are_typed_errors() {
    assert_eq!(FixedWindow::new(0, Duration::from_secs(1)).unwrap_err(), LimitError::ZeroCapacity);
    assert_eq!(SlidingWindowLog::new(5, Duration::ZERO).unwrap_err(), LimitError::ZeroRate);
    let limiter = SlidingWindowCounter::new(5, Duration::from_secs(1)).unwrap();
    assert_eq!(limiter.check_n(6), Err(LimitError::CostAboveCapacity { cost: 6, capacity: 5 }));
    assert_eq!(limiter.check_n(0), Err(LimitError::ZeroCost));
}
