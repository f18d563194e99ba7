//! TokenBucket against governor: the same quotas, costs and arrival times
//! (including gaps that are exact multiples of the period), 1,000,000
//! decisions, zero mismatches.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock as _, FakeRelativeClock};
use governor::{Quota, RateLimiter};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use sysblocks_ratelimit::{LimitError, Limiter, ManualClock, Rate, TokenBucket};

#[test]
fn a_million_decisions_match_governor() {
    let mut rng = SmallRng::seed_from_u64(22);
    let mut decisions = 0u64;
    let mut allowed = 0u64;
    while decisions < 1_000_000 {
        let rate = rng.random_range(1..=2_000u32);
        let burst = rng.random_range(1..=64u32);
        let quota = Quota::per_second(NonZeroU32::new(rate).unwrap())
            .allow_burst(NonZeroU32::new(burst).unwrap());
        let fake = FakeRelativeClock::default();
        let theirs = RateLimiter::direct_with_clock(quota, fake.clone());
        let clock = ManualClock::new();
        let ours = TokenBucket::with_clock(
            u64::from(burst),
            Rate::per_second(u64::from(rate)).unwrap(),
            clock.clone(),
        )
        .unwrap();
        let period = 1_000_000_000 / u64::from(rate);
        for _ in 0..2_000 {
            let gap = match rng.random_range(0..5u32) {
                0 => 0,
                1 => period * rng.random_range(0..4u64), // exact multiples
                2 => period * rng.random_range(1..3u64) - 1, // just before a refill
                3 => rng.random_range(0..period * 2),
                _ => rng.random_range(0..period * u64::from(burst) * 2),
            };
            fake.advance(Duration::from_nanos(gap));
            clock.advance_nanos(gap);
            let cost = rng.random_range(1..=u64::from(burst) + 2);
            let expected = theirs.check_n(NonZeroU32::new(cost as u32).unwrap());
            let got = ours.check_n(cost);
            match (expected, got) {
                (Err(_), Err(LimitError::CostAboveCapacity { .. })) => {}
                (Ok(Ok(())), Ok(d)) if d.allowed => allowed += 1,
                (Ok(Err(not_until)), Ok(d)) if !d.allowed => {
                    let wait = not_until.wait_time_from(fake.now());
                    assert_eq!(
                        d.retry_after,
                        Some(wait),
                        "retry time differs (rate {rate}, burst {burst})"
                    );
                }
                (e, g) => panic!(
                    "mismatch at decision {decisions}: governor {e:?}, ours {g:?} (rate {rate}, burst {burst}, cost {cost})"
                ),
            }
            decisions += 1;
        }
    }
    assert!(
        allowed > 100_000 && allowed < 900_000,
        "both outcomes were exercised: {allowed} allowed"
    );
}

#[test]
fn worked_example_bucket_of_10_refilling_2_per_second() {
    let clock = ManualClock::new();
    let bucket = TokenBucket::with_clock(10, Rate::per_second(2).unwrap(), clock.clone()).unwrap();
    for i in 0..10 {
        let d = bucket.check();
        assert!(d.allowed, "request {i}");
        assert_eq!(d.remaining, 9 - i);
    }
    let denied = bucket.check();
    assert!(!denied.allowed);
    assert_eq!(denied.retry_after, Some(Duration::from_millis(500)));
    assert_eq!(denied.reset_after, Duration::from_secs(5));
    clock.advance(Duration::from_secs(5));
    assert_eq!((0..10).filter(|_| bucket.check().allowed).count(), 10);
    assert!(!bucket.check().allowed);
}

#[test]
fn peek_does_not_consume_and_errors_are_typed() {
    let clock = ManualClock::new();
    let bucket = TokenBucket::with_clock(3, Rate::per_second(1).unwrap(), clock).unwrap();
    assert!(bucket.peek_n(3).unwrap().allowed);
    assert!(bucket.peek_n(3).unwrap().allowed, "peeking twice takes nothing");
    assert!(bucket.check_n(3).unwrap().allowed);
    assert!(!bucket.peek_n(1).unwrap().allowed);
    assert_eq!(bucket.check_n(4), Err(LimitError::CostAboveCapacity { cost: 4, capacity: 3 }));
    assert_eq!(bucket.check_n(0), Err(LimitError::ZeroCost));
    assert_eq!(
        TokenBucket::new(0, Rate::per_second(1).unwrap()).unwrap_err(),
        LimitError::ZeroCapacity
    );
    assert_eq!(Rate::per_second(0), Err(LimitError::ZeroRate));
    assert!(matches!(Rate::new(2, Duration::from_nanos(1)), Err(LimitError::RateTooFast { .. })));
    for bad in ["", "100", "/s", "x/s", "100/parsec", "100/0s", "-1/s", "1/99999999999999999999h"] {
        assert!(bad.parse::<Rate>().is_err(), "{bad:?} parsed");
    }
    assert_eq!("5000/h".parse::<Rate>().unwrap(), Rate::per_hour(5000).unwrap());
    assert_eq!(
        "10/500ms".parse::<Rate>().unwrap(),
        Rate::new(10, Duration::from_millis(500)).unwrap()
    );
}

proptest::proptest! {
    /// No input makes construction, parsing or checking panic.
    #[test]
    fn no_input_panics(capacity in proptest::num::u64::ANY, count in proptest::num::u64::ANY, nanos in proptest::num::u64::ANY, cost in proptest::num::u64::ANY, now in proptest::num::u64::ANY, text in ".{0,12}") {
        let _ = text.parse::<Rate>();
        if let Ok(rate) = Rate::new(count, Duration::from_nanos(nanos))
            && let Ok(bucket) = TokenBucket::with_clock(capacity, rate, ManualClock::new())
        {
            let _ = bucket.check_n_at(now, cost);
            let _ = bucket.check_n_at(now / 2, cost);
        }
    }
}
